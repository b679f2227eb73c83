"""Skeleton encoding: nglive's vectorised encoder against navis' own precomputed writer.

Neurons are copies of navis' five example skeletons (~4.5k nodes each; one has two
roots) under new uint64 ids, shifted apart. Both tools start from the same NeuronList
and write to a fresh directory on local disk:

- ``navis``: ``navis.write_precomputed(neurons, dir, radius=True)`` (one file per neuron);
- ``nglive_unsharded`` / ``nglive_sharded``: ``navis_table`` (the node tables in one
  DataFrame, nm) then ``encode_skeletons`` with radius and type as float32 (what
  ``add_skeletons`` writes), files written.

``encode_s`` is nglive's encoding alone (validation included); ``total_s`` is table
conversion + encoding + writing. ``nglive_cached_layer`` is what a live edit costs in
``add_skeletons``: the first encode through its per-skeleton cache, then one node moved
(digests of every row, one skeleton re-encoded, shards repacked). ``cloudvolume``:
each neuron made a ``cloudvolume.Skeleton`` (vertices, edges from the parent column,
radii, types; ``space="physical"``) and written with ``to_precomputed()``, one file per
neuron, as a user of cloud-volume would (``pip install cloud-volume``; skipped without).

    python benchmarks/bench_skeletons.py                 # 1k and 10k neurons
    python benchmarks/bench_skeletons.py --neurons 1000

Writes benchmarks/results/skeletons.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "skeletons.json"
COLUMNS = ["node_id", "parent_id", "x", "y", "z", "radius", "type"]


def make_neurons(n: int):
    import navis
    import numpy as np

    base = navis.example_neurons(kind="skeleton")
    out = []
    for i in range(n):
        neuron = base[i % len(base)].copy()
        neuron.id = 720575940000000000 + i
        neuron.nodes["x"] += np.float32(20000 * (i // len(base)))
        out.append(neuron)
    return navis.NeuronList(out)


def write_files(files: dict, directory: str) -> None:
    for key, data in files.items():
        with open(os.path.join(directory, key), "wb") as f:
            f.write(data)


def run(n: int) -> dict:
    import navis

    from nglive.formats.skeletons import encode_skeletons
    from nglive.layers.skeletons import navis_table

    t = time.perf_counter()
    neurons = make_neurons(n)
    build_s = time.perf_counter() - t
    nodes = sum(len(x.nodes) for x in neurons)
    row = {"neurons": n, "nodes": int(nodes), "build_neurons_s": round(build_s, 2)}

    # unsharded (one file per neuron, like navis) only up to 1k: above 512 skeletons
    # add_skeletons shards, and 10k files would only measure the disk
    for sharded in ((False, True) if n <= 1000 else (True,)):
        d = tempfile.mkdtemp(prefix="bench-skel-")
        t0 = time.perf_counter()
        table = navis_table(neurons, columns=COLUMNS)
        t1 = time.perf_counter()
        files = encode_skeletons(table, several_roots=True, sharded=sharded, as_float=True)
        t2 = time.perf_counter()
        write_files(files, d)
        t3 = time.perf_counter()
        name = "nglive_sharded" if sharded else "nglive_unsharded"
        row[name] = {"convert_s": round(t1 - t0, 3), "encode_s": round(t2 - t1, 3),
                     "write_s": round(t3 - t2, 3), "total_s": round(t3 - t0, 3),
                     "files": len(files),
                     "bytes": int(sum(len(v) for v in files.values()))}
        del table, files
        shutil.rmtree(d)

    # a live edit through add_skeletons' cache: one node of one neuron moved
    from nglive.layers.skeleton_cache import SkeletonCache

    table = navis_table(neurons, columns=COLUMNS)
    cache = SkeletonCache()
    keywords = dict(id_col="skeleton_id", key=0, several_roots=True, as_float=True)
    t0 = time.perf_counter()
    cache.encode(table, **keywords)
    t1 = time.perf_counter()
    table.iloc[len(table) // 2, table.columns.get_loc("x")] += 1000.0
    cache.encode(table, **keywords)
    t2 = time.perf_counter()
    row["nglive_cached_layer"] = {"first_s": round(t1 - t0, 3),
                                  "one_node_edit_s": round(t2 - t1, 3),
                                  "reencoded": cache.reencoded}
    del table, cache

    d = tempfile.mkdtemp(prefix="bench-skel-navis-")
    t0 = time.perf_counter()
    navis.write_precomputed(neurons, d, write_info=True, radius=True)
    t1 = time.perf_counter()
    names = os.listdir(d)
    row["navis"] = {"total_s": round(t1 - t0, 3), "files": len(names),
                    "bytes": int(sum(os.path.getsize(os.path.join(d, x)) for x in names))}
    shutil.rmtree(d)
    cloudvolume_row = run_cloudvolume(neurons)
    if cloudvolume_row:
        row["cloudvolume"] = cloudvolume_row
    if "nglive_unsharded" in row:
        row["speedup_unsharded_vs_navis"] = round(
            row["navis"]["total_s"] / row["nglive_unsharded"]["total_s"], 1)
    row["speedup_sharded_vs_navis"] = round(
        row["navis"]["total_s"] / row["nglive_sharded"]["total_s"], 1)
    return row


def run_cloudvolume(neurons) -> dict | None:
    """cloud-volume's writer, one neuron at a time (its API is per skeleton)."""
    try:
        from cloudvolume import Skeleton
    except ImportError:
        return None
    import numpy as np
    import pandas as pd

    d = tempfile.mkdtemp(prefix="bench-skel-cv-")
    t0 = time.perf_counter()
    files = 0
    for neuron in neurons:
        nodes = neuron.nodes
        scale = float(neuron.units.to("nm").magnitude) if neuron.units is not None else 1.0
        vertices = nodes[["x", "y", "z"]].to_numpy(np.float32) * np.float32(scale)
        index = pd.Index(nodes["node_id"].to_numpy())
        child = np.flatnonzero(nodes["parent_id"].to_numpy() >= 0)
        parent = index.get_indexer(nodes["parent_id"].to_numpy()[child])
        edges = np.stack([child, parent], axis=1).astype(np.uint32)
        radii = nodes["radius"].fillna(0).to_numpy(np.float32) * np.float32(scale)
        skel = Skeleton(vertices, edges, radii=radii,
                        vertex_types=nodes["type"].cat.codes.to_numpy(np.uint8)
                        if hasattr(nodes["type"], "cat") else None,
                        segid=int(neuron.id), space="physical")
        with open(os.path.join(d, str(neuron.id)), "wb") as f:
            f.write(skel.to_precomputed())
        files += 1
    t1 = time.perf_counter()
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    shutil.rmtree(d)
    return {"total_s": round(t1 - t0, 3), "files": files, "bytes": int(size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    rows = []
    for n in args.neurons:
        row = run(n)
        print(json.dumps(row), flush=True)
        rows.append(row)
    import navis

    result = {
        "benchmark": "skeletons",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "navis": navis.__version__,
        "load_avg_at_end": os.getloadavg(),
        "note": "copies of navis' 5 example skeletons; local disk",
        "rows": rows,
    }
    if args.out.exists():  # keep rows of other sizes from an earlier run
        earlier = json.loads(args.out.read_text()).get("rows", [])
        done = {r["neurons"] for r in rows}
        result["rows"] = sorted([r for r in earlier if r["neurons"] not in done] + rows,
                                key=lambda r: r["neurons"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
