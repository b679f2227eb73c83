"""A decoder of Neuroglancer's multi-resolution meshes written from the spec (meshes.md),
independently of nglive's encoder: manifests by hand, fragments with DracoPy."""

from __future__ import annotations

import DracoPy
import numpy as np


def decode_manifest(data: bytes) -> dict:
    """``{id}.index`` as meshes.md lays it out (little-endian throughout)."""
    off = 0

    def take(dtype, count):
        nonlocal off
        arr = np.frombuffer(data, dtype, count=count, offset=off)
        off += arr.nbytes
        return arr

    out = {"chunk_shape": take("<f4", 3), "grid_origin": take("<f4", 3)}
    n = int(take("<u4", 1)[0])
    out["lod_scales"] = take("<f4", n)
    out["vertex_offsets"] = take("<f4", 3 * n).reshape(n, 3)
    counts = take("<u4", n)
    out["positions"], out["sizes"] = [], []
    for c in counts:
        out["positions"].append(take("<u4", 3 * int(c)).reshape(3, int(c)).T)
        out["sizes"].append(take("<u4", int(c)))
    assert off == len(data), "trailing bytes in the manifest"
    return out


def decode_fragments(manifest: dict, data: bytes, bits: int):
    """Every non-empty fragment: (lod, position, integer vertices, model vertices, faces)."""
    q = 2**bits - 1
    chunk = manifest["chunk_shape"].astype(np.float64)
    origin = manifest["grid_origin"].astype(np.float64)
    start = 0
    for lod, (positions, sizes) in enumerate(zip(manifest["positions"], manifest["sizes"],
                                                 strict=True)):
        for pos, size in zip(positions, sizes, strict=True):
            if size == 0:
                continue
            mesh = DracoPy.decode(data[start:start + int(size)])
            start += int(size)
            ints = np.asarray(mesh.points, dtype=np.float64)
            assert np.array_equal(ints, np.round(ints)), "positions must be integers"
            model = (origin + manifest["vertex_offsets"][lod]
                     + chunk * 2**lod * (pos + ints / q))
            yield lod, pos, ints.astype(np.int64), model, np.asarray(mesh.faces)
    assert start == len(data), "fragment sizes do not cover the data file"


def zorder_key(p) -> int:
    """Interleave x, y, z bits (x lowest), written independently of the encoder."""
    key = 0
    for bit in range(32):
        for axis in range(3):
            key |= ((int(p[axis]) >> bit) & 1) << (3 * bit + axis)
    return key
