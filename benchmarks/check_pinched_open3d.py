"""Cross-check: nglive's pinched (non-manifold) vertices against open3d's, on alpha shapes.

The suite checks ``surface_check`` against an independent brute-force walk
(tests/mesh/test_checks.py); this compares it with the reference tool open3d, which is
in the ``[bench]`` extra only (a large wheel CI does not install). Exits non-zero on
any disagreement and writes benchmarks/results/pinched_open3d.json.

    pip install -e ".[bench]" && python benchmarks/check_pinched_open3d.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import open3d as o3d

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "mesh"))
from mesh_shapes import solid_torus  # noqa: E402

from nglive.mesh import AlphaShaper, surface_check  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "pinched_open3d.json"


def open3d_pinched(vertices: np.ndarray, faces: np.ndarray) -> list[int]:
    mesh = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces)
    )
    return sorted(np.asarray(mesh.get_non_manifold_vertices()).tolist())


def main() -> int:
    rows = []
    for seed, n in ((8, 3000), (9, 10000)):
        shaper = AlphaShaper(solid_torus(n, seed=seed))
        for alpha in np.geomspace(0.2, 0.6, 25):
            mesh = shaper.mesh(alpha)
            chk = surface_check(mesh.faces)
            if not chk.watertight or len(mesh.faces) == 0:
                continue  # open3d's check is only defined the same way on closed surfaces
            ours = sorted(chk.pinched_vertices.tolist())
            theirs = open3d_pinched(mesh.vertices, mesh.faces)
            rows.append({"points": n, "seed": seed, "alpha": float(alpha),
                         "faces": int(len(mesh.faces)), "nglive": len(ours),
                         "open3d": len(theirs), "agree": ours == theirs})
    # Two tetrahedra sharing one vertex: a closed surface pinched at vertex 0.
    tet = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    faces = np.concatenate([tet, np.where(tet == 0, 0, tet + 3)])
    vertices = np.random.default_rng(0).random((7, 3))
    ours = sorted(surface_check(faces).pinched_vertices.tolist())
    theirs = open3d_pinched(vertices, faces)
    rows.append({"points": 7, "seed": 0, "alpha": None, "faces": len(faces),
                 "nglive": len(ours), "open3d": len(theirs), "agree": ours == theirs == [0]})
    disagree = [r for r in rows if not r["agree"]]
    RESULTS.write_text(json.dumps({"open3d": o3d.__version__, "meshes": rows}, indent=1))
    print(f"{len(rows)} watertight meshes compared, "
          f"{sum(r['nglive'] > 0 for r in rows)} with pinches, {len(disagree)} disagree")
    return 1 if disagree or not rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
