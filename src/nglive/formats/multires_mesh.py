"""Neuroglancer's multi-resolution mesh format (``neuroglancer_multilod_draco``): encode.

Each mesh becomes an octree of levels of detail (LODs). LOD 0 is the input mesh; each
coarser LOD is quadric-decimated from the previous one (about a quarter of its faces)
and cut on a grid twice as coarse. Every LOD is cut along axis-aligned planes so that
no triangle crosses a fragment's bounds (LOD 0) or, for LOD > 0, the fragment's
2x2x2 sub-grid, as the spec requires: Neuroglancer draws the parts of a coarse
fragment whose children are not loaded yet, which needs triangles that do not cross
the sub-grid. Cutting (rather than assigning whole triangles to the cell of their
centroid) keeps every vertex inside its fragment, so fragments stitch exactly.

Vertices are quantised once per LOD on a lattice shared by all of its fragments
(``chunk_shape * 2**lod / (2**bits - 1)``), so a vertex on a shared fragment face has
the same position in both fragments. The integers are handed to Draco with a
quantisation that maps them onto themselves (range ``2**bits - 1``, origin 0):
Neuroglancer reads Draco's quantised integers directly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np

from .legacy_mesh import _vertices_faces, mesh_ids
from .multires_grid import split_on_grid
from .multires_lods import decimated_lods, lod_errors

#: Faces of the coarsest LOD (about): fewer LODs for smaller meshes.
COARSEST_FACES = 2048
MAX_LODS = 8
#: Vertices this close to a cut plane (times the fragment size) are moved onto it:
#: 8 quantisation steps at 16 bits (at 10 bits, 2 steps).
SNAP = 2.0**-13
IDENTITY = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def info(vertex_quantization_bits: int = 16, sharding: dict | None = None) -> dict:
    """The ``info`` JSON of a multi-resolution mesh source."""
    out = {"@type": "neuroglancer_multilod_draco",
           "vertex_quantization_bits": vertex_quantization_bits,
           "transform": IDENTITY, "lod_scale_multiplier": 1.0}
    if sharding is not None:
        out["sharding"] = sharding
    return out


def morton(positions: np.ndarray) -> np.ndarray:
    """Z-curve keys of ``(n, 3)`` grid positions, x the fastest bit (as Neuroglancer)."""
    pos = np.asarray(positions, dtype=np.uint64)
    key = np.zeros(len(pos), dtype=np.uint64)
    for bit in range(21):
        for axis in range(3):
            key |= ((pos[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return key


def _auto_lods(n_faces: int) -> int:
    if n_faces <= COARSEST_FACES:
        return 1
    return int(min(MAX_LODS, 1 + np.floor(np.log(n_faces / COARSEST_FACES) / np.log(4))))


def _unique_corners(frag_key, local, bits):
    """Unique (fragment, position) rows of the corners, sorted, and each corner's row."""
    frags, rank = np.unique(frag_key, return_inverse=True)
    rank = np.repeat(rank.ravel(), 3).astype(np.uint64)
    if len(frags) <= 2 ** (64 - 3 * bits):  # one uint64 key per corner: a fast 1-D sort
        b = np.uint64(bits)
        u = local.astype(np.uint64)
        key = (rank << (3 * b)) | (u[:, 0] << (2 * b)) | (u[:, 1] << b) | u[:, 2]
        ukey, inverse = np.unique(key, return_inverse=True)
        mask = np.uint64(2**bits - 1)
        rows = np.stack([frags[(ukey >> (3 * b)).astype(np.int64)].astype(np.int64),
                         ((ukey >> (2 * b)) & mask).astype(np.int64),
                         ((ukey >> b) & mask).astype(np.int64),
                         (ukey & mask).astype(np.int64)], axis=1)
        return rows, inverse.ravel()
    rows = np.concatenate([np.repeat(frag_key, 3)[:, None].astype(np.int64), local], axis=1)
    uniq, inverse = np.unique(rows, axis=0, return_inverse=True)
    return uniq, inverse.ravel()


