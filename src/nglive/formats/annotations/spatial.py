"""The multi-level spatial index: grids, the cells each annotation intersects, subsampling.

Levels go from coarse to fine as ``annotations.md`` describes. Level 0 is one cell over
the bounds; each next level halves every chunk dimension for which halving gives a more
isotropic chunk. At each level, ``maxCount`` is the largest number of remaining
annotations intersecting one cell, and every cell keeps a uniformly random
``limit / maxCount`` share of its remaining annotations. The choice is made per
annotation, so an annotation that crosses several cells is emitted at one level only, in
every cell it intersects there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .columns import AnnotationTable

_MAX_KEY_BITS = 62  # cell indices and compressed Morton codes must fit in a uint64


@dataclass
class Level:
    """One spatial index level: its grid, and the cell lists it holds."""

    grid_shape: np.ndarray  # (rank,) int64
    chunk_size: np.ndarray  # (rank,) float64
    cells: np.ndarray  # sorted linear cell indices, one per (cell, annotation) entry
    members: np.ndarray  # annotation row of each entry, in within-cell order
    limit: int


def bounds(table: AnnotationTable) -> tuple[np.ndarray, np.ndarray]:
    """Integer lower and exclusive upper bounds enclosing every annotation.

    A coordinate ``v`` lies in the unit interval ``[floor(v), floor(v) + 1)``, so the
    upper bound is ``floor(max) + 1``: strictly above every coordinate (the spec's bound
    is exclusive) and never an empty extent, even when all annotations coincide.
    """
    rank = table.space.rank
    g = table.geometry.astype(np.float64)
    if len(g) == 0:
        return np.zeros(rank), np.ones(rank)
    if table.annotation_type in ("line", "axis_aligned_bounding_box"):
        g = np.concatenate([g[:, :rank], g[:, rank:]])
    elif table.annotation_type == "ellipsoid":
        g = np.concatenate([g[:, :rank] - g[:, rank:], g[:, :rank] + g[:, rank:]])
    lo = np.floor(g.min(axis=0))
    hi = np.floor(g.max(axis=0)) + 1
    return lo, hi


def next_grid(grid_shape: np.ndarray, chunk_size: np.ndarray):
    """The next finer grid: halve each chunk dimension that halving makes more isotropic.

    The widest dimension is always halved; another is halved when it is more than
    ``sqrt(2)`` times the new width, i.e. when halving brings it closer to it in ratio.

    Examples
    --------
    >>> next_grid(np.array([1, 1, 1]), np.array([100.0, 80.0, 10.0]))
    (array([2, 2, 1]), array([50., 40., 10.]))
    """
    target = chunk_size.max() / 2
    split = chunk_size > target * np.sqrt(2)
    return grid_shape * np.where(split, 2, 1), chunk_size / np.where(split, 2, 1)


def _cell_coords(g: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(g), 0, grid - 1).astype(np.int64)


def _point_cells(pts: np.ndarray, grid: np.ndarray):
    return np.arange(len(pts)), _cell_coords(pts, grid)


def _segment_cells(a: np.ndarray, b: np.ndarray, grid: np.ndarray):
    """Cells crossed by segments ``a -> b`` given in grid units: (segment, cell coords).

    Every grid plane a segment crosses splits it; the cell of each piece's midpoint is a
    cell the segment passes through. A segment lying in a grid plane stays in one cell.
    """
    n, rank = a.shape
    seg_parts, t_parts = [np.arange(n), np.arange(n)], [np.zeros(n), np.ones(n)]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    for d in range(rank):
        kmin = np.maximum(np.floor(lo[:, d]) + 1, 1)
        kmax = np.minimum(np.ceil(hi[:, d]) - 1, grid[d] - 1)
        count = np.maximum(kmax - kmin + 1, 0).astype(np.int64)
        if not count.any():
            continue
        seg = np.repeat(np.arange(n), count)
        k = np.repeat(kmin, count) + (np.arange(count.sum()) - np.repeat(
            np.cumsum(count) - count, count))
        t_parts += [(k - a[seg, d]) / (b[seg, d] - a[seg, d])]
        seg_parts += [seg]
    seg = np.concatenate(seg_parts)
    t = np.concatenate(t_parts)
    order = np.lexsort((t, seg))
    seg, t = seg[order], t[order]
    keep = (seg[1:] == seg[:-1]) & (t[1:] > t[:-1])  # zero-length pieces: corner touches
    s = seg[1:][keep]
    mid = (t[1:][keep] + t[:-1][keep]) / 2
    coords = _cell_coords(a[s] + mid[:, None] * (b[s] - a[s]), grid)
    return s, coords


def _box_cells(lo: np.ndarray, hi: np.ndarray, grid: np.ndarray):
    """Every cell of the per-row ranges ``lo..hi`` (inclusive cell coordinates)."""
    ext = hi - lo + 1
    count = np.prod(ext, axis=1)
    row = np.repeat(np.arange(len(lo)), count)
    rem = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    coords = np.empty((len(row), lo.shape[1]), np.int64)
    for d in range(lo.shape[1] - 1, -1, -1):
        e = ext[row, d]
        coords[:, d] = lo[row, d] + rem % e
        rem //= e
    return row, coords


def intersected_cells(table: AnnotationTable, rows: np.ndarray, lower: np.ndarray,
                      chunk: np.ndarray, grid: np.ndarray):
    """(annotation row, cell coordinates) for each cell that annotations ``rows`` intersect."""
    rank = table.space.rank
    kind = table.annotation_type

    def to_grid(v):
        return (v.astype(np.float64) - lower) / chunk

    if kind == "point":
        r, c = _point_cells(to_grid(table.geometry[rows]), grid)
    elif kind == "line":
        g = table.geometry[rows]
        r, c = _segment_cells(to_grid(g[:, :rank]), to_grid(g[:, rank:]), grid)
    elif kind == "axis_aligned_bounding_box":
        g = table.geometry[rows]
        a, b = to_grid(g[:, :rank]), to_grid(g[:, rank:])
        r, c = _box_cells(_cell_coords(np.minimum(a, b), grid),
                          _cell_coords(np.maximum(a, b), grid), grid)
    elif kind == "ellipsoid":
        g = table.geometry[rows].astype(np.float64)
        center, radii = g[:, :rank], g[:, rank:]
        r, c = _box_cells(_cell_coords(to_grid(center - radii), grid),
                          _cell_coords(to_grid(center + radii), grid), grid)
        # keep the cells whose box reaches the ellipsoid: the box point nearest the centre
        cell_lo = lower + c * chunk
        nearest = np.clip(center[r], cell_lo, cell_lo + chunk)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(radii[r] > 0, (nearest - center[r]) / radii[r], 0.0)
        inside = (q * q).sum(axis=1) <= 1 + 1e-9
        r, c = r[inside], c[inside]
    else:  # polyline: the union of its segments' cells
        off = table.vertex_offsets
        counts = off[rows + 1] - off[rows]
        seg_row = np.repeat(np.arange(len(rows)), counts - 1)
        first = np.repeat(off[rows], counts - 1)
        k = np.arange(len(seg_row)) - np.repeat(np.cumsum(counts - 1) - (counts - 1), counts - 1)
        va = table.geometry[first + k]
        vb = table.geometry[first + k + 1]
        s, c = _segment_cells(to_grid(va), to_grid(vb), grid)
        r = seg_row[s]
    return r, c


def _linear(coords: np.ndarray, grid: np.ndarray) -> np.ndarray:
    strides = np.concatenate([np.cumprod(grid[::-1])[::-1][1:], [1]]).astype(np.int64)
    return coords @ strides


def unravel(cells: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cell coordinates of linear cell indices (C order over ``grid``)."""
    return np.stack(np.unravel_index(cells, tuple(int(g) for g in grid)), axis=1)


