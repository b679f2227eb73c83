"""Edit-to-request latency: one in-place edit of a bound 100k-row properties table.

A Viewer with a mesh layer whose properties table has N rows (a label, two numbers,
a bool tag) is opened in headless Chromium (Debian's chromium). The benchmark then
edits one label in place and runs the post-cell check (what IPython runs after every
cell), and times the stages up to the moment the server sees the browser's request
for the new generation's ``info``. Results go to benchmarks/results/edit_latency.json.

Run: python benchmarks/bench_edit_latency.py [--rows 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

RESULTS = Path(__file__).parent / "results" / "edit_latency.json"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def make_table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = np.uint64(720575940379279360) + np.arange(1, n + 1, dtype=np.uint64)
    return pd.DataFrame({
        "segment_id": ids,
        "name": [f"cell_{i}" for i in range(n)],
        "size": rng.random(n).astype(np.float32),
        "count": rng.integers(0, 1000, n, dtype=np.int32),
        "proofread": rng.random(n) < 0.5,
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")

    from playwright.sync_api import sync_playwright

    import nglive
    from nglive import live

    table = make_table(args.rows)
    viewer = nglive.Viewer(log_requests=True, layout="3d")
    meshes = {int(table["segment_id"].iloc[0]): trimesh.creation.icosphere()}
    layer = viewer.add_meshes("cells", meshes, table, label_col="name")
    runs = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 600})
        page.goto(viewer.url)
        first = viewer.server.wait_for_request(
            lambda r: r.key.endswith("properties/0/info"), timeout=60)
        assert first is not None, "the browser never fetched the properties"
        for i in range(args.repeats):
            gen = layer.generations["properties"] + 1
            want = f"cells/properties/{gen}/info"
            t0 = time.perf_counter()
            table.loc[i, "name"] = f"edited_{i}"
            t_edit = time.perf_counter()
            live.check_all()  # the post_run_cell hook: fingerprint + snapshot, then returns
            t_hook = time.perf_counter()
            layer.wait()
            t_served = time.perf_counter()
            rec = viewer.server.wait_for_request(lambda r, w=want: r.key == w, timeout=60)
            t_req = time.perf_counter()
            assert rec is not None, f"no request for {want}"
            runs.append({
                "kernel_blocked_s": round(t_hook - t_edit, 4),
                "encode_and_write_s": round(t_served - t_hook, 4),
                "browser_request_after_switch_s": round(t_req - t_served, 4),
                "edit_to_request_s": round(t_req - t0, 4),
            })
            print(runs[-1])
        browser.close()
    viewer.close()
    summary = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    result = {
        "benchmark": "edit_to_request_latency",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": args.rows,
        "repeats": args.repeats,
        "median": summary,
        "runs": runs,
        "note": "no reference tool offers a live loop; nglui needs an upload and a new link",
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("median", summary)


if __name__ == "__main__":
    main()
