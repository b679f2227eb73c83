"""The embedded synthetic dataset: a few meshes of distinct shapes and a table about them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import trimesh

# Ids near the top of the uint64 range, as in real connectomes (and beyond float64's 2**53).
_BASE_ID = np.uint64(720575940379279360)


def demo_meshes() -> dict[int, trimesh.Trimesh]:
    """Six shapes in nanometres, laid out on a 2 x 3 grid 3 µm apart."""
    shapes = [
        trimesh.creation.icosphere(subdivisions=3, radius=1000.0),
        trimesh.creation.box(extents=(1600.0, 1600.0, 1600.0)),
        trimesh.creation.cylinder(radius=700.0, height=2000.0, sections=48),
        trimesh.creation.torus(major_radius=900.0, minor_radius=300.0),
        trimesh.creation.capsule(height=1400.0, radius=500.0),
        trimesh.creation.cone(radius=900.0, height=1800.0, sections=48),
    ]
    meshes = {}
    for i, mesh in enumerate(shapes):
        mesh = mesh.copy()
        mesh.apply_translation((3000.0 * (i % 3), 3000.0 * (i // 3), 0.0))
        meshes[int(_BASE_ID + np.uint64(i + 1))] = mesh
    return meshes


def demo_table(meshes: dict[int, trimesh.Trimesh] | None = None) -> pd.DataFrame:
    """One row per demo mesh: id, name, cell type, volume, area, and a bool tag."""
    meshes = demo_meshes() if meshes is None else meshes
    names = ["sphere", "cube", "cylinder", "torus", "capsule", "cone"]
    ids = np.array(list(meshes), dtype=np.uint64)
    return pd.DataFrame(
        {
            "segment_id": ids,
            "name": names[: len(ids)],
            "cell_type": pd.Categorical(
                ["round", "angular", "round", "round", "round", "angular"][: len(ids)]
            ),
            "volume_um3": np.array([m.volume / 1e9 for m in meshes.values()], np.float32),
            "area_um2": np.array([m.area / 1e6 for m in meshes.values()], np.float32),
            "n_faces": np.array([len(m.faces) for m in meshes.values()], np.int32),
            "proofread": [True, False, True, False, True, False][: len(ids)],
        }
    )
