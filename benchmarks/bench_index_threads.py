"""Does encoding the by-id, relationship and spatial indexes in parallel threads pay?

nglive encodes one index at a time (each shard is packed and written before the next
index starts, which bounds memory). numpy releases the GIL in most of the work, so
three threads could overlap. This runs both ways on the same table, each in a fresh
subprocess, interleaved, and records wall time, CPU time and peak memory (``VmHWM``).

    python benchmarks/bench_index_threads.py [--n 1000000] [--repeats 3]

Writes benchmarks/results/index_threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import status_mb

RESULTS = Path(__file__).parent / "results" / "index_threads.json"


def child(kind: str, n: int, mode: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from bench_annotations import make_lines, make_points

    from nglive.formats.annotations.columns import read_table
    from nglive.formats.annotations.coord_space import as_coord_space
    from nglive.formats.annotations.writer import iter_source_files

    df = make_points(n) if kind == "point" else make_lines(n)
    rels = ["segment"] if kind == "point" else ["pre", "post"]
    table = read_table(df, as_coord_space("xyz"), kind, ["score"], rels)
    only = {"by_id": dict(write_by_relationship=False, write_by_spatial_chunk=False),
            "relationships": dict(write_by_id=False, write_by_spatial_chunk=False),
            "spatial": dict(write_by_id=False, write_by_relationship=False)}

    def encode(part: str) -> int:
        return sum(len(v) for _, v in iter_source_files(table, **only[part]))

    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "sequential":
        total = sum(map(encode, only))
    else:
        with ThreadPoolExecutor(len(only)) as pool:
            total = sum(pool.map(encode, only))
    return {"kind": kind, "n": n, "mode": mode, "seconds": round(time.perf_counter() - t0, 3),
            "cpu_seconds": round(time.process_time() - c0, 3), "bytes": total,
            "peak_rss_mb": round(status_mb("VmHWM"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.child[2])))
        return
    runs = []
    for _ in range(args.repeats):
        for kind in ("point", "line"):
            for mode in ("sequential", "threads"):
                load = os.getloadavg()[0]
                p = subprocess.run([sys.executable, __file__, "--child", kind, str(args.n), mode],
                                   capture_output=True, text=True, check=True)
                r = json.loads(p.stdout.strip().splitlines()[-1])
                r["load_average_1min_before"] = round(load, 2)
                runs.append(r)
                print(r, flush=True)
    summary = {}
    for kind in ("point", "line"):
        for mode in ("sequential", "threads"):
            sel = [r for r in runs if r["kind"] == kind and r["mode"] == mode]
            summary[f"{kind}/{mode}"] = {
                "seconds": [min(r["seconds"] for r in sel), max(r["seconds"] for r in sel)],
                "peak_rss_mb": [min(r["peak_rss_mb"] for r in sel),
                                max(r["peak_rss_mb"] for r in sel)]}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "annotation indexes encoded one after another vs in three threads "
                     "(sharded, in memory)",
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
        "summary": summary, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