def build_levels(table: AnnotationTable, lower: np.ndarray, upper: np.ndarray, *,
                 max_levels: int, limit: int, shuffle: bool, seed: int = 0) -> list[Level]:
    """Assign every annotation to exactly one level, coarse to fine.

    ``shuffle`` orders annotations randomly (the spec's uniform subsample); otherwise
    earlier rows are emitted at coarser levels and listed first within a cell.
    """
    n = len(table)
    rank = table.space.rank
    if limit == 0 and max_levels != 1:
        raise ValueError("target_chunk_limit=0 (no subsampling) needs num_spatial_levels=1")
    if limit < 0 or max_levels < 1:
        raise ValueError("target_chunk_limit must be >= 0 and num_spatial_levels >= 1")
    priority = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    by_priority = np.empty(n, np.int64)
    by_priority[priority] = np.arange(n)  # the row of each priority (a permutation)
    grid = np.ones(rank, np.int64)
    chunk = (upper - lower).astype(np.float64)
    remaining = np.arange(n)
    levels: list[Level] = []
    while True:
        rows, coords = intersected_cells(table, remaining, lower, chunk, grid)
        members = remaining[rows]
        cells = _linear(coords, grid)
        cells, members = _sort_by_cell_then_priority(cells, members, priority, by_priority)
        nxt_grid, nxt_chunk = next_grid(grid, chunk)
        last = (len(levels) + 1 >= max_levels or limit == 0
                or np.log2(nxt_grid.astype(np.float64)).sum() > _MAX_KEY_BITS)
        if len(cells) == 0:
            emitted_rows = np.zeros(0, np.int64)
        elif last:
            emitted_rows = remaining
        else:
            change = np.flatnonzero(np.diff(cells)) + 1
            first = np.concatenate([[0], change])
            count = np.diff(np.concatenate([first, [len(cells)]]))
            max_count = int(count.max())
            # each cell keeps ceil(limit * count / maxCount) of its annotations: a uniform
            # share limit/maxCount, exactly `limit` in the fullest cell
            keep = (limit * count + max_count - 1) // max_count
            rank_in_cell = np.arange(len(cells)) - np.repeat(first, count)
            chosen = rank_in_cell < np.repeat(keep, count)
            is_emitted = np.zeros(n, bool)
            is_emitted[members[chosen]] = True
            emitted_rows = remaining[is_emitted[remaining]]
        is_emitted = np.zeros(n, bool)
        is_emitted[emitted_rows] = True
        sel = is_emitted[members]
        lc, lm = cells[sel], members[sel]
        bounds_ = np.flatnonzero(np.diff(np.concatenate([[-1], lc, [-1]]))) if len(lc) else [0]
        fullest = int(np.diff(bounds_).max()) if len(lc) else 1
        levels.append(Level(grid.copy(), chunk.copy(), lc, lm, max(1, fullest)))
        remaining = remaining[~is_emitted[remaining]]
        if len(remaining) == 0 or last:
            return levels
        grid, chunk = nxt_grid, nxt_chunk


