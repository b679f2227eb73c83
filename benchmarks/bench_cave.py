"""CAVE against the fake deployment of the tests (real sockets, caveclient as the client).

1. ``update_ids`` on N root ids (100k by default, 5 % of them stale after splits): time
   and requests, against what users write today with caveclient —
   (a) a per-id loop: ``is_latest_roots([id])`` for every id, then
       ``suggest_latest_roots(id, return_fraction_overlap=True)`` for the stale ones;
   (b) fafbseg's pattern: one ``is_latest_roots`` for all ids, then
       ``suggest_latest_roots`` per stale id.
   (a) is timed on a sample of ``--loop-sample`` ids (with the same stale share) and
   extrapolated to N, current and stale ids at their own measured rates (said in the JSON).
2. Query → visible: a synapse table of ``--rows`` rows (1M) served by the fake server,
   bound with ``add_cave_table`` as a point layer and rendered in headless Chromium;
   ``viewer.ng.screenshot()`` returns once the client has loaded what is visible. The time
   is split into the query (the fake server building its arrow answer, timed in the
   server, and the rest: transfer and caveclient's decoding into a DataFrame), the
   freshness check, the frame the encoder reads, encoding and writing, the rest of the
   binding (version and metadata requests, the viewer state), and the client loading it.

Writes benchmarks/results/cave.json. The fake server answers from memory on the same
machine: absolute times are a floor for a real deployment, request counts are exact.

Run: python benchmarks/bench_cave.py [--ids 100000] [--rows 1000000] [--repeats 2]
     [--only ids|visible]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from cave.fake_server import FakeCave, FakeTable, synapse_rows  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "cave.json"
SYN = "synapses_pni_2"


def make_client(cave):
    from caveclient import CAVEclient

    return CAVEclient(cave.datastack, server_address=cave.base_url, auth_token=cave.token,
                      write_server_cache=False)


def kinds(before: Counter, after: Counter) -> dict:
    made = after - before
    out: Counter = Counter()
    for path, n in made.items():
        out[path.rsplit("/", 1)[-1] if "/segmentation/api" in path else path] += n
    return dict(out)


def stale_deployment(n_ids: int, stale: float, seed: int = 0):
    """N cells of 4 supervoxels; a share of them split 75/25 after version 1."""
    cave = FakeCave(n_cells=n_ids, sv_per_cell=4)
    cave.materialize(at=cave.t0 + 86400)
    rng = np.random.default_rng(seed)
    split = np.sort(rng.choice(n_ids, int(n_ids * stale), replace=False))
    g = cave.graph
    t = cave.t0 + 2 * 86400
    for i, c in enumerate(split):
        g.split(g.cell_root(int(c)), 0.75, t + i)
    return cave.start(), split


def bench_update_ids(n_ids: int, stale: float, sample: int) -> dict:
    from nglive.cave import update_ids

    cave, split = stale_deployment(n_ids, stale)
    try:
        client = make_client(cave)
        g = cave.graph
        ids = np.array([g.cell_root(c) for c in range(n_ids)], np.uint64)
        svs = g.sv_ids[np.arange(n_ids) * 4 + 3].astype(np.int64)  # one per cell
        client.chunkedgraph.segmentation_info  # noqa: B018 - the one-off info request
        out = {"ids": n_ids, "stale": int(len(split))}

        before = cave.counts()
        t = time.perf_counter()
        result = update_ids(client, ids, progress=False)
        nglive_s = time.perf_counter() - t
        assert int(result["changed"].sum()) == len(split)
        out["nglive_update_ids"] = {"seconds": round(nglive_s, 3),
                                    "requests": kinds(before, cave.counts())}

        import pandas as pd

        table = pd.DataFrame({"pt_root_id": ids.astype(np.int64), "pt_supervoxel_id": svs})
        before = cave.counts()
        t = time.perf_counter()
        update_ids(client, table, progress=False)
        out["nglive_update_ids_with_supervoxels"] = {
            "seconds": round(time.perf_counter() - t, 3),
            "requests": kinds(before, cave.counts())}

        # (b) one is_latest_roots for all, then suggest_latest_roots per stale id
        cg = client.chunkedgraph
        before = cave.counts()
        t = time.perf_counter()
        latest = cg.is_latest_roots(ids)
        for rid in ids[~latest]:
            cg.suggest_latest_roots(int(rid), return_fraction_overlap=True)
        out["batched_is_latest_then_suggest_per_stale_id"] = {
            "seconds": round(time.perf_counter() - t, 3),
            "requests": kinds(before, cave.counts())}

        # (a) the per-id loop, on a sample with the same stale share
        rng = np.random.default_rng(1)
        stale_mask = ~latest
        n_stale = max(1, int(round(sample * stale)))
        pick = np.concatenate([rng.choice(np.flatnonzero(stale_mask), n_stale, replace=False),
                               rng.choice(np.flatnonzero(~stale_mask), sample - n_stale,
                                          replace=False)])
        times = {"current": [], "stale": []}
        before = cave.counts()
        for rid in ids[pick]:
            t = time.perf_counter()
            if cg.is_latest_roots([int(rid)])[0]:
                times["current"].append(time.perf_counter() - t)
            else:
                cg.suggest_latest_roots(int(rid), return_fraction_overlap=True)
                times["stale"].append(time.perf_counter() - t)
        per_current = float(np.mean(times["current"]))
        per_stale = float(np.mean(times["stale"]))
        estimate = per_current * (n_ids - len(split)) + per_stale * len(split)
        sampled_requests = kinds(before, cave.counts())
        out["per_id_loop"] = {
            "measured_on": sample, "measured_seconds": round(sum(map(sum, times.values())), 3),
            "seconds_per_current_id": round(per_current, 5),
            "seconds_per_stale_id": round(per_stale, 5),
            "extrapolated_seconds": round(estimate, 1),
            "requests_sampled": sampled_requests,
            "requests_extrapolated": (n_ids - len(split)) + 3 * len(split),
            "note": "extrapolated: each id's rate measured on the sample, times the counts",
        }
        out["speedup_vs_per_id_loop"] = round(estimate / nglive_s, 1)
        out["speedup_vs_batched_then_suggest"] = round(
            out["batched_is_latest_then_suggest_per_stale_id"]["seconds"] / nglive_s, 1)
        return out
    finally:
        cave.stop()


def bench_visible(rows: int, chromium: str, view_scale: float = 10) -> dict:
    from playwright.sync_api import sync_playwright

    import nglive

    cave = FakeCave(n_cells=2000, sv_per_cell=50)
    rng = np.random.default_rng(0)
    cave.add_table(FakeTable(SYN, "synapse", synapse_rows(cave.graph, rows, rng, cave.t0)))
    cave.materialize(at=cave.t0 + 86400)
    g = cave.graph
    for c in range(20):  # a few stale ids, as a real table has
        g.split(g.cell_root(c), 0.75, cave.t0 + 2 * 86400 + c)
    cave.start()
    viewer = nglive.Viewer(layout="xy", log_requests=True)
    out = {"rows": rows}
    try:
        client = make_client(cave)
        viewer.add_datastack(client, image=False, segmentation=False)  # 4x4x40 nm dims
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(viewer.url)
            page.wait_for_timeout(2000)
            t0 = time.perf_counter()
            layer = viewer.add_cave_table(client, SYN, segment="post_pt_root_id")
            bound = time.perf_counter() - t0
            with viewer.txn() as s:  # a field of view of 40 x 32 um, as users look
                s.position = [40000, 40000, 20000]
                s.cross_section_scale = view_scale
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                shot = pool.submit(viewer.ng.screenshot, size=[1000, 800])
                shot.result(timeout=600)
            total = time.perf_counter() - t0
            browser.close()
        tm = layer.timings
        server_build = cave.query_seconds[-1]
        parts = tm["query"] + tm["freshness"] + tm["frame"] + tm["encode"]
        out.update({
            "query_s": round(tm["query"], 3),
            "of_which_fake_server_builds_answer_s": round(server_build, 3),
            "transfer_and_decode_s": round(tm["query"] - server_build, 3),
            "freshness_check_s": round(tm["freshness"], 3),
            "encoder_frame_s": round(tm["frame"], 3),
            "encode_and_write_s": round(tm["encode"], 3),
            "other_s": round(bound - parts, 3),
            "bound_s": round(bound, 3),
            "client_loads_visible_s": round(total - bound, 3),
            "query_to_visible_s": round(total, 3),
            "stale_ids": int(len(layer.stale_ids)),
            "view_voxels_per_pixel": view_scale,
            "client_requests": len(viewer.server.requests),
        })
    finally:
        viewer.close()
        cave.stop()
    return out


def ranges(runs: list[dict]) -> dict:
    """[min, max] of every number the runs share (nested one level)."""
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            vals = [r[key] for r in runs]
            out[key] = [min(vals), max(vals)]
        elif isinstance(value, dict):
            for sub in ("seconds", "extrapolated_seconds"):
                if isinstance(value.get(sub), int | float):
                    vals = [r[key][sub] for r in runs]
                    out[f"{key}.{sub}"] = [min(vals), max(vals)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=100_000)
    ap.add_argument("--stale", type=float, default=0.05)
    ap.add_argument("--loop-sample", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=["ids", "visible"])
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results = dict(previous.get("results", {}))
    loads = []
    for name, run in (("update_ids", lambda: bench_update_ids(args.ids, args.stale,
                                                              args.loop_sample)),
                      ("query_to_visible", lambda: bench_visible(args.rows, args.chromium))):
        if args.only not in (None, name.split("_")[0] if name == "update_ids" else "visible"):
            continue
        runs = []
        for _ in range(args.repeats):
            runs.append(run())
            loads.append(os.getloadavg())
            print(name, json.dumps(runs[-1], indent=1))
        results[name] = {"range": ranges(runs), "runs": runs}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "CAVE: update_ids and query-to-visible against the fake CAVE server",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_after_each_run": loads},
        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
