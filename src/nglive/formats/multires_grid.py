"""Cutting a triangle mesh along an axis-aligned grid of planes, vectorised.

Multi-resolution fragments must hold no triangle that crosses their bounds (or, above
the finest level, their 2x2x2 sub-grid); cutting keeps every vertex of a fragment
inside it, so neighbouring fragments share the vertices on their common face.
"""

from __future__ import annotations

import numpy as np


def cut_at_plane(vertices, faces, axis, plane):
    """Cut triangles that cross ``x[axis] == plane[i]`` (one plane per face, every face
    crossing) into pieces on either side. Returns (vertices, pieces)."""
    d = vertices[faces, axis] - plane[:, None]
    sign = np.sign(d).astype(np.int8)
    on = sign == 0
    has_zero = on.any(axis=1)
    # the "apex": the vertex on the plane (two pieces), else the one alone on its side
    lone_neg = (sign < 0).sum(axis=1) == 1
    apex_sign = np.where(lone_neg, -1, 1)
    apex = np.where(has_zero, on.argmax(axis=1), (sign == apex_sign[:, None]).argmax(axis=1))
    rows = np.arange(len(faces))[:, None]
    tri = faces[rows, (apex[:, None] + np.arange(3)) % 3]  # rotated: keeps orientation
    a, b, c = tri.T
    # edges to cut: (a, b) and (a, c) without a zero; (b, c) with one
    e1 = np.where(has_zero, b, a)
    e2 = np.where(has_zero, c, b)
    edges = np.concatenate([np.stack([e1, e2], 1), np.stack([a, c], 1)[~has_zero]])
    edges.sort(axis=1)  # the same new vertex for both triangles sharing an edge
    uniq, inverse = np.unique(edges, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    p_edge = np.concatenate([plane, plane[~has_zero]])
    p_uniq = np.empty(len(uniq))
    p_uniq[inverse] = p_edge
    lo, hi = vertices[uniq[:, 0]], vertices[uniq[:, 1]]
    t = (p_uniq - lo[:, axis]) / (hi[:, axis] - lo[:, axis])
    new = lo + t[:, None] * (hi - lo)
    new[:, axis] = p_uniq  # exactly on the plane: later tests against it are exact
    new_ids = len(vertices) + inverse
    u = new_ids[: len(faces)]
    w = np.empty(len(faces), dtype=faces.dtype)
    w[~has_zero] = new_ids[len(faces):]
    z, nz = has_zero, ~has_zero
    pieces = [
        np.stack([a[z], b[z], u[z]], 1), np.stack([a[z], u[z], c[z]], 1),
        np.stack([a[nz], u[nz], w[nz]], 1), np.stack([u[nz], b[nz], c[nz]], 1),
        np.stack([u[nz], c[nz], w[nz]], 1),
    ]
    return np.concatenate([vertices, new]), np.concatenate(pieces)


def split_on_grid(vertices, faces, origin, spacing, snap=0.0):
    """Cut a mesh so that no triangle crosses a plane ``origin + k * spacing`` (any axis).

    Vectorised: each pass cuts every crossing triangle at the first plane above its
    lowest vertex; passes repeat while triangles still cross (triangles spanning
    several planes need several). Vertices within ``snap`` of a plane are first moved
    onto it: a cut that close to a vertex would leave slivers whose normals, once
    quantised, point anywhere (Neuroglancer weighs every triangle's normal equally).
    """
    vertices = np.array(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if snap > 0:
        k = np.round((vertices - origin) / spacing)
        plane = origin + k * spacing
        near = np.abs(vertices - plane) <= snap
        vertices[near] = plane[near]
    for axis in range(3):
        done = []
        active = faces
        while len(active):
            x = vertices[active, axis]
            lo, hi = x.min(axis=1), x.max(axis=1)
            k = np.floor((lo - origin[axis]) / spacing[axis]) + 1
            plane = origin[axis] + k * spacing[axis]
            low = plane <= lo  # rounding put the plane at or below the lowest vertex
            plane[low] = origin[axis] + (k[low] + 1) * spacing[axis]
            cross = hi > plane
            done.append(active[~cross])
            if not cross.any():
                break
            vertices, active = cut_at_plane(vertices, active[cross], axis, plane[cross])
        faces = np.concatenate(done) if done else faces
    return vertices, faces
