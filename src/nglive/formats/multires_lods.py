"""Levels of detail for multi-resolution meshes: quadric decimation, and how far each
level strays from the finest (what Neuroglancer compares with a pixel)."""

from __future__ import annotations

import numpy as np


def decimated_lods(vertices, faces, num_lods):
    """``[(vertices, faces)]``: the mesh, then up to ``num_lods - 1`` levels, each
    quadric-decimated from the one before to about a quarter of its faces (a quarter:
    halving the resolution of a surface quarters its faces). Stops early when a
    level would be (nearly) empty."""
    import fast_simplification

    out = [(vertices, faces)]
    while len(out) < num_lods:
        v, f = out[-1]
        if len(f) < 8:
            break
        v2, f2 = fast_simplification.simplify(v, f, target_reduction=0.75)
        if len(f2) == 0:
            break
        out.append((np.asarray(v2, dtype=np.float64), np.asarray(f2, dtype=np.int64)))
    return out


def _distance_to(vertices, faces, k=8):
    """A function giving the distance from points to a mesh (nearest of the k triangles
    with the nearest centroids: exact for small triangles, at worst an overestimate)."""
    from scipy.spatial import cKDTree
    from trimesh.triangles import closest_point

    tris = vertices[faces]
    k = min(k, len(tris))
    tree = cKDTree(tris.mean(axis=1))

    def distance(points):
        _, cand = tree.query(points, k=k)
        rep = np.repeat(points, k, axis=0)
        near = closest_point(tris[np.asarray(cand).reshape(-1)], rep)
        return np.linalg.norm(near - rep, axis=1).reshape(-1, k).min(axis=1)

    return distance


def _sample(vertices, faces, n=2048):
    used = np.unique(faces)
    return vertices[used[:: max(1, len(used) // n)]]


def lod_errors(lods) -> list[float]:
    """How far each coarser LOD strays from the finest, both ways (90th percentile over
    a sample of vertices): the "resolution" Neuroglancer compares with a pixel."""
    if len(lods) < 2 or not len(lods[0][1]):
        return []
    to_fine = _distance_to(*lods[0])
    fine_pts = _sample(*lods[0])
    out = []
    for v, f in lods[1:]:
        there = np.quantile(to_fine(_sample(v, f)), 0.9)
        back = np.quantile(_distance_to(v, f)(fine_pts), 0.9)
        out.append(float(max(there, back)))
    return out
