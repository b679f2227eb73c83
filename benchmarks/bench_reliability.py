"""Reliability over a long session: reader latency under regeneration, memory over edits.

1. **Reader latency**: 4 KiB values are read over HTTP by reader threads in a *separate
   process* (as a browser is), on keep-alive connections, while the kernel process is
   idle and then while it continuously regenerates a bound 100k-row table (annotations:
   points with a float property and a uint64 relationship; segment properties: a
   label, two numbers and a tag). p50 / p99 / max per phase.
2. **Memory over a session**: RSS of the kernel process and bytes held by the Store
   over 1,000 edits of a bound 10k-row properties table (each edit regenerates), and
   over 100 viewer re-creations (a cell that makes a viewer with a layer, re-run; the
   old viewer is dropped as a notebook drops it). Also the number of nglive threads.

No reference tool serves data from a kernel while regenerating it; the reader process
is the reference point (idle latency). Writes benchmarks/results/reliability.json.

``--baseline COMMIT`` runs the same measurements on that commit of nglive first (each
version in a fresh process), e.g. the commit before the reliability fixes.

Run: python benchmarks/bench_reliability.py [--seconds 10] [--edits 1000] [--viewers 100]
     [--baseline 9470f1f]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_annotations import make_points
from proc_memory import status_mb

RESULTS = Path(__file__).parent / "results" / "reliability.json"
VALUE_SIZE = 4096
N_KEYS = 256

# The reader process: N threads, one keep-alive connection each, random keys, for a
# given time; prints every latency (ms) as JSON.
READER = textwrap.dedent("""
    import http.client, json, random, sys, threading, time
    host, port, path, seconds, threads, n_keys = sys.argv[1:7]
    port, seconds, threads, n_keys = int(port), float(seconds), int(threads), int(n_keys)
    out = [[] for _ in range(threads)]
    errors = [0]
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()
    def run(i):
        rnd = random.Random(i)
        conn = http.client.HTTPConnection(host, port, timeout=30)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            key = rnd.randrange(n_keys)
            t0 = time.perf_counter()
            conn.request("GET", f"{path}k{key}")
            resp = conn.getresponse()
            body = resp.read()
            out[i].append((time.perf_counter() - t0) * 1000)
            if resp.status != 200 or len(body) != 4096:
                errors[0] += 1
            time.sleep(0.002)  # a browser does not read back to back forever
        conn.close()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    print(json.dumps({"latencies": [x for o in out for x in o], "errors": errors[0]}))