def _sort_by_cell_then_priority(cells, members, priority, by_priority):
    """``(cells, members)`` ordered by cell, then by the members' priority."""
    p_bits = max(1, (len(priority) - 1).bit_length())
    c_bits = int(cells.max()).bit_length() if len(cells) else 0
    if c_bits + p_bits > 63:
        order = np.lexsort((priority[members], cells))
        return cells[order], members[order]
    # priorities are a permutation, so (cell, priority) packed in one integer and sorted
    # by value (several times faster than a lexsort) gives back the members as well
    key = cells.astype(np.int64) << p_bits | priority[members]
    key.sort()
    return key >> p_bits, by_priority[key & ((1 << p_bits) - 1)]


def compressed_morton(coords: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Compressed Morton codes (``volume.md``) of cell coordinates in ``grid``.

    Bits are interleaved from the lowest up, skipping dimensions whose grid size no longer
    needs that bit.

    Examples
    --------
    >>> compressed_morton(np.array([[1, 0, 0], [0, 1, 1]]), np.array([2, 4, 2])).tolist()
    [1, 6]
    """
    coords = coords.astype(np.uint64)
    code = np.zeros(len(coords), np.uint64)
    out_bit = 0
    need = (grid - 1).astype(np.int64)
    for bit in range(64):
        for d in range(len(grid)):
            if need[d] >> bit:
                code |= ((coords[:, d] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(out_bit)
                out_bit += 1
    return code
