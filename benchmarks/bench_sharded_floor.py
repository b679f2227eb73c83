"""The floor under any annotation writer that shards through tensorstore.

Writes N small values (28 bytes, the size of a point's by-id record with one float32
property and one relationship) through tensorstore's ``neuroglancer_uint64_sharded``
kvstore driver into a ``memory://`` store, in one transaction, with the sharding
parameters nglive chooses and a few others. Nothing else happens, so the time and
memory here are a lower bound for writing the by-id index of N annotations the way
DESIGN.md prescribes (the spatial and relationship indexes come on top).

Each configuration runs in a fresh subprocess; memory is that process's resident set
(``VmRSS`` after the inputs are built, ``VmHWM`` for the peak).

    python benchmarks/bench_sharded_floor.py [--sizes 100000 1000000]

Writes benchmarks/results/sharded_floor.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

from proc_memory import status_mb

RESULTS = Path(__file__).parent / "results" / "sharded_floor.json"
VALUE_BYTES = 28


def child(n: int, shard_bits: int | None, minishard_bits: int | None) -> dict:
    import numpy as np
    import tensorstore as ts

    from nglive.formats.annotations.sharding import choose_sharding, uint64_keys

    ids = np.random.default_rng(0).permutation(n).astype(np.uint64) + np.uint64(1)
    keys = uint64_keys(ids)
    values = [bytes(VALUE_BYTES)] * n
    sharding = choose_sharding(n, VALUE_BYTES * n)
    if shard_bits is not None:
        sharding.update(shard_bits=shard_bits, minishard_bits=minishard_bits)
    rss_inputs = status_mb("VmRSS")
    context = ts.Context()
    kv = ts.KvStore.open(
        {"driver": "neuroglancer_uint64_sharded", "metadata": sharding,
         "base": f"memory://floor-{uuid.uuid4().hex}/by_id/"},
        context=context,
    ).result()
    txn = ts.Transaction()
    t0 = time.perf_counter()
    write = kv.with_transaction(txn).write
    for k, v in zip(keys, values, strict=True):
        write(k, v)
    t1 = time.perf_counter()
    rss_staged = status_mb("VmRSS")
    txn.commit_async().result()
    t2 = time.perf_counter()
    return {
        "n": n, "shard_bits": sharding["shard_bits"],
        "minishard_bits": sharding["minishard_bits"],
        "stage_s": round(t1 - t0, 3), "commit_s": round(t2 - t1, 3),
        "total_s": round(t2 - t0, 3),
        "us_per_key": round((t2 - t0) / n * 1e6, 2),
        "rss_inputs_mb": round(rss_inputs), "rss_staged_mb": round(rss_staged),
        "peak_rss_mb": round(status_mb("VmHWM")),
        "staged_bytes_per_key": round((rss_staged - rss_inputs) * 2**20 / n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        n, sb, mb = args.child
        print(json.dumps(child(int(n), None if sb == "-" else int(sb),
                               None if mb == "-" else int(mb))))
        return
    runs = []
    for n in args.sizes:
        # nglive's choice first, then more shards (parallel commit) and other minishards
        for sb, mb in [("-", "-"), ("2", "9"), ("4", "7"), ("0", "14")]:
            proc = subprocess.run([sys.executable, __file__, "--child", str(n), sb, mb],
                                  capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["nglive_default"] = sb == "-"
            runs.append(r)
            print(r, flush=True)
    try:
        from importlib.metadata import version
        versions = {p: version(p) for p in ("tensorstore", "numpy")}
    except Exception:  # noqa: BLE001
        versions = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "N 28-byte values through tensorstore's neuroglancer_uint64_sharded "
                     "driver, one transaction, memory:// (a floor for any by-id index "
                     "written that way)",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "versions": versions,
        "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
