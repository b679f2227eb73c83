"""Synapse tables written by Dask workers: 1M to 100M rows on a LocalCluster.

Synthetic synapses (lines ~200 nm long in a 100 x 100 x 40 µm box, a float32 score,
pre- and post-synaptic segment ids of CAVE's magnitude, ~N/100 segments each) are
generated inside the workers, one partition at a time (never materialised whole),
and written with ``nglive.write_annotations(ddf, ...)`` to a local directory. Each run
is a fresh subprocess with a fresh ``LocalCluster`` of single-threaded worker
processes; recorded: wall time, rows/s, the peak resident memory of each worker
(``VmHWM``, read on the workers at the end), bytes and files written, the time of each
step (from nglive's log), the load average before the run.

For comparison, the same table (``--single``) through the single-process path
(``write_annotations`` on the pandas table, whose peak includes the table) and
through ngsidekick 0.0.20 (stopped after ``--ngsidekick-timeout`` seconds or above
``--ngsidekick-max-gb`` of memory, so it cannot starve the shared machine).

    python benchmarks/bench_dask.py [--sizes 1000000 10000000 100000000] [--workers 1 2]
        [--single 10000000] [--verify 10000000] [--kind line] [--out-dir /tmp/bench]

``--verify`` writes a table through both paths and records whether every file is
byte-identical.

Writes benchmarks/results/dask.json (updated after every run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from proc_memory import status_mb

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "dask.json"
ROOT_ID_BASE = 720575940000000000  # CAVE root ids are ~7.2e17
ROWS_PER_PARTITION = 1_000_000


def make_partition(i: int, rows: int, n_total: int, kind: str):
    """Rows ``i * rows ...`` of the synthetic table (a pure function of its arguments)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(i)
    segments = max(2, n_total // 100)
    a = np.c_[rng.uniform(0, 100_000, rows), rng.uniform(0, 100_000, rows),
              rng.uniform(0, 40_000, rows)]
    if kind == "point":
        df = pd.DataFrame({"x": a[:, 0], "y": a[:, 1], "z": a[:, 2]})
    else:
        b = a + rng.normal(0, 120, (rows, 3))
        df = pd.DataFrame({"xa": a[:, 0], "ya": a[:, 1], "za": a[:, 2],
                           "xb": b[:, 0], "yb": b[:, 1], "zb": b[:, 2]})
    df["score"] = rng.random(rows).astype(np.float32)
    base = np.uint64(ROOT_ID_BASE)
    df["pre"] = rng.integers(1, segments + 1, rows).astype(np.uint64) + base
    df["post"] = rng.integers(1, segments + 1, rows).astype(np.uint64) + base
    df.index = pd.RangeIndex(i * rows, (i + 1) * rows).astype(np.uint64)
    df.index.name = "id"
    return df


def partitions(n: int) -> tuple[int, int]:
    """(number of partitions, rows each)."""
    rows = min(ROWS_PER_PARTITION, max(1, n // 4))
    return -(-n // rows), rows


def _disk_usage(path: str) -> tuple[int, int]:
    size = files = 0
    for d, _, names in os.walk(path):
        for f in names:
            size += os.path.getsize(os.path.join(d, f))
            files += 1
    return size, files


def _worker_peak_mb() -> float:
    return status_mb("VmHWM")


class _Steps(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_dask(n: int, workers: int, kind: str, out: str, memory_limit: str) -> dict:
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from nglive.formats.annotations import write_annotations

    steps = _Steps()
    logger = logging.getLogger("nglive.formats.annotations.scale_out")
    logger.addHandler(steps)
    logger.setLevel(logging.INFO)
    nparts, rows = partitions(n)
    meta = make_partition(0, 0, n, kind)
    ddf = dd.from_map(make_partition, range(nparts), rows=rows, n_total=n, kind=kind,
                      meta=meta, enforce_metadata=False)
    rels = ["pre", "post"]
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit=memory_limit) as cluster, \
            Client(cluster) as client:
        t0 = time.perf_counter()
        write_annotations(ddf, "xyz", kind, properties=["score"], relationships=rels,
                          output_dir=out)
        seconds = time.perf_counter() - t0
        peaks = sorted(client.run(_worker_peak_mb).values())
    size, files = _disk_usage(out)
    return {"tool": "nglive-dask", "n": n, "workers": workers, "partitions": nparts,
            "rows_per_partition": rows, "seconds": round(seconds, 1),
            "rows_per_second": round(n / seconds), "worker_peak_mb": [round(p) for p in peaks],
            "driver_peak_mb": round(status_mb("VmHWM")), "output_gb": round(size / 2**30, 3),
            "files": files, "memory_limit_per_worker": memory_limit, "steps": steps.lines}


def run_single(n: int, kind: str, out: str, tool: str) -> dict:
    import pandas as pd

    nparts, rows = partitions(n)
    df = pd.concat([make_partition(i, rows, n, kind) for i in range(nparts)])
    rels = ["pre", "post"]
    t0 = time.perf_counter()
    if tool == "nglive":
        from nglive.formats.annotations import write_annotations

        write_annotations(df, "xyz", kind, properties=["score"], relationships=rels,
                          output_dir=out)
    else:
        from ngsidekick import write_precomputed_annotations

        write_precomputed_annotations(df, "xyz", kind, properties=["score"],
                                      relationships=rels, output_dir=out)
    seconds = time.perf_counter() - t0
    size, files = _disk_usage(out)
    return {"tool": f"{tool}-single-process", "n": n, "seconds": round(seconds, 1),
            "rows_per_second": round(n / seconds), "peak_mb": round(status_mb("VmHWM")),
            "output_gb": round(size / 2**30, 3), "files": files}


def verify(n: int, kind: str, out_dir: str | None) -> dict:
    """Write the same table through both paths (2 workers) and compare every file."""
    import hashlib

    a = tempfile.mkdtemp(prefix="verify-single-", dir=out_dir)
    b = tempfile.mkdtemp(prefix="verify-dask-", dir=out_dir)
    try:
        run_single(n, kind, a, "nglive")
        run_dask(n, 2, kind, b, "5GiB")

        def digests(root):
            out = {}
            for d, _, names in os.walk(root):
                for f in names:
                    path = os.path.join(d, f)
                    with open(path, "rb") as fh:
                        out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
            return out

        da, db = digests(a), digests(b)
        return {"tool": "verify", "n": n, "files": len(da),
                "byte_identical": da == db and len(da) > 0,
                "different": sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))[:5]}
    finally:
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)


def _child(args) -> None:
    if args.child == "verify":
        print("RESULT " + json.dumps(verify(args.n, args.kind, args.out_dir)), flush=True)
        return
    out = tempfile.mkdtemp(prefix="bench-dask-", dir=args.out_dir)
    try:
        if args.child == "dask":
            r = run_dask(args.n, args.workers_one, args.kind, out, args.memory_limit)
        else:
            r = run_single(args.n, args.kind, out, args.child)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print("RESULT " + json.dumps(r), flush=True)


def _run_child(argv: list[str], timeout: float, max_gb: float | None) -> dict:
    """Run a child benchmark, stopping it at ``timeout`` s or above ``max_gb`` resident."""
    load = os.getloadavg()
    proc = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stop = {"why": None}

    def watch():
        t0 = time.monotonic()
        while proc.poll() is None:
            if time.monotonic() - t0 > timeout:
                stop["why"] = f"stopped after {timeout:.0f} s"
                proc.kill()
                return
            if max_gb:
                try:
                    with open(f"/proc/{proc.pid}/status") as f:
                        rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
                    if rss > max_gb * 2**20:
                        stop["why"] = f"stopped above {max_gb} GB resident"
                        proc.kill()
                        return
                except (OSError, StopIteration):
                    pass
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    watcher.join()
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if lines:
        r = json.loads(lines[-1][len("RESULT "):])
    else:
        r = {"error": stop["why"] or (stderr.strip().splitlines() or ["failed"])[-1]}
    r["load_average_before"] = [round(x, 2) for x in load]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--single", type=int, nargs="*", default=[10_000_000],
                    help="sizes also run through the single-process path and ngsidekick")
    ap.add_argument("--verify", type=int, nargs="*", default=[],
                    help="sizes written by both paths and compared file by file")
    ap.add_argument("--kind", choices=["point", "line"], default="line")
    ap.add_argument("--memory-limit", default="5GiB", help="per Dask worker")
    ap.add_argument("--ngsidekick-timeout", type=float, default=1800)
    ap.add_argument("--ngsidekick-max-gb", type=float, default=10)
    ap.add_argument("--out-dir", default=None, help="where outputs go (then deleted)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workers-one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = result.get("runs", [])
    common = ["--kind", args.kind, "--memory-limit", args.memory_limit]
    if args.out_dir:
        common += ["--out-dir", args.out_dir]
    plan = [(n, w) for n in args.sizes for w in args.workers]
    for n, w in plan:
        r = _run_child(["--child", "dask", "--n", str(n), "--workers-one", str(w), *common],
                       timeout=4 * 3600, max_gb=None)
        r.setdefault("n", n)
        r.setdefault("workers", w)
        r["kind"] = args.kind
        print({k: v for k, v in r.items() if k != "steps"}, flush=True)
        runs = [x for x in runs if not (x.get("tool", "nglive-dask") == "nglive-dask"
                                        and x["n"] == n and x.get("workers") == w
                                        and x.get("kind") == args.kind)] + [r]
        _save(args, result, runs)
    for n in args.verify:
        r = _run_child(["--child", "verify", "--n", str(n), *common], timeout=4 * 3600,
                       max_gb=None)
        r["kind"] = args.kind
        print(r, flush=True)
        runs = [x for x in runs if not (x.get("tool") == "verify" and x["n"] == n
                                        and x.get("kind") == args.kind)] + [r]
        _save(args, result, runs)
    for n in args.single:
        for tool, limit, gb in (("nglive", 4 * 3600, None),
                                ("ngsidekick", args.ngsidekick_timeout, args.ngsidekick_max_gb)):
            r = _run_child(["--child", tool, "--n", str(n), *common], timeout=limit, max_gb=gb)
            r.setdefault("tool", f"{tool}-single-process")
            r.setdefault("n", n)
            r["kind"] = args.kind
            print(r, flush=True)
            runs = [x for x in runs if not (x.get("tool") == r["tool"] and x["n"] == n
                                            and x.get("kind") == args.kind)] + [r]
            _save(args, result, runs)


def _save(args, result: dict, runs: list) -> None:
    try:
        from importlib.metadata import version
        versions = {p: version(p) for p in ("dask", "distributed", "numpy", "pandas",
                                            "tensorstore", "ngsidekick")}
    except Exception:  # noqa: BLE001 - a missing tool is recorded as such
        versions = {}
    result.update({
        "benchmark": "synthetic synapse tables (a float32 property, two relationships) "
                     "written to a local directory by nglive's Dask path on a LocalCluster, "
                     "against the single-process path and ngsidekick",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                       * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "versions": versions, "runs": runs})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