""")


def summary(latencies: list[float]) -> dict:
    a = np.asarray(latencies)
    return {"requests": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "max_ms": round(float(a.max()), 2)}


def read_while(viewer, base_path: str, seconds: float, threads: int, work=None) -> dict:
    """Run the reader process for ``seconds`` while ``work(stop_event)`` runs here."""
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, "127.0.0.1", str(viewer.server.port), base_path,
         str(seconds), str(threads), str(N_KEYS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        stop = threading.Event()
        counter = {"regenerations": 0}
        worker = None
        if work is not None:
            worker = threading.Thread(target=work, args=(stop, counter))
            worker.start()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=seconds + 120)
        stop.set()
        if worker is not None:
            worker.join(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    data = json.loads(out.strip().splitlines()[-1])
    result = summary(data["latencies"])
    result["errors"] = data["errors"]
    result.update(counter if work is not None else {})
    return result


def edit_times(layer, df: pd.DataFrame, column: str, repeats: int = 5) -> dict:
    """Seconds from an edit to the new generation being served, no readers running."""
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        if df[column].dtype.kind == "f":
            df.loc[df.index[i], column] += 1.0
        else:
            df.loc[df.index[i], column] = f"timed {i}"
        layer.update()
        times.append(time.perf_counter() - t0)
    return {"edit_to_served_s_median": round(float(np.median(times)), 3),
            "edit_to_served_s": [round(t, 3) for t in times]}


def edit_loop(layer, df: pd.DataFrame, column: str):
    def work(stop, counter):
        i = 0
        while not stop.is_set():
            if df[column].dtype.kind == "f":
                df.loc[df.index[i % len(df)], column] += 1.0
            else:
                df.loc[df.index[i % len(df)], column] = f"edited {i}"
            layer.update()
            counter["regenerations"] += 1
            i += 1
    return work


def properties_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "segment_id": np.uint64(720575940379279360) + np.arange(1, n + 1, dtype=np.uint64),
        "name": [f"cell_{i}" for i in range(n)],
        "size": rng.random(n).astype(np.float32),
        "count": rng.integers(0, 1000, n, dtype=np.int32),
        "proofread": rng.random(n) < 0.5,
    })


def latency(seconds: float, threads: int, rows: int) -> dict:
    import trimesh

    import nglive

    viewer = nglive.Viewer()
    gen = viewer.store.write_generation(
        "bench-reads", {f"k{i}": os.urandom(VALUE_SIZE) for i in range(N_KEYS)})
    base = f"/nglive/{viewer.server.token}/{gen.path}/"
    out = {"idle": read_while(viewer, base, seconds, threads)}
    print("idle", out["idle"], flush=True)

    points = make_points(rows)
    layer = viewer.add_annotations("points", points, "point", properties=["score"],
                                   relationships=["segment"])
    out["annotations_100k"] = read_while(viewer, base, seconds, threads,
                                         edit_loop(layer, points, "x"))
    out["annotations_100k"].update(edit_times(layer, points, "x"))
    print("during annotation regenerations", out["annotations_100k"], flush=True)
    viewer.remove_layer("points")

    # one file per annotation (the layout before sharding became the default): 100k keys
    layer = viewer.add_annotations("unsharded", points, "point", properties=["score"],
                                   relationships=["segment"], write_sharded=False)
    out["annotations_100k_unsharded"] = read_while(viewer, base, seconds, threads,
                                                   edit_loop(layer, points, "x"))
    out["annotations_100k_unsharded"].update(edit_times(layer, points, "x"))
    print("during unsharded annotation regenerations", out["annotations_100k_unsharded"],
          flush=True)
    viewer.remove_layer("unsharded")

    table = properties_table(rows)
    meshes = {int(table["segment_id"].iloc[0]): trimesh.creation.icosphere()}
    cells = viewer.add_meshes("cells", meshes, table, label_col="name")
    out["segment_properties_100k"] = read_while(viewer, base, seconds, threads,
                                                edit_loop(cells, table, "name"))
    out["segment_properties_100k"].update(edit_times(cells, table, "name"))
    print("during segment-property regenerations", out["segment_properties_100k"], flush=True)
    viewer.close()
    return out


def store_bytes(store) -> int:
    if hasattr(store, "stored_bytes"):
        return store.stored_bytes()
    with store._lock:  # versions before stored_bytes(): what the Store wrote
        return sum(store._sizes.values())


def nglive_threads() -> int:
    return sum(t.name.startswith("nglive") for t in threading.enumerate())


def memory(edits: int, viewers: int, rows: int) -> dict:
    import nglive
    from nglive import live

    # edits of a bound 10k-row properties table, each one regenerated by the post-cell
    # check, as fast as they come (a loop, or a slider)
    viewer = nglive.Viewer()
    table = properties_table(10_000)
    layer = viewer.add_segment_properties("cells", table, source="precomputed://gs://x/seg",
                                          id_col="segment_id", label_col="name")
    gc.collect()
    samples = []
    t0 = time.perf_counter()
    for i in range(edits + 1):
        if i % max(1, edits // 10) == 0:
            samples.append({"edit": i, "rss_mb": round(status_mb("VmRSS"), 1),
                            "store_mb": round(store_bytes(viewer.store) / 2**20, 2),
                            "store_keys": len(viewer.store.list()),
                            "threads": nglive_threads()})
        table.loc[i % len(table), "size"] = float(i)
        live.check_all()
        layer.wait()
    seconds = time.perf_counter() - t0
    generations = layer.generations["properties"]
    viewer.close()
    del viewer, layer
    edits_out = {"edits": edits, "generations_written": generations,
                 "seconds": round(seconds, 1), "samples": samples}
    print("edits", samples[0], samples[-1], flush=True)

    # a cell that makes a viewer with a 100k-row annotation layer, re-run: the name is
    # re-bound and the old viewer dropped, as a notebook drops it
    pts = make_points(rows)
    gc.collect()
    recreate = []
    viewer = None
    for i in range(viewers + 1):
        if i % max(1, viewers // 10) == 0:
            gc.collect()
            recreate.append({"viewer": i, "rss_mb": round(status_mb("VmRSS"), 1),
                             "threads": nglive_threads()})
        viewer = nglive.Viewer()
        viewer.add_annotations("synapses", pts, "point", properties=["score"],
                               relationships=["segment"])
    viewer.close()
    print("re-creations", recreate[0], recreate[-1], flush=True)
    return {"edits_10k_properties": edits_out,
            "viewer_recreations": {"viewers": viewers, "layer_rows": rows,
                                   "samples": recreate}}


def soak(seconds: float) -> dict:
    """The suite's soak test (tests/reliability/test_soak.py), run ``seconds`` long."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NGLIVE_SOAK_SECONDS=str(seconds))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "tests/reliability/test_soak.py"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=seconds + 600)
    line = next((x for x in out.stdout.splitlines() if x.startswith("soak:")), "")
    print(line, flush=True)
    return {"seconds": seconds, "passed": out.returncode == 0, "summary": line}


