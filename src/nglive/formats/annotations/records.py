"""Byte layout of annotation records and of the id, relationship and spatial index values.

The layout follows ``annotations.md``: float32 geometry, then the 4-byte properties
(uint32, int32, float32), then the 2-byte ones (uint16, int16), then the 1-byte ones
(uint8, int8, rgb, rgba), each group in ``info`` order, then zero padding to a multiple
of 4 bytes. Every record is therefore a whole number of 32-bit words, which is what lets
the index values below be assembled with word-level numpy scatters instead of per-row
Python.
"""

from __future__ import annotations

import numpy as np

from .columns import AnnotationTable, PropertyColumn

_SIZE = {"uint32": 4, "int32": 4, "float32": 4, "uint16": 2, "int16": 2,
         "uint8": 1, "int8": 1, "rgb": 3, "rgba": 4}
_GROUP = {"uint32": 0, "int32": 0, "float32": 0, "uint16": 1, "int16": 1,
          "uint8": 2, "int8": 2, "rgb": 2, "rgba": 2}
_NUMPY = {"rgb": ("u1", (3,)), "rgba": ("u1", (4,))}

# fancy-index work is done in slices of this many 32-bit words to bound temporary memory
_WORDS_PER_BATCH = 1 << 22


def property_offsets(types: list[str], start: int) -> tuple[list[int], int]:
    """Byte offsets of properties of the given ``types`` after ``start`` bytes of geometry.

    Returns the offsets (in the order of ``types``) and the padded record size.

    Examples
    --------
    The spec's rule, not Neuroglancer 2.41's Python writer (which gives 24 here):

    >>> property_offsets(["float32", "uint32"], 12)
    ([12, 16], 20)
    >>> property_offsets(["uint8", "float32", "int16"], 12)
    ([18, 12, 16], 20)
    """
    offsets = [0] * len(types)
    pos = start
    for group in (0, 1, 2):
        for i, t in enumerate(types):
            if _GROUP[t] == group:
                offsets[i] = pos
                pos += _SIZE[t]
    return offsets, pos + (-pos) % 4


def record_dtype(geometry_floats: int, props: list[PropertyColumn]) -> np.dtype:
    """Structured dtype of one fixed-size record (geometry then properties, padded)."""
    offsets, size = property_offsets([p.type for p in props], 4 * geometry_floats)
    names = ["geometry"] + [f"p{i}" for i in range(len(props))]
    formats = [("<f4", (geometry_floats,))] + [
        _NUMPY[p.type] if p.type in _NUMPY else np.dtype(p.type).newbyteorder("<")
        for p in props]
    return np.dtype({"names": names, "formats": formats,
                     "offsets": [0] + offsets, "itemsize": size})


