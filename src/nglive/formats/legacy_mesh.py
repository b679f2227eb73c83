"""Neuroglancer's legacy single-resolution mesh format: encode and decode."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .validation import TableError, as_uint64_ids

INFO = {"@type": "neuroglancer_legacy_mesh"}


def _vertices_faces(mesh, segment_id) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        vertices, faces = mesh.vertices, mesh.faces
    else:
        try:
            vertices, faces = mesh
        except (TypeError, ValueError):
            raise TableError(
                f"mesh of type {type(mesh).__name__} is neither a trimesh.Trimesh nor a "
                "(vertices, faces) pair", column="meshes", row=int(segment_id),
            ) from None
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise TableError(f"vertices have shape {vertices.shape}, expected (n, 3)",
                         column="meshes", row=int(segment_id))
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise TableError(f"faces have shape {faces.shape}, expected (m, 3)",
                         column="meshes", row=int(segment_id))
    finite = np.isfinite(vertices)
    if not finite.all():
        raise TableError("a vertex coordinate is not finite", column="meshes",
                         row=int(segment_id), value=float(vertices[~finite][0]))
    big = np.abs(vertices) > np.finfo(np.float32).max  # would be written as infinity
    if big.any():
        raise TableError("a vertex coordinate overflows float32", column="meshes",
                         row=int(segment_id), value=float(vertices[big][0]),
                         accepted="coordinates within float32 range (about 3.4e38)")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        bad = faces[(faces < 0) | (faces >= len(vertices))]
        raise TableError("a face refers to a vertex that does not exist", column="meshes",
                         row=int(segment_id), value=int(bad[0]),
                         accepted=f"vertex indices 0 to {len(vertices) - 1}")
    return vertices, faces


def encode_fragment(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """One fragment: uint32le vertex count, float32le xyz vertices, uint32le triangles."""
    head = np.array([len(vertices)], "<u4").tobytes()
    return head + np.ascontiguousarray(vertices, "<f4").tobytes() + np.ascontiguousarray(
        faces, "<u4"
    ).tobytes()


def decode_fragment(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_fragment`: ``(vertices (n, 3) float32, faces (m, 3) uint32)``."""
    n = int(np.frombuffer(data, "<u4", count=1)[0])
    vertices = np.frombuffer(data, "<f4", count=3 * n, offset=4).reshape(n, 3)
    faces = np.frombuffer(data, "<u4", offset=4 + 12 * n).reshape(-1, 3)
    return vertices, faces


def mesh_ids(meshes: Mapping) -> tuple[list, np.ndarray]:
    """The keys of a ``{segment id: mesh}`` mapping as given and as uint64 segment ids;
    keys that are not ids, or that name one id twice (``7`` and ``"7"``), are an error."""
    raw_ids = list(meshes.keys())
    ids = as_uint64_ids(pd.Series(raw_ids, dtype=object), column="segment id",
                        index=pd.Index(raw_ids, dtype=object))
    if len(set(ids.tolist())) != len(ids):
        dup = pd.Series(ids).duplicated(keep=False)
        raise TableError("segment ids repeat after conversion to uint64", column="segment id",
                         value=sorted(set(ids[dup.to_numpy()].tolist())))
    return raw_ids, ids


def encode_legacy_meshes(meshes: Mapping) -> dict[str, bytes]:
    """Encode ``{segment id: mesh}`` as a legacy-mesh source: ``{key: bytes}``.

    Keys are ``info``, one manifest ``{id}:0`` per segment listing its fragment, and
    the fragment ``fragment/{id}``. Meshes are ``trimesh.Trimesh`` or ``(vertices,
    faces)`` pairs; vertices are in the layer's model space (nanometres unless the
    layer says otherwise).

    Examples
    --------
    >>> import trimesh
    >>> files = encode_legacy_meshes({7: trimesh.creation.box()})
    >>> sorted(files)
    ['7:0', 'fragment/7', 'info']
    """
    raw_ids, ids = mesh_ids(meshes)
    files: dict[str, bytes] = {"info": json.dumps(INFO).encode()}
    for raw, sid in zip(raw_ids, ids.tolist(), strict=True):
        vertices, faces = _vertices_faces(meshes[raw], sid)
        files[f"{sid}:0"] = json.dumps({"fragments": [f"fragment/{sid}"]}).encode()
        files[f"fragment/{sid}"] = encode_fragment(vertices, faces)
    return files
