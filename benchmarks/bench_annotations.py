"""Annotation writers side by side: nglive, ngsidekick, neuroglancer's AnnotationWriter.

Points with one float32 property and one uint64 relationship (~N/100 distinct segments),
or (``--kind line``) lines with two relationships, sharded where the tool can shard.
Every (tool, size) runs in a fresh subprocess so that ru_maxrss is that run's peak
memory; the table is built in the child, so peak memory includes the input DataFrame
for every tool alike. ``--repeats`` runs everything again, interleaved, and the load
average before each run is recorded (the machine is shared); ``summary`` gives per
size the range of each tool's times and the speed-up of nglive's slowest run over
ngsidekick's fastest.

    python benchmarks/bench_annotations.py [--sizes 10000 100000 1000000] [--ng-max 100000]
        [--kind point|line] [--repeats 2]

Writes benchmarks/results/annotations.json (points) or annotations_lines.json (lines).
Needs: ngsidekick (with duckdb<2 for its sharded writer), neuroglancer, tensorstore.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_points(n: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": rng.uniform(0, 100_000, n), "y": rng.uniform(0, 100_000, n),
        "z": rng.uniform(0, 40_000, n),
        "score": rng.random(n).astype(np.float32),
        "segment": rng.integers(1, max(2, n // 100) + 1, n).astype(np.uint64),
    })
    df.index = df.index.astype(np.uint64)
    return df


def make_lines(n: int, seed: int = 0):
    """Synapse-like lines (~200 nm long) with two relationships, ~N/100 segments each."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    a = np.c_[rng.uniform(0, 100_000, n), rng.uniform(0, 100_000, n),
              rng.uniform(0, 40_000, n)]
    b = a + rng.normal(0, 120, (n, 3))
    segments = max(2, n // 100)
    df = pd.DataFrame({
        "xa": a[:, 0], "ya": a[:, 1], "za": a[:, 2],
        "xb": b[:, 0], "yb": b[:, 1], "zb": b[:, 2],
        "score": rng.random(n).astype(np.float32),
        "pre": rng.integers(1, segments + 1, n).astype(np.uint64),
        "post": rng.integers(1, segments + 1, n).astype(np.uint64),
    })
    df.index = df.index.astype(np.uint64)
    return df


def run_one(tool: str, n: int, out: str, kind: str = "point") -> dict:
    # imports (and ngsidekick's numba/duckdb start-up) happen before the clock starts
    if tool == "nglive":
        from nglive.formats.annotations import write_annotations
    elif tool == "ngsidekick":
        from ngsidekick import write_precomputed_annotations
    elif tool == "neuroglancer":
        import neuroglancer
        from neuroglancer.write_annotations import AnnotationWriter
    else:
        raise ValueError(tool)
    df = make_points(n) if kind == "point" else make_lines(n)
    rels = ["segment"] if kind == "point" else ["pre", "post"]
    t0 = time.perf_counter()
    if tool == "nglive":
        write_annotations(df, "xyz", kind, properties=["score"], relationships=rels,
                          output_dir=out)
    elif tool == "ngsidekick":
        write_precomputed_annotations(df, "xyz", kind, properties=["score"],
                                      relationships=rels, output_dir=out)
    elif kind == "line":
        cs = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[1, 1, 1])
        w = AnnotationWriter(cs, "line", relationships=rels, properties=[
            neuroglancer.AnnotationPropertySpec(id="score", type="float32")])
        a = df[["xa", "ya", "za"]].to_numpy()
        b = df[["xb", "yb", "zb"]].to_numpy()
        score = df["score"].to_numpy()
        pre, post = df["pre"].to_numpy(), df["post"].to_numpy()
        for i in range(n):  # the reference writer's own API is one call per annotation
            w.add_line(a[i], b[i], id=int(df.index[i]), score=float(score[i]),
                       pre=[int(pre[i])], post=[int(post[i])])
        w.write(out)
    else:
        cs = neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=[1, 1, 1])
        w = AnnotationWriter(cs, "point", relationships=["segment"], properties=[
            neuroglancer.AnnotationPropertySpec(id="score", type="float32")])
        xyz = df[["x", "y", "z"]].to_numpy()
        score = df["score"].to_numpy()
        seg = df["segment"].to_numpy()
        for i in range(n):
            w.add_point(xyz[i], id=int(df.index[i]), score=float(score[i]),
                        segment=[int(seg[i])])
        w.write(out)
    seconds = time.perf_counter() - t0
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    files = sum(len(fs) for _, _, fs in os.walk(out))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"tool": tool, "n": n, "seconds": round(seconds, 3), "peak_mb": round(peak / 2**20),
            "output_mb": round(size / 2**20, 2), "files": files}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--ng-max", type=int, default=100_000,
                    help="largest size for neuroglancer's AnnotationWriter (slow)")
    ap.add_argument("--tools", nargs="+", default=["nglive", "ngsidekick", "neuroglancer"])
    ap.add_argument("--kind", choices=["point", "line"], default="point",
                    help="points with one relationship, or lines with two")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--child", nargs=2, metavar=("TOOL", "N"))
    args = ap.parse_args()
    if args.child:
        out = tempfile.mkdtemp(prefix="bench-annot-")
        try:
            print(json.dumps(run_one(args.child[0], int(args.child[1]), out, args.kind)))
        finally:
            shutil.rmtree(out, ignore_errors=True)
        return
    rows = []
    for repeat in range(args.repeats):
        for n in args.sizes:
            for tool in args.tools:
                if tool == "neuroglancer" and n > args.ng_max:
                    continue
                load = os.getloadavg()[0]
                p = subprocess.run([sys.executable, __file__, "--child", tool, str(n),
                                    "--kind", args.kind], capture_output=True, text=True)
                if p.returncode:
                    row = {"tool": tool, "n": n, "error": p.stderr.strip().splitlines()[-1:]}
                else:
                    row = json.loads(p.stdout.strip().splitlines()[-1])
                row.update(repeat=repeat, load_average_1min_before=round(load, 2))
                print(row, flush=True)
                rows.append(row)
    summary = {}
    for n in args.sizes:
        entry = {}
        for tool in args.tools:
            ok = [r for r in rows if r["n"] == n and r["tool"] == tool and "seconds" in r]
            if ok:
                entry[tool] = {"seconds": [min(r["seconds"] for r in ok),
                                           max(r["seconds"] for r in ok)],
                               "peak_mb": [min(r["peak_mb"] for r in ok),
                                           max(r["peak_mb"] for r in ok)]}
        if "nglive" in entry and "ngsidekick" in entry:
            entry["ngsidekick_fastest_over_nglive_slowest"] = round(
                entry["ngsidekick"]["seconds"][0] / entry["nglive"]["seconds"][1], 1)
        summary[str(n)] = entry
    versions = {}
    for mod in ("ngsidekick", "neuroglancer", "tensorstore", "duckdb", "numpy", "pandas"):
        try:
            from importlib.metadata import version
            versions[mod] = version(mod)
        except Exception:  # noqa: BLE001 - a missing tool is recorded as such
            versions[mod] = None
    what = ("points, float32 property, one uint64 relationship, sharded" if args.kind == "point"
            else "lines, float32 property, two uint64 relationships, sharded")
    result = {"benchmark": what, "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_after": os.getloadavg()},
              "versions": versions, "summary": summary, "rows": rows}
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = "annotations.json" if args.kind == "point" else "annotations_lines.json"
    with open(os.path.join(HERE, "results", name), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