def _encode_lod(vertices, faces, lod, top, origin, chunk, bits, level):
    """One LOD cut, quantised and Draco-encoded per fragment.

    Returns (fragment grid positions (n, 3), Draco bytes per fragment, sub-cells of
    the faces on the grid of LOD ``lod - 1`` (None for LOD 0)).
    """
    import DracoPy

    q = 2**bits - 1
    size = chunk * 2.0**lod  # this LOD's fragment size
    step = size / 2 if lod else size  # LOD > 0: no triangle crosses the 2x2x2 sub-grid
    cells_per_axis = 2 ** (top - lod)
    box_hi = origin + chunk * 2.0**top
    # decimation may move vertices a little outside the grid: pull them back in
    vertices = np.clip(vertices, origin, box_hi)
    vertices, faces = split_on_grid(vertices, faces, origin, step,
                                    snap=float(max(size.max() * SNAP, 2 * size.max() / q)))
    if not len(faces):
        return np.zeros((0, 3), np.int64), [], (None if lod == 0 else np.zeros((0, 3), np.int64))
    centroid = vertices[faces].mean(axis=1)
    n_sub = cells_per_axis * (2 if lod else 1)
    sub = np.clip(np.floor((centroid - origin) / step), 0, n_sub - 1).astype(np.int64)
    cell = sub >> 1 if lod else sub
    # one lattice for the whole LOD; the small bias puts vertices cut on a mid-plane at
    # 2**(bits-1), Neuroglancer's partition point (the mid-plane itself is at q / 2)
    lattice = np.floor((vertices - origin) / size * q + 0.5 + 1e-6).astype(np.int64)
    local = np.clip(lattice[faces] - cell[:, None, :] * q, 0, q)  # (m, 3 corners, 3)
    frag_key = morton(cell)
    order = np.argsort(frag_key, kind="stable")
    frag_key, local, cell = frag_key[order], local[order], cell[order]
    # vertices unique per fragment (sorted by fragment first, so fragments are blocks)
    uniq, inverse = _unique_corners(frag_key, local.reshape(-1, 3), bits)
    tri = inverse.reshape(-1, 3)
    keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
    tri, frag_key, cell = tri[keep], frag_key[keep], cell[keep]
    if not len(tri):  # every face collapsed to a line or a point at this quantisation
        return np.zeros((0, 3), np.int64), [], (sub if lod else None)
    keys, face_start = np.unique(frag_key, return_index=True)
    face_end = np.append(face_start[1:], len(tri))
    vert_start = np.searchsorted(uniq[:, 0], keys.astype(np.int64), side="left")
    vert_end = np.searchsorted(uniq[:, 0], keys.astype(np.int64), side="right")
    positions = cell[face_start]
    blobs = []
    for fs, fe, vs, ve in zip(face_start, face_end, vert_start, vert_end, strict=True):
        blobs.append(DracoPy.encode(
            uniq[vs:ve, 1:].astype(np.float64), (tri[fs:fe] - vs).astype(np.uint32),
            quantization_bits=bits, quantization_range=q, quantization_origin=[0, 0, 0],
            compression_level=level))
    return positions, blobs, (sub if lod else None)


