"""Publishing a viewer (1M sharded point annotations + 1k legacy meshes) to a directory and
to an S3-compatible server on loopback (moto), against cloud-files ``put`` of the same
files one by one (what tracertools-style bucket helpers do), and a re-publish after a
one-row edit. Writes benchmarks/results/publish.json.

Run: python benchmarks/bench_publish.py [--points 1000000] [--meshes 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from bench_annotations import make_points

RESULTS = Path(__file__).parent / "results" / "publish.json"
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
          "AWS_SESSION_TOKEN": "", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}


def make_meshes(n: int, seed: int = 1) -> dict:
    """``n`` small neuron-sized blobs (642 vertices, 1280 faces each), in nm."""
    import trimesh

    rng = np.random.default_rng(seed)
    base = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    out = {}
    for i in range(n):
        v = base.vertices * rng.uniform(500, 3000, 3) + rng.uniform(0, 100_000, 3)
        out[i + 1] = (v, base.faces)
    return out


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            return proc, endpoint
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def dir_stats(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def one_by_one(files: dict[str, bytes], cloudpath: str) -> float:
    """cloud-files, one ``put`` call per file, in order (no batching)."""
    from cloudfiles import CloudFiles

    cf = CloudFiles(cloudpath)
    t0 = time.perf_counter()
    for key, data in files.items():
        cf.put(key, data, compress=None)
    return time.perf_counter() - t0


def batched(files: dict[str, bytes], cloudpath: str) -> float:
    """cloud-files ``puts`` of every file at once (its own thread pool)."""
    from cloudfiles import CloudFiles

    cf = CloudFiles(cloudpath, num_threads=16)
    t0 = time.perf_counter()
    cf.puts(list(files.items()), compress=None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--meshes", type=int, default=1000)
    args = ap.parse_args()
    os.environ.update(S3_ENV)
    os.environ["NGLIVE_NO_PROGRESS"] = "1"
    import boto3

    import nglive

    viewer = nglive.Viewer()
    pts = make_points(args.points)
    t0 = time.perf_counter()
    viewer.add_meshes("cells", make_meshes(args.meshes))
    layer = viewer.add_annotations("synapses", pts, "point", properties=["score"],
                                   relationships=["segment"], write_sharded=True)
    bind_s = time.perf_counter() - t0
    # the files as the Store holds them: what a user copying by hand would upload
    live_files = {}
    for prefix in viewer.store.prefixes():
        gen = viewer.store.current(prefix)
        for key in gen.keys:
            live_files[f"{prefix}/{key}"] = viewer.store.read(f"{gen.path}/{key}")
    live_bytes = sum(len(v) for v in live_files.values())
    print(f"bound in {bind_s:.1f} s: {len(live_files)} files, {live_bytes / 1e6:.1f} MB")

    moto, endpoint = start_moto()
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    results: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="nglive-bench-publish-"))
    try:
        for target in ("directory", "s3 (moto on loopback)"):
            if target == "directory":
                dest, url, kw = tmp / "nglive", "https://example.org/pub", {}
                ref_path = (tmp / "one-by-one").as_uri()
                batch_path = (tmp / "batched").as_uri()
            else:
                for b in ("nglive", "one-by-one", "batched"):
                    s3.create_bucket(Bucket=b)
                dest, url, kw = "s3://nglive/pub", None, {"endpoint": endpoint}
                ref_path = f"s3://{endpoint}/one-by-one/pub"
                batch_path = f"s3://{endpoint}/batched/pub"
            load_before = [round(x, 2) for x in os.getloadavg()]
            t0 = time.perf_counter()
            pub = viewer.publish(dest, url=url, **kw)
            first = time.perf_counter() - t0
            unchanged = viewer.publish(dest, url=url, **kw)
            row_id = pts.index[len(results) * 7919 % len(pts)]
            pts.loc[row_id, "score"] += np.float32(1.0)  # a one-row edit
            t0 = time.perf_counter()
            layer.update()
            regenerate = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = viewer.publish(dest, url=url, **kw)
            republish = time.perf_counter() - t0
            row = {
                "load_average_before": load_before,
                "nglive": {
                    "publish_s": round(first, 2), "files": pub.files,
                    "bytes": pub.bytes_total,
                    "unchanged_republish_s": round(unchanged.seconds, 3),
                    "unchanged_republish_files_written": unchanged.files_written,
                    "one_row_edit": {"regenerate_layer_s": round(regenerate, 2),
                                     "republish_s": round(republish, 2),
                                     "files_written": again.files_written,
                                     "bytes_written": again.bytes_written,
                                     "files_copied": again.files_copied,
                                     "bytes_copied": again.bytes_copied},
                },
                "cloudfiles_put_one_by_one": {"seconds": round(one_by_one(live_files,
                                                                          ref_path), 2),
                                              "files": len(live_files), "bytes": live_bytes,
                                              "republish_after_edit": "all files again"},
                "cloudfiles_puts_batched": {"seconds": round(batched(live_files, batch_path),
                                                             2)},
            }
            if target == "directory":
                row["nglive"]["files_on_disk"], row["nglive"]["bytes_on_disk"] = dir_stats(
                    tmp / "nglive")
            results[target] = row
            print(target, json.dumps(row, indent=1))
    finally:
        moto.terminate()
        viewer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "publish a viewer: 1M sharded points + 1k legacy meshes",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "points": args.points, "meshes": args.meshes, "bind_s": round(bind_s, 1),
        "live_files": len(live_files), "live_bytes": live_bytes,
        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