def run_version(args, src: Path | None) -> dict:
    """This benchmark in a fresh process, importing nglive from ``src`` (None: this tree)."""
    cmd = [sys.executable, __file__, "--child", "--seconds", str(args.seconds),
           "--threads", str(args.threads), "--rows", str(args.rows), "--edits",
           str(args.edits), "--viewers", str(args.viewers)]
    if args.only:
        cmd += ["--only", args.only]
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    sys.stderr.write(out.stderr[-3000:])
    print(out.stdout[:-1].rsplit("\n", 1)[0][-4000:], flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_tree(commit: str, tmp: str) -> Path:
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "src", "js"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    return Path(tmp) / "src"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--only", choices=["latency", "memory"], default=None)
    ap.add_argument("--baseline", default=None,
                    help="a git commit of nglive to run side by side (e.g. before the fixes)")
    ap.add_argument("--soak-seconds", type=float, default=0,
                    help="also run the suite's soak test this long (e.g. 600)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        out = {}
        if args.only in (None, "latency"):
            out["reader_latency"] = latency(args.seconds, args.threads, args.rows)
        if args.only in (None, "memory"):
            out["memory"] = memory(args.edits, args.viewers, args.rows)
        print(json.dumps(out), flush=True)
        return
    result = {
        "benchmark": "reliability",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {"value_bytes": VALUE_SIZE, "keys": N_KEYS, "reader_threads": args.threads,
                  "seconds_per_phase": args.seconds, "rows": args.rows,
                  "edits": args.edits, "viewers": args.viewers,
                  "readers": "a separate process, one keep-alive connection per thread, "
                             "2 ms pause between requests"},
        "load_average_before": os.getloadavg(),
    }
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            result["baseline"] = {"commit": args.baseline,
                                  **run_version(args, baseline_tree(args.baseline, tmp))}
        result["load_average_after_baseline"] = os.getloadavg()
    result["nglive"] = run_version(args, None)
    result["load_average_after"] = os.getloadavg()
    if args.soak_seconds:
        result["soak"] = soak(args.soak_seconds)
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
