"""Packing N small values into shard files: tensorstore's driver against nglive's packer.

N values of 28 bytes (a point's by-id record with one float32 property and one
relationship), keyed by a random permutation of 1..N, with the sharding parameters
nglive chooses. Two ways, each in a fresh subprocess:

- ``tensorstore``: one ``write`` per key through the ``neuroglancer_uint64_sharded``
  kvstore driver into ``memory://``, in one transaction (how nglive packed shards
  before, and how ngsidekick does); the shard bytes are then read back.
- ``nglive``: ``nglive.formats.sharded.pack_shards`` from one buffer and its offsets.

Time runs from the keys and values in memory (as numpy arrays for nglive; as the
8-byte keys and ``bytes`` values the driver needs for tensorstore, built before the
clock starts) to every shard's bytes in hand. Memory is the process's resident set
(``VmHWM``, the peak). Repeated ``--repeats`` times; the load average is recorded.

    python benchmarks/bench_sharded_floor.py [--sizes 1000000 10000000] [--repeats 2]

Writes benchmarks/results/sharded_floor.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import status_mb

RESULTS = Path(__file__).parent / "results" / "sharded_floor.json"
VALUE_BYTES = 28


def child(tool: str, n: int, shard_bits: int | None) -> dict:
    import numpy as np

    from nglive.formats.annotations.sharding import choose_sharding

    ids = np.random.default_rng(0).permutation(n).astype(np.uint64) + np.uint64(1)
    words = np.arange(n * VALUE_BYTES // 4, dtype=np.uint32)
    bounds = np.arange(n + 1, dtype=np.int64) * (VALUE_BYTES // 4)
    sharding = choose_sharding(n, VALUE_BYTES * n)
    if shard_bits is not None:  # tensorstore commits shards in parallel: try more of them
        sharding["minishard_bits"] -= shard_bits
        sharding["shard_bits"] = shard_bits
    if tool == "nglive":
        from nglive.formats.sharded import pack_shards

        rss_inputs = status_mb("VmRSS")
        t0 = time.perf_counter()
        c0 = time.process_time()
        files = pack_shards(ids, words, bounds, sharding)
    else:
        import uuid

        import tensorstore as ts

        raw = ids.astype(">u8").tobytes()
        keys = [raw[i:i + 8] for i in range(0, len(raw), 8)]
        data = words.tobytes()
        values = [data[i:i + VALUE_BYTES] for i in range(0, len(data), VALUE_BYTES)]
        del raw, data
        rss_inputs = status_mb("VmRSS")
        t0 = time.perf_counter()
        c0 = time.process_time()
        context = ts.Context()
        root = f"memory://floor-{uuid.uuid4().hex}/"
        kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "metadata": sharding,
                              "base": root}, context=context).result()
        txn = ts.Transaction()
        write = kv.with_transaction(txn).write
        for k, v in zip(keys, values, strict=True):
            write(k, v)
        txn.commit_async().result()
        base = ts.KvStore.open(root, context=context).result()
        files = {name.decode(): base.read(name).result().value for name in base.list().result()}
    seconds = time.perf_counter() - t0
    return {
        "tool": tool, "n": n, "nglive_default_sharding": shard_bits is None,
        "shard_bits": sharding["shard_bits"],
        "minishard_bits": sharding["minishard_bits"],
        "seconds": round(seconds, 3), "cpu_seconds": round(time.process_time() - c0, 3),
        "us_per_key": round(seconds / n * 1e6, 3),
        "shards": len(files), "output_mb": round(sum(map(len, files.values())) / 2**20, 1),
        "rss_inputs_mb": round(rss_inputs), "peak_rss_mb": round(status_mb("VmHWM")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--tools", nargs="*", default=["tensorstore", "nglive"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shard-bits", type=int, nargs="*", default=[2],
                    help="also run with these shard_bits (same keys per shard in total)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        sb = None if args.child[2] == "-" else int(args.child[2])
        print(json.dumps(child(args.child[0], int(args.child[1]), sb)))
        return
    runs = []
    for n in args.sizes:
        for _, sb, tool in itertools.product(range(args.repeats), ["-", *args.shard_bits],
                                             args.tools):
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, __file__, "--child", tool, str(n), str(sb)],
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["load_average_1min_before"] = round(load, 2)
            runs.append(r)
            print(r, flush=True)
    speedups = {}
    for n in args.sizes:
        times = {t: [r["seconds"] for r in runs if r["n"] == n and r["tool"] == t]
                 for t in args.tools}
        if all(times.get(t) for t in ("nglive", "tensorstore")):
            # tensorstore at its fastest sharding against nglive at its slowest run
            speedups[str(n)] = {
                "best_vs_best": round(min(times["tensorstore"]) / min(times["nglive"]), 1),
                "tensorstore_best_vs_nglive_worst": round(
                    min(times["tensorstore"]) / max(times["nglive"]), 1)}
    try:
        from importlib.metadata import version
        versions = {p: version(p) for p in ("tensorstore", "numpy")}
    except Exception:  # noqa: BLE001
        versions = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "N 28-byte values packed into shard files: tensorstore's "
                     "neuroglancer_uint64_sharded driver (one write per key, memory://) "
                     "against nglive.formats.sharded.pack_shards",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "versions": versions,
        "speedup_tensorstore_over_nglive": speedups,
        "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
