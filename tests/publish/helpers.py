"""Shared pieces of the publishing tests: a viewer with every bound kind of source."""

from __future__ import annotations

import numpy as np
import pandas as pd
import trimesh


def cells_table():
    return pd.DataFrame({"segment_id": np.array([1, 2, 3], np.uint64),
                         "name": ["box", "ball", "rod"], "volume": [1.0, 2.5, 0.5]})


def cell_meshes():
    return {1: trimesh.creation.box(extents=(100, 100, 100)),
            2: trimesh.creation.icosphere(radius=60).apply_translation((250, 0, 0)),
            3: trimesh.creation.cylinder(radius=20, height=150).apply_translation((0, 250, 0))}


def points_table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n),
        "z": rng.uniform(0, 1000, n), "score": rng.normal(size=n).astype(np.float32),
        "cell": rng.integers(1, 4, n).astype(np.uint64),
    }, index=pd.Index(np.arange(n, dtype=np.uint64) + np.uint64(2**63), name="id"))


def bind_all(viewer, sharded=True):
    """Bound meshes + properties and a point annotation layer; returns the tables."""
    cells, pts = cells_table(), points_table()
    viewer.add_meshes("cells", cell_meshes(), cells, label_col="name")
    viewer.add_annotations("synapses", pts, "point", properties=["score"],
                           relationships=["cell"], linked_segmentation="cells",
                           write_sharded=sharded)
    return cells, pts
