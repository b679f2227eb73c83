"""Runs the widget front-end's own tests (js/*.test.mjs) with Node's test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).parents[1] / "js"


def test_front_end_unit_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the front-end unit tests need Node.js >= 18")
    tests = sorted(str(p) for p in JS.glob("*.test.mjs"))
    assert tests, "no front-end tests found"
    proc = subprocess.run([node, "--test", *tests], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