def encode_multires_mesh(vertices, faces, *, vertex_quantization_bits: int = 16,
                         num_lods: int | None = None, compression_level: int = 5
                         ) -> tuple[bytes, bytes]:
    """One mesh as ``(manifest, fragment data)``, the ``{id}.index`` and ``{id}`` files.

    ``vertices`` must be finite and ``faces`` must index them (see
    :func:`encode_multires_meshes`, which checks).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    bits = vertex_quantization_bits
    if num_lods is None:
        num_lods = _auto_lods(len(faces))
    lods = decimated_lods(vertices, faces, num_lods) if len(faces) else [(vertices, faces)]
    top = len(lods) - 1
    used = vertices[np.unique(faces)] if len(faces) else np.zeros((1, 3))
    lo, hi = used.min(axis=0), used.max(axis=0)
    extent = float((hi - lo).max()) or 1.0
    # float32 as the manifest stores them, so the lattice here is Neuroglancer's
    origin32 = lo.astype(np.float32)
    origin32 = np.where(origin32 > lo, np.nextafter(origin32, np.float32(-np.inf)), origin32)
    origin = origin32.astype(np.float64)
    edge = np.float32(extent / 2**top)
    while np.any(origin + float(edge) * 2**top < hi):  # float32 rounding
        edge = np.nextafter(edge, np.float32(np.inf))
    chunk = np.full(3, float(edge))
    encoded = [_encode_lod(v, f, k, top, origin, chunk, bits, compression_level)
               for k, (v, f) in enumerate(lods)]
    # nodes: every fragment with faces, an empty node under every part of a coarser
    # fragment that has faces (so finer views hide it), and every parent of a node
    nodes: list[np.ndarray] = []
    for k in range(len(lods)):
        parts = [encoded[k][0]]
        if k + 1 < len(lods):
            parts.append(encoded[k + 1][2])
        if k:
            parts.append(nodes[k - 1] >> 1)
        allp = np.concatenate([p.reshape(-1, 3) for p in parts]).astype(np.int64)
        if not len(allp) and k == top:
            allp = np.zeros((1, 3), np.int64)  # an empty mesh: one empty node
        keys, first = np.unique(morton(allp), return_index=True)
        nodes.append(allp[first])
    # LOD k is drawn while its error is under a pixel (times the layer's "Resolution
    # (mesh)", 1 by default); LOD 0 gets the quantisation step (0 would mean "absent")
    floor = float(chunk[0]) / (2**bits - 1)
    errors = [floor] + lod_errors(lods)
    lod_scales = np.maximum.accumulate(np.maximum(errors, floor))
    head = [np.asarray(chunk, "<f4"), np.asarray(origin, "<f4"),
            np.asarray([len(lods)], "<u4"), np.asarray(lod_scales, "<f4"),
            np.zeros((len(lods), 3), "<f4"), np.asarray([len(n) for n in nodes], "<u4")]
    data = []
    for k, node in enumerate(nodes):
        positions, blobs, _ = encoded[k]
        sizes = np.zeros(len(node), np.int64)
        blob_at = {}
        if len(positions):
            where = np.searchsorted(morton(node), morton(positions))
            sizes[where] = [len(b) for b in blobs]
            blob_at = dict(zip(where.tolist(), blobs, strict=True))
        head += [np.ascontiguousarray(node.T, "<u4"), np.asarray(sizes, "<u4")]
        data += [blob_at[i] for i in range(len(node)) if i in blob_at]
    manifest = b"".join(a.tobytes() for a in head)
    return manifest, b"".join(data)


def encode_multires_meshes(meshes: Mapping, *, vertex_quantization_bits: int = 16,
                           num_lods: int | None = None,
                           sharding: dict | bool = False,
                           cache: dict | None = None) -> dict[str, bytes]:
    """Encode ``{segment id: mesh}`` as a multi-resolution mesh source: ``{key: bytes}``.

    Keys are ``info``, the manifest ``{id}.index`` and the fragment data ``{id}`` per
    segment; or, with ``sharding`` (True for parameters sized to the data, or a
    ``neuroglancer_uint64_sharded_v1`` spec with raw data), ``info`` and shard files
    in which each manifest is keyed by its segment id with the fragment data just
    before it. Meshes are ``trimesh.Trimesh`` or ``(vertices, faces)`` pairs in the
    layer's model space (nm). Every mesh is checked before any is encoded.

    ``cache``, a dict kept by the caller between calls, makes re-encoding cheap after
    an edit: a mesh whose id and arrays are unchanged is not encoded again (the dict
    is left holding the current meshes only).

    Examples
    --------
    >>> import trimesh
    >>> files = encode_multires_meshes({7: trimesh.creation.box()})
    >>> sorted(files)
    ['7', '7.index', 'info']
    """
    if vertex_quantization_bits not in (10, 16):
        raise ValueError(f"vertex_quantization_bits must be 10 or 16, not "
                         f"{vertex_quantization_bits!r}")
    raw_ids, ids = mesh_ids(meshes)
    checked = [(sid, *_vertices_faces(meshes[raw], sid))
               for raw, sid in zip(raw_ids, ids.tolist(), strict=True)]
    fresh = {}
    encoded = []
    for sid, vertices, faces in checked:
        key = None
        if cache is not None:
            key = (sid, vertex_quantization_bits, num_lods, _digest(vertices, faces))
        if key in (cache or {}):
            manifest, data = cache[key]
        else:
            manifest, data = encode_multires_mesh(
                vertices, faces, vertex_quantization_bits=vertex_quantization_bits,
                num_lods=num_lods)
        fresh[key] = (manifest, data)
        encoded.append((sid, manifest, data))
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    if sharding is False or sharding is None:
        files = {"info": json.dumps(info(vertex_quantization_bits)).encode()}
        for sid, manifest, data in encoded:
            files[f"{sid}.index"] = manifest
            files[str(sid)] = data
        return files
    return _sharded(encoded, sharding, vertex_quantization_bits)


def _digest(vertices, faces) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for arr in (np.ascontiguousarray(vertices, np.float64), np.ascontiguousarray(faces)):
        h.update(repr((arr.shape, arr.dtype.str)).encode())
        h.update(arr.view(np.uint8).reshape(-1))
    return h.digest()


def _sharded(encoded, sharding, bits) -> dict[str, bytes]:
    from .annotations.sharding import choose_sharding
    from .sharded import pack_shards

    blobs = [data + manifest for _, manifest, data in encoded]
    if sharding is True:
        sharding = choose_sharding(len(blobs), sum(map(len, blobs)))
    keys = np.array([sid for sid, _, _ in encoded], dtype=np.uint64)
    bounds = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    leading = np.array([len(data) for _, _, data in encoded], dtype=np.int64)
    files = pack_shards(keys, b"".join(blobs), bounds, sharding, leading=leading)
    files["info"] = json.dumps(info(bits, sharding)).encode()
    return files
