"""A 100k-row annotation table edited in place: time until the new source is served.

Points with a float property and a uint64 relationship (as bench_annotations.py) bound
with ``Viewer.add_annotations``; one coordinate is edited, ``update()`` regenerates
(encode, write a generation, switch the layer), then the new ``info`` is fetched over
HTTP. Both the default (sharded) and the unsharded (one file per key) layouts. No reference
tool has a live path; ngsidekick rewrites a directory and needs a separate server.
Writes benchmarks/results/live_annotations.json.

Run: python benchmarks/bench_live_annotations.py [--rows 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import urllib.request
from pathlib import Path

import numpy as np
from bench_annotations import make_points

RESULTS = Path(__file__).parent / "results" / "live_annotations.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import nglive

    viewer = nglive.Viewer()
    results = {}
    for layout, sharded in (("sharded (default)", None), ("unsharded", False)):
        df = make_points(args.rows)
        kw = {} if sharded is None else {"write_sharded": sharded}
        name = f"pts-{len(results)}"
        t0 = time.perf_counter()
        layer = viewer.add_annotations(name, df, "point", properties=["score"],
                                       relationships=["segment"], **kw)
        first = time.perf_counter() - t0
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            df.loc[i, "x"] += 1.0
            layer.update()
            url = viewer.state.layers[name].source[0].url.removeprefix("precomputed://")
            urllib.request.urlopen(url + "/info").read()
            times.append(time.perf_counter() - t0)
        results[layout] = {"first_s": round(first, 3),
                           "edit_to_served_s": [round(t, 3) for t in times],
                           "median_s": round(float(np.median(times)), 3)}
        print(layout, results[layout])
    viewer.close()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "live annotation edit, regenerated and served",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "rows": args.rows, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
