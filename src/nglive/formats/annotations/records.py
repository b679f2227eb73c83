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
        # one opaque item per record: numpy copies each as a block, ~10x faster than
        # indexing rows of a 2-D array of words
        whole = self.words.view(np.dtype((np.void, 4 * self.width)))
        return whole[idx].view(np.uint32).reshape(-1, self.width)


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


def by_id_lengths(table: AnnotationTable, records: Records) -> np.ndarray:
    """Length in 32-bit words of each annotation's by-id value."""
    lengths = records.lengths.copy()
    for r in table.relationships:
        lengths += 1 + 2 * np.diff(r.offsets)
    return lengths


def encode_by_id(table: AnnotationTable, records: Records,
                 order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The by-id value of every annotation: record, then per relationship a uint32 count
    and the uint64 related ids.

    ``order`` (a permutation of the rows) gives the order the values are laid out in;
    by default, row order. Returns ``(words, bounds)``: the value of row ``order[i]`` is
    ``words[bounds[i]:bounds[i + 1]]``.
    """
    n = len(table)
    rows = np.arange(n) if order is None else np.asarray(order, np.int64)
    rels = table.relationships
    rel_counts = [np.diff(r.offsets) for r in rels]
    fixed_counts = [int(c[0]) if n and (c == c[0]).all() else None for c in rel_counts]
    if records.fixed and None not in fixed_counts:
        # every value has the same length: build an (n, width) table column by column
        width = records.width + sum(1 + 2 * c for c in fixed_counts)
        bounds = np.arange(n + 1, dtype=np.int64) * width
        if not rels:
            return (records.words if order is None else records.rows(rows).reshape(-1)), bounds
        # one structured item per value, each field filled as whole blocks
        names, formats, offsets = ["rec"], [np.dtype((np.void, 4 * records.width))], [0]
        pos = 4 * records.width
        for i, c in enumerate(fixed_counts):
            names += [f"n{i}", f"ids{i}"]
            formats += ["<u4", np.dtype((np.void, 8 * c)) if c else "V0"]
            offsets += [pos, pos + 4]
            pos += 4 + 8 * c
        out = np.empty(n, np.dtype({"names": names, "formats": formats, "offsets": offsets,
                                    "itemsize": 4 * width}))
        whole = records.words.view(formats[0])
        out["rec"] = whole if order is None else whole[rows]
        for i, (r, c) in enumerate(zip(rels, fixed_counts, strict=True)):
            out[f"n{i}"] = c
            if c:
                ids = np.ascontiguousarray(r.values, "<u8").view(formats[2 + 2 * i])
                out[f"ids{i}"] = ids if order is None else ids[rows]
        return out.view(np.uint32).reshape(-1), bounds
    lengths = by_id_lengths(table, records)[rows]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = np.zeros(int(bounds[-1]), np.uint32)
    _scatter_records(words, bounds[:-1], records, rows)
    pos = bounds[:-1] + records.lengths[rows]
    for r, c in zip(rels, rel_counts, strict=True):
        c = c[rows]
        words[pos] = c.astype(np.uint32)
        id_words = _u64_words(r.values).reshape(-1)
        scatter(words, pos + 1, id_words, 2 * r.offsets[rows], 2 * c)
        pos = pos + 1 + 2 * c
    return words, bounds


def groups_words(counts: np.ndarray, record_words: np.ndarray) -> np.ndarray:
    """Length in 32-bit words of multiple-annotation values holding ``counts`` annotations
    whose records total ``record_words`` words: a uint64 count, records, uint64 ids."""
    return 2 + record_words + 2 * counts


def encode_groups(counts: np.ndarray, members: np.ndarray, records: Records,
                  ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multiple-annotation encodings of annotation lists.

    List ``g`` holds the next ``counts[g]`` annotations (rows) of ``members``, in the
    order given. Each list is encoded as a uint64 count, the records, then the uint64
    annotation ids.

    Returns ``(words, bounds)``: list ``g`` is ``words[bounds[g]:bounds[g + 1]]``.
    """
    counts = np.asarray(counts, np.int64)
    if len(counts) == 0:
        return np.zeros(0, np.uint32), np.zeros(1, np.int64)
    if records.fixed:
        return _encode_fixed_groups(counts, members, records, ids)
    first = np.cumsum(counts) - counts
    rec_len = records.lengths[members]
    rec_total = np.add.reduceat(rec_len, first) if len(members) else counts * 0
    rec_total[counts == 0] = 0
    lengths = groups_words(counts, rec_total)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = np.zeros(int(bounds[-1]), np.uint32)
    words[bounds[:-1]] = counts.astype(np.uint32)  # the high word of the count stays 0
    group_of = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(members), dtype=np.int64) - first[group_of]
    # word offset of each member's record: group start + 2 + records before it in the group
    before = np.cumsum(rec_len) - rec_len
    before -= np.repeat(before[first], counts)
    _scatter_records(words, bounds[:-1][group_of] + 2 + before, records, members)
    id_pos = (bounds[:-1] + 2 + rec_total)[group_of] + 2 * rank
    id_words = _u64_words(ids[members])
    words[id_pos] = id_words[:, 0]
    words[id_pos + 1] = id_words[:, 1]
    return words, bounds


def _encode_fixed_groups(counts, members, records, ids):
    """:func:`encode_groups` for fixed-size records: each value is three runs of words
    (count, records, ids), filled in order through masks rather than index arrays."""
    w = records.width
    lengths = groups_words(counts, w * counts)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    runs = np.empty((len(counts), 3), np.int64)
    runs[:, 0], runs[:, 1], runs[:, 2] = 2, w * counts, 2 * counts
    kind = np.repeat(np.tile(np.arange(3, dtype=np.uint8), len(counts)), runs.reshape(-1))
    words = np.empty(int(bounds[-1]), np.uint32)
    header = np.zeros((len(counts), 2), np.uint32)
    header[:, 0] = counts  # a uint64 count: the high word is 0
    words[kind == 0] = header.reshape(-1)
    words[kind == 1] = records.rows(members).reshape(-1)
    words[kind == 2] = _u64_words(ids[members]).reshape(-1)
    return words, bounds


def group_runs(sorted_groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, count)`` of each run of equal values in a sorted array."""
    if len(sorted_groups) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.flatnonzero(np.concatenate([[True], sorted_groups[1:] != sorted_groups[:-1]]))
    return first, np.diff(np.append(first, len(sorted_groups)))


def reorder_groups(first: np.ndarray, counts: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The entry order that lays whole groups out in group order ``order``, each group's
    entries keeping their order (a block permutation, no sort).

    Examples
    --------
    >>> reorder_groups(np.array([0, 2, 3]), np.array([2, 1, 3]), np.array([2, 0, 1])).tolist()
    [3, 4, 5, 0, 1, 2]
    """
    new_counts = counts[order]
    new_first = np.cumsum(new_counts) - new_counts
    return np.repeat(first[order] - new_first, new_counts) + np.arange(int(new_counts.sum()))