def _property_block(table: AnnotationTable) -> np.ndarray:
    """The property bytes of every annotation as an (N, words) uint32 array."""
    dtype = record_dtype(0, table.properties)
    rec = np.zeros(len(table), dtype)
    for i, p in enumerate(table.properties):
        rec[f"p{i}"] = p.values
    return rec.view(np.uint32).reshape(len(table), dtype.itemsize // 4)


class Records:
    """Encoded records of a table as 32-bit words: record ``i`` is
    ``words[starts[i]:starts[i] + lengths[i]]``."""

    def __init__(self, words: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                 width: int | None):
        self.words, self.starts, self.lengths, self.width = words, starts, lengths, width

    @property
    def fixed(self) -> bool:
        return self.width is not None

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Records ``idx`` of a fixed-size table, as an (len(idx), width) array."""
        return self.words.reshape(-1, self.width)[idx]


def encode_records(table: AnnotationTable) -> Records:
    """Encode geometry and properties of every annotation of ``table``.

    Examples
    --------
    >>> import pandas as pd
    >>> from nglive.formats.annotations.columns import read_table
    >>> from nglive.formats.annotations.coord_space import as_coord_space
    >>> t = read_table(pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "w": [0.5]}),
    ...                as_coord_space("xyz"), "point", properties=["w"])
    >>> encode_records(t).words.view("<f4").tolist()
    [1.0, 2.0, 3.0, 0.5]
    """
    n = len(table)
    if table.annotation_type != "polyline":
        dtype = record_dtype(table.geometry.shape[1], table.properties)
        rec = np.zeros(n, dtype)
        rec["geometry"] = table.geometry
        for i, p in enumerate(table.properties):
            rec[f"p{i}"] = p.values
        width = dtype.itemsize // 4
        words = rec.view(np.uint32).reshape(-1)
        return Records(words, np.arange(n, dtype=np.int64) * width,
                       np.full(n, width, np.int64), width)
    # polyline: [uint32 vertex count][vertices as float32][properties][padding]
    rank = table.space.rank
    counts = np.diff(table.vertex_offsets)
    props = _property_block(table)
    pw = props.shape[1]
    lengths = 1 + counts * rank + pw
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    words = np.zeros(int(lengths.sum()), np.uint32)
    words[starts] = counts.astype(np.uint32)
    vertex_words = table.geometry.view(np.uint32).reshape(-1)
    scatter(words, starts + 1, vertex_words, table.vertex_offsets[:-1] * rank, counts * rank)
    if pw:
        tails = starts + 1 + counts * rank
        words[tails[:, None] + np.arange(pw)] = props
    return Records(words, starts, lengths, None)


def scatter(dst: np.ndarray, dst_starts, src: np.ndarray, src_starts, lengths) -> None:
    """``dst[dst_starts[i]:+lengths[i]] = src[src_starts[i]:+lengths[i]]`` for every i."""
    lengths = np.asarray(lengths, np.int64)
    dst_starts = np.asarray(dst_starts, np.int64)
    src_starts = np.asarray(src_starts, np.int64)
    ends = np.cumsum(lengths)
    i = 0
    n = len(lengths)
    while i < n:
        base = ends[i - 1] if i else 0
        j = int(np.searchsorted(ends, base + _WORDS_PER_BATCH, side="right"))
        j = max(j, i + 1)
        lens = lengths[i:j]
        total = int(lens.sum())
        if total:
            first = np.repeat(np.cumsum(lens) - lens, lens)
            within = np.arange(total, dtype=np.int64) - first
            dst[np.repeat(dst_starts[i:j], lens) + within] = \
                src[np.repeat(src_starts[i:j], lens) + within]
        i = j


def _scatter_records(dst: np.ndarray, dst_starts: np.ndarray, records: Records,
                     which: np.ndarray) -> None:
    """Copy records ``which`` to word offsets ``dst_starts`` of ``dst``."""
    if records.fixed:
        w = records.width
        step = max(1, _WORDS_PER_BATCH // max(w, 1))
        cols = np.arange(w)
        for a in range(0, len(which), step):
            dst[dst_starts[a:a + step, None] + cols] = records.rows(which[a:a + step])
    else:
        scatter(dst, dst_starts, records.words, records.starts[which], records.lengths[which])


def _u64_words(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype="<u8").view(np.uint32).reshape(-1, 2)


def encode_by_id(table: AnnotationTable, records: Records) -> tuple[np.ndarray, np.ndarray]:
    """The by-id value of every annotation: record, then per relationship a uint32 count
    and the uint64 related ids.

    Returns ``(words, bounds)``: value ``i`` is ``words[bounds[i]:bounds[i + 1]]``.
    """
    n = len(table)
    rels = table.relationships
    rel_counts = [np.diff(r.offsets) for r in rels]
    lengths = records.lengths + sum((1 + 2 * c for c in rel_counts), np.zeros(n, np.int64))
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if not rels and records.fixed:
        return records.words, bounds
    words = np.zeros(int(bounds[-1]), np.uint32)
    _scatter_records(words, bounds[:-1], records, np.arange(n))
    pos = bounds[:-1] + records.lengths
    for r, c in zip(rels, rel_counts, strict=True):
        words[pos] = c.astype(np.uint32)
        id_words = _u64_words(r.values).reshape(-1)
        scatter(words, pos + 1, id_words, 2 * r.offsets[:-1], 2 * c)
        pos = pos + 1 + 2 * c
    return words, bounds


def encode_groups(groups: np.ndarray, members: np.ndarray, records: Records,
                  ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiple-annotation encodings of annotation lists.

    ``groups`` (sorted) and ``members`` are parallel arrays: annotation ``members[k]``
    belongs to list ``groups[k]``, in the order given. Each list is encoded as a uint64
    count, the records, then the uint64 annotation ids.

    Returns ``(keys, words, bounds)``: list ``keys[g]`` is ``words[bounds[g]:bounds[g+1]]``.
    """
    if len(groups) == 0:
        return groups[:0], np.zeros(0, np.uint32), np.zeros(1, np.int64)
    change = np.flatnonzero(np.diff(groups)) + 1
    first = np.concatenate([[0], change]).astype(np.int64)
    keys = groups[first]
    counts = np.diff(np.concatenate([first, [len(groups)]]))
    rec_len = records.lengths[members]
    rec_total = np.add.reduceat(rec_len, first)
    lengths = 2 + rec_total + 2 * counts
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = np.zeros(int(bounds[-1]), np.uint32)
    words[bounds[:-1]] = counts.astype(np.uint32)  # the high word of the count stays 0
    group_of = np.repeat(np.arange(len(keys)), counts)
    # word offset of each member's record: group start + 2 + records before it in the group
    before = np.cumsum(rec_len) - rec_len
    before -= np.repeat(before[first], counts)
    _scatter_records(words, bounds[:-1][group_of] + 2 + before, records, members)
    rank = np.arange(len(groups), dtype=np.int64) - np.repeat(first, counts)
    id_pos = (bounds[:-1] + 2 + rec_total)[group_of] + 2 * rank
    id_words = _u64_words(ids[members])
    words[id_pos] = id_words[:, 0]
    words[id_pos + 1] = id_words[:, 1]
    return keys, words, bounds
