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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = []
    for name, meshes in mesh_sets().items():
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
