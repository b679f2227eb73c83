"""Multi-resolution (``neuroglancer_multilod_draco``) against legacy meshes: encode time
and bytes, one run.

Mesh sets (navis's bundled hemibrain data, in nm):

- ``neurons``: the five example neurons (about 13.5k faces each);
- ``neurons_x4`` / ``neurons_x16``: the same, each face split in 4 / 16
  (``trimesh.Trimesh.subdivide``): more faces, no added detail, to see how encoding
  scales towards full-resolution neurons (about 1M faces each);
- ``lh``: the lateral horn neuropil (756 faces).

Per set and format: encode time (median of ``--repeats`` runs of the whole set),
bytes written, and for multires the bytes a zoomed-out view needs (manifests and
the coarsest level of each mesh, which is what Neuroglancer fetches first), the number
of levels and the faces per level.

    python benchmarks/bench_multires.py            # about 1 minute on 2 cores

With ``--browser`` (Debian's Chromium, SwiftShader WebGL, 1000x800, 3-D panel only),
per set, format and view: seconds from ``page.goto`` until the first screenshot
showing every mesh (each has its own pure colour; a mesh counts as shown from 30
pixels of its hue), until the picture settles (unchanged for 2 s), and the bytes the
client fetched. "out" is the whole set in view; "in" a 20 um wide view of one soma
region (the meshes there counted, out of view ones not). Screenshots are taken as
fast as SwiftShader allows (a few per second), so times are within about 0.3 s. The
browser rows take about 2 minutes more.

Writes benchmarks/results/multires.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "formats"))
from multires_spec_decoder import decode_manifest  # noqa: E402

from nglive.formats.legacy_mesh import encode_legacy_meshes  # noqa: E402
from nglive.formats.multires_mesh import encode_multires_meshes  # noqa: E402
from nglive.tutorial_data import lateral_horn_mesh, neuron_meshes  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "multires.json"


def mesh_sets() -> dict[str, dict]:
    neurons = neuron_meshes()
    x4 = {k: m.subdivide() for k, m in neurons.items()}
    x16 = {k: m.subdivide() for k, m in x4.items()}
    return {"neurons": neurons, "neurons_x4": x4, "neurons_x16": x16,
            "lh": {1: lateral_horn_mesh()}}


def timed(fn, meshes, repeats: int):
    times, files = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        files = fn(meshes)
        times.append(time.perf_counter() - t)
    return statistics.median(times), files


def multires_detail(files: dict, ids) -> dict:
    per_lod_bytes: list[int] = []
    zoomed_out = 0
    lods = []
    for sid in ids:
        manifest = decode_manifest(files[f"{sid}.index"])
        sizes = [int(s.sum()) for s in manifest["sizes"]]
        lods.append(len(sizes))
        for k, b in enumerate(sizes):
            per_lod_bytes += [0] * (k + 1 - len(per_lod_bytes))
            per_lod_bytes[k] += b
        zoomed_out += len(files[f"{sid}.index"]) + sizes[-1]
    return {"levels_per_mesh": lods, "bytes_per_level": per_lod_bytes,
            "zoomed_out_bytes": zoomed_out}


COLOURS = ["#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _shown(png: bytes, n: int) -> list[bool]:
    """Which of the first ``n`` COLOURS appear (by hue, shading aside) in a screenshot."""
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float64)
    img = img[30:]  # below the top bar
    lit = img.max(axis=2) > 40
    unit = img[lit] / img[lit].max(axis=1, keepdims=True)
    out = []
    for c in COLOURS[:n]:
        rgb = np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        out.append(int((np.abs(unit - rgb).max(axis=1) < 0.25).sum()) >= 30)
    return out


def browser_run(page, meshes, fmt: str, view: str) -> dict:
    import nglive

    viewer = nglive.Viewer(layout="3d", log_requests=True)
    try:
        ids = list(meshes)
        layer = viewer.add_meshes("m", meshes, format=fmt)
        centre = None
        with viewer.txn() as s:
            s.layers["m"].segment_colors = {int(i): COLOURS[k] for k, i in enumerate(ids)}
            if view == "in":
                first = meshes[ids[0]]
                centre = first.vertices[np.argmax(first.vertices[:, 1])]  # its far tip
                s.position = centre.tolist()
                s.projection_scale = 20000
        expect = [True] * len(ids)
        if view == "in":  # only the meshes with vertices near the centre can show
            expect = [bool((np.linalg.norm(meshes[i].vertices - centre, axis=1) < 8000).any())
                      for i in ids]
        t0 = time.perf_counter()
        page.goto(viewer.url)
        all_shown = None
        last, last_change, settled = None, time.perf_counter(), None
        while time.perf_counter() - t0 < 90:
            png = page.screenshot()
            now = time.perf_counter() - t0
            arr = np.frombuffer(png, np.uint8)
            if all_shown is None:
                shown = _shown(png, len(ids))
                if all(s or not e for s, e in zip(shown, expect, strict=True)):
                    all_shown = now
            if last is None or len(arr) != len(last) or (arr != last).any():
                last, last_change = arr, now
            elif now - last_change >= 2.0 and all_shown is not None:
                settled = last_change
                break
        fetched = 0
        for rec in list(viewer.server.requests):
            if rec.key.startswith(layer.prefix + "/mesh/") and rec.status in (200, 206):
                if rec.range:
                    lo, hi = rec.range.removeprefix("bytes=").split("-")
                    fetched += int(hi) - int(lo) + 1
                else:
                    fetched += viewer.server.store.size(rec.key) or 0
        return {"format": fmt, "view": view, "all_shown_s": _round(all_shown),
                "settled_s": _round(settled), "fetched_bytes": fetched,
                "meshes_expected": int(sum(expect))}
    finally:
        viewer.close()


def _round(x):
    return None if x is None else round(x, 2)


def browser_rows(sets: dict) -> list[dict]:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=CHROMIUM_ARGS)
        for name in ("neurons", "neurons_x16"):
            for view in ("out", "in"):
                for fmt in ("legacy", "multires"):
                    context = browser.new_context(viewport={"width": 1000, "height": 800})
                    row = {"set": name, **browser_run(context.new_page(), sets[name], fmt,
                                                      view)}
                    context.close()
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--browser", action="store_true",
                        help="also time the first frames in headless Chromium")
    args = parser.parse_args()
    rows = []
    sets = mesh_sets()
    for name, meshes in sets.items():
        faces = int(sum(len(m.faces) for m in meshes.values()))
        legacy_s, legacy = timed(encode_legacy_meshes, meshes, args.repeats)
        multi_s, multi = timed(encode_multires_meshes, meshes, args.repeats)
        row = {
            "set": name, "meshes": len(meshes), "faces": faces,
            "legacy": {"encode_s": round(legacy_s, 4),
                       "bytes": sum(len(v) for v in legacy.values())},
            "multires": {"encode_s": round(multi_s, 4),
                         "bytes": sum(len(v) for v in multi.values()),
                         **multires_detail(multi, meshes)},
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {
        "benchmark": "multires vs legacy meshes: encode time and bytes",
        "machine": {"python": platform.python_version(), "cpus": _cpus(),
                    "platform": platform.platform()},
        "settings": {"vertex_quantization_bits": 16, "repeats": args.repeats},
        "rows": rows,
    }
    if args.browser:
        out["browser"] = browser_rows(sets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
