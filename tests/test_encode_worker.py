"""Big tables are encoded in a separate low-priority process; results and errors come back."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from nglive import encode_worker
from nglive.formats.annotations import encode_annotations
from nglive.formats.validation import TableError
from nglive.packed import PackedFiles


def pid_and_nice(n: int) -> dict[str, bytes]:
    """An 'encoder' that says where it ran."""
    return {"pid": str(os.getpid()).encode(), "nice": str(os.nice(0)).encode(),
            "n": str(n).encode()}


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(encode_worker, "WORKER_ABOVE_ROWS", 100)
    monkeypatch.delenv("NGLIVE_ENCODE_IN_PROCESS", raising=False)
    yield
    encode_worker.shutdown()


def points(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "z": rng.random(n),
                         "segment": rng.integers(1, 20, n).astype(np.uint64)})


def test_small_tables_stay_in_process(small_threshold):
    out = encode_worker.run_encoder(pid_and_nice, 5, rows=10)
    assert out["pid"] == str(os.getpid()).encode() and not isinstance(out, PackedFiles)


def test_big_tables_encode_in_a_lower_priority_process(small_threshold):
    out = encode_worker.run_encoder(pid_and_nice, 5, rows=1000)
    assert isinstance(out, PackedFiles)
    assert out["pid"] != str(os.getpid()).encode()
    assert int(out["nice"]) >= os.nice(0) + encode_worker.NICENESS or int(out["nice"]) == 19
    df = points(3000)
    here = encode_annotations(df, "xyz", "point", relationships=["segment"],
                              write_sharded=False)
    there = encode_worker.run_encoder(encode_annotations, df, "xyz", "point",
                                      relationships=["segment"], write_sharded=False,
                                      rows=len(df))
    assert dict(there) == here  # the same bytes


def test_errors_come_back_with_their_details(small_threshold):
    df = points(500)
    df.loc[7, "x"] = np.inf
    with pytest.raises(TableError) as info:
        encode_worker.run_encoder(encode_annotations, df, "xyz", "point", rows=len(df))
    assert info.value.column == "x" and info.value.row == 7


def test_a_killed_worker_falls_back_to_encoding_here(small_threshold):
    first = encode_worker.run_encoder(pid_and_nice, 1, rows=1000)
    os.kill(int(first["pid"]), 9)
    out = encode_worker.run_encoder(pid_and_nice, 2, rows=1000)
    assert out["n"] == b"2"  # answered (here, or by a fresh worker)
    assert encode_worker.run_encoder(pid_and_nice, 3, rows=1000)["n"] == b"3"


def test_the_idle_worker_exits(small_threshold, monkeypatch):
    monkeypatch.setattr(encode_worker, "IDLE_SECONDS", 0.3)
    encode_worker.run_encoder(pid_and_nice, 1, rows=1000)
    assert encode_worker._executor is not None
    import time

    deadline = time.monotonic() + 10
    while encode_worker._executor is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert encode_worker._executor is None


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    """The worker must not re-run the user's script (spawn re-imports ``__main__``)."""
    import subprocess
    import sys

    script = tmp_path / "analysis.py"
    script.write_text(
        "import numpy as np, pandas as pd, nglive, nglive.encode_worker\n"
        "print('top-level', flush=True)\n"
        "df = pd.DataFrame(np.random.default_rng(0).uniform(0, 9, (30000, 3)),\n"
        "                  columns=['x', 'y', 'z'])\n"
        "files = nglive.encode_worker.run_encoder(\n"
        "    nglive.encode_annotations, df, 'xyz', 'point', rows=len(df))\n"
        "print(len(files) > 1, flush=True)\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["top-level", "True"], out.stdout
