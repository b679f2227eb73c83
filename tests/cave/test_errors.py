"""nglive without caveclient: everything imports, and a CAVE call says how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from nglive.cave.errors import server_message


def test_nglive_works_without_caveclient():
    code = textwrap.dedent("""
        import sys
        sys.modules["caveclient"] = None  # as if it were not installed
        import pandas as pd
        import nglive, nglive.cave
        from nglive.cave import tables, share, ids, datastack, connect  # all import
        v = nglive.Viewer()
        v.add_annotations("pts", pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0]}))
        for call in (lambda: nglive.cave.update_ids(None, [1]),
                     lambda: v.add_datastack(None),
                     lambda: v.share(None)):
            try:
                call()
            except ImportError as e:
                assert "pip install 'nglive[cave]'" in str(e), e
            else:
                raise AssertionError("no ImportError")
        v.close()
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


@pytest.mark.parametrize("body, message", [
    (b'{"message": "table t not found"}', "table t not found"),
    (b'{"error": "invalid_token"}', "invalid_token"),
    (b"<html>Bad gateway</html>", "<html>Bad gateway</html>"),
])
def test_server_message(body, message):
    class Response:
        content = body

    assert server_message(Response()) == message
