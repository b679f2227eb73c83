"""A decoder for precomputed annotation sources written from annotations.md alone.

It shares no code with nglive's encoder, so tests that use it check the bytes against
the spec's own rules (and catch layouts that a matching writer/reader pair would hide).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import tensorstore as ts

# annotations.md: 4-byte types first, then 2-byte, then 1-byte/rgb/rgba, then pad to 4
SPEC_GROUPS = [("uint32", "int32", "float32"), ("uint16", "int16"),
               ("uint8", "int8", "rgb", "rgba")]
SPEC_SIZE = {"uint32": 4, "int32": 4, "float32": 4, "uint16": 2, "int16": 2, "uint8": 1,
             "int8": 1, "rgb": 3, "rgba": 4}
STRUCT = {"uint32": "<I", "int32": "<i", "float32": "<f", "uint16": "<H", "int16": "<h",
          "uint8": "<B", "int8": "<b"}
GEOMETRY_VECTORS = {"POINT": 1, "LINE": 2, "AXIS_ALIGNED_BOUNDING_BOX": 2, "ELLIPSOID": 2}


def spec_property_offsets(props: list[dict], start: int) -> tuple[list[int], int]:
    offsets = [None] * len(props)
    pos = start
    for group in SPEC_GROUPS:
        for i, p in enumerate(props):
            if p["type"] in group:
                offsets[i] = pos
                pos += SPEC_SIZE[p["type"]]
    while pos % 4:
        pos += 1
    return offsets, pos


def decode_record(buf: bytes, off: int, info: dict):
    """One record at ``off``: (geometry floats, property values, end offset)."""
    rank = len(info["dimensions"])
    kind = info["annotation_type"].upper()
    if kind == "POLYLINE":
        (nv,) = struct.unpack_from("<I", buf, off)
        nfloat, head = nv * rank, 4
    else:
        nfloat, head = GEOMETRY_VECTORS[kind] * rank, 0
    geom = list(struct.unpack_from(f"<{nfloat}f", buf, off + head))
    gbytes = head + 4 * nfloat
    offsets, size = spec_property_offsets(info.get("properties", []), gbytes)
    values = []
    for p, o in zip(info.get("properties", []), offsets, strict=True):
        if p["type"] in ("rgb", "rgba"):
            values.append(tuple(buf[off + o: off + o + SPEC_SIZE[p["type"]]]))
        else:
            values.append(struct.unpack_from(STRUCT[p["type"]], buf, off + o)[0])
    assert all(b == 0 for b in buf[off + gbytes + sum(
        SPEC_SIZE[p["type"]] for p in info.get("properties", [])): off + size]), "padding not 0"
    return geom, values, off + size


def decode_by_id(buf: bytes, info: dict):
    geom, values, off = decode_record(buf, 0, info)
    rels = []
    for _ in info.get("relationships", []):
        (n,) = struct.unpack_from("<I", buf, off)
        rels.append(list(struct.unpack_from(f"<{n}Q", buf, off + 4)))
        off += 4 + 8 * n
    assert off == len(buf), f"by_id value has {len(buf) - off} extra bytes"
    return geom, values, rels


def decode_multiple(buf: bytes, info: dict):
    """[(id, geometry, values)] of a multiple-annotation encoding."""
    (count,) = struct.unpack_from("<Q", buf, 0)
    off, recs = 8, []
    for _ in range(count):
        geom, values, off = decode_record(buf, off, info)
        recs.append((geom, values))
    ids = struct.unpack_from(f"<{count}Q", buf, off)
    assert off + 8 * count == len(buf), "multiple-annotation value has extra bytes"
    return [(i, g, v) for i, (g, v) in zip(ids, recs, strict=True)]


def morton_decode(code: int, grid: list[int]) -> tuple[int, ...]:
    coords = [0] * len(grid)
    out_bit = 0
    for bit in range(64):
        for d, g in enumerate(grid):
            if (g - 1) >> bit:
                coords[d] |= ((code >> out_bit) & 1) << bit
                out_bit += 1
    return tuple(coords)


class SpecSource:
    """Every index of a source in a local directory, decoded with the rules above."""

    def __init__(self, root: str):
        self.root = root
        with open(f"{root}/info") as f:
            self.info = json.load(f)

    def _items(self, entry: dict):
        base = f"file://{self.root}/{entry['key']}/"
        if "sharding" in entry:
            kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": base,
                                  "metadata": entry["sharding"]}).result()
            for k in kv.list().result():
                yield int.from_bytes(k, "big"), kv.read(k).result().value
        else:
            kv = ts.KvStore.open(base).result()
            for k in kv.list().result():
                yield k.decode(), kv.read(k).result().value

    def by_id(self) -> dict:
        return {int(k): decode_by_id(v, self.info) for k, v in self._items(self.info["by_id"])}

    def relationship(self, i: int) -> dict:
        entry = self.info["relationships"][i]
        return {int(k): decode_multiple(v, self.info) for k, v in self._items(entry)}

    def spatial(self) -> list[dict]:
        """Per level, {cell coordinates: [(id, geometry, values)]}."""
        levels = []
        for entry in self.info["spatial"]:
            cells = {}
            for k, v in self._items(entry):
                if "sharding" in entry:
                    cell = morton_decode(k, entry["grid_shape"])
                else:
                    cell = tuple(int(c) for c in k.split("_"))
                cells[cell] = decode_multiple(v, self.info)
            levels.append(cells)
        return levels


def level_of_each(levels: list[dict]) -> dict:
    """{annotation id: set of levels it appears at}."""
    out: dict = {}
    for i, cells in enumerate(levels):
        for recs in cells.values():
            for aid, _, _ in recs:
                out.setdefault(aid, set()).add(i)
    return out


def cells_of(levels: list[dict], level: int, aid: int) -> set:
    return {c for c, recs in levels[level].items() if any(r[0] == aid for r in recs)}


def as_float32(values) -> list:
    return np.asarray(values, np.float32).tolist()
