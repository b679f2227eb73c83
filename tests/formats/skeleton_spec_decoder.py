"""A precomputed skeleton decoder written from ``skeletons.md``, independent of nglive."""

from __future__ import annotations

import struct

import numpy as np

SIZES = {"float32": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4,
         "uint32": 4}


def decode(data: bytes, info: dict) -> dict:
    """One skeleton file, read field by field: positions, edges, then each attribute."""
    nv, ne = struct.unpack_from("<II", data, 0)
    off = 8
    out = {"positions": np.frombuffer(data, "<f4", 3 * nv, off).reshape(nv, 3)}
    off += 12 * nv
    out["edges"] = np.frombuffer(data, "<u4", 2 * ne, off).reshape(ne, 2)
    off += 8 * ne
    for attr in info["vertex_attributes"]:
        n = nv * attr["num_components"]
        out[attr["id"]] = np.frombuffer(data, np.dtype(attr["data_type"]).newbyteorder("<"),
                                        n, off)
        off += n * SIZES[attr["data_type"]]
    assert off == len(data), "bytes left over after the last attribute"
    return out
