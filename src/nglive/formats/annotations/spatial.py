"""The multi-level spatial index: grids, the cells each annotation intersects, subsampling.

Levels go from coarse to fine as ``annotations.md`` describes. Level 0 is one cell over
the bounds; each next level halves every chunk dimension for which halving gives a more
isotropic chunk. At each level, ``maxCount`` is the largest number of remaining
annotations intersecting one cell, and each remaining annotation is emitted with
probability ``min(1, limit / maxCount)`` (the spec's rule). The draw is a deterministic
per-annotation *priority* (a hash of its id, or its row number without shuffling)
compared with a threshold that grows level by level, so:

- an annotation crossing several cells is emitted at one level, in every cell it
  intersects there;
- which level an annotation lands in depends only on its priority and on per-cell
  counts (a sum over any partition of the table), which is what lets the Dask path
  produce the same bytes as this one;
- within a cell, annotations are listed by priority (pseudo-randomly, as the spec asks),
  so Neuroglancer can draw a prefix as a uniform subsample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sharded import murmurhash3_x86_128
from .columns import AnnotationTable

_MAX_KEY_BITS = 62  # cell indices and compressed Morton codes must fit in a uint64
PRIORITY_SEED = 1  # the seed-0 hash places keys in shards; the priority is independent
HASH_SPACE = 1 << 64
# per-cell counts by bincount up to this many cells, by sorting above
_BINCOUNT_CELLS = 1 << 22


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
    g = table.geometry
    if len(g) == 0:
        return np.zeros(rank), np.ones(rank)
    if table.annotation_type in ("line", "axis_aligned_bounding_box"):
        columns = [[g[:, d], g[:, rank + d]] for d in range(rank)]
    elif table.annotation_type == "ellipsoid":
        g = g.astype(np.float64)
        columns = [[g[:, d] - g[:, rank + d], g[:, d] + g[:, rank + d]] for d in range(rank)]
    else:
        columns = [[g[:, d]] for d in range(rank)]
    # column by column (~5x faster than reducing over axis 0), in float64
    lo = np.floor(np.array([min(c.min() for c in cols) for cols in columns], np.float64))
    hi = np.floor(np.array([max(c.max() for c in cols) for cols in columns], np.float64)) + 1
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


def take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` for a C-contiguous 2-D array, each row copied as one block (several
    times faster than numpy's row indexing of narrow arrays)."""
    a = np.ascontiguousarray(a)
    item = np.dtype((np.void, a.shape[1] * a.itemsize))
    return a.view(item)[rows].view(a.dtype).reshape(len(rows), a.shape[1])


def to_grid_units(v: np.ndarray, lower: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """``(v - lower) / chunk`` in float64: positions in units of cells."""
    out = v.astype(np.float64)
    out -= lower
    out /= chunk
    return out


def _cell_coords(g: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cell coordinates of positions in cell units (a temporary: overwritten)."""
    np.floor(g, out=g)
    np.clip(g, 0, grid - 1, out=g)
    return g.astype(np.int64)


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
        return to_grid_units(v, lower, chunk)

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
    """Linear (C order) cell indices of cell coordinates."""
    cell = coords[:, 0].astype(np.int64)
    for d in range(1, coords.shape[1]):
        cell *= int(grid[d])
        cell += coords[:, d]
    return cell


def unravel(cells: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Cell coordinates of linear cell indices (C order over ``grid``)."""
    return np.stack(np.unravel_index(cells, tuple(int(g) for g in grid)), axis=1)


def spatial_priority(ids: np.ndarray) -> np.ndarray:
    """The priority of each annotation: murmurhash3_x86_128 of its id (seed 1), low 64 bits.

    Lower priorities are emitted at coarser levels and listed first within a cell.

    Examples
    --------
    >>> spatial_priority(np.array([0, 1], np.uint64)).dtype
    dtype('uint64')
    """
    return murmurhash3_x86_128(np.asarray(ids, np.uint64), seed=PRIORITY_SEED)[0]


def next_threshold(threshold: int, space: int, limit: int, max_count: int) -> int:
    """Priority threshold after a level whose fullest cell holds ``max_count`` remaining
    annotations: those with priority below it are emitted at this level or before.

    Remaining priorities are uniform in ``[threshold, space)``; moving the threshold up
    by a ``limit / max_count`` share of that interval emits each remaining annotation
    with probability ``min(1, limit / max_count)``. Exact integer arithmetic, so every
    process computes the same threshold.

    Examples
    --------
    >>> next_threshold(0, 100, 10, 100)
    10
    >>> next_threshold(10, 100, 10, 5)
    100
    """
    if max_count <= limit:
        return space
    return threshold + (space - threshold) * limit // max_count


def level_grids(lower: np.ndarray, upper: np.ndarray, max_levels: int):
    """``(grid_shape, chunk_size, last)`` of each possible level, coarse to fine.

    ``last`` marks the level that must take every annotation left: the
    ``max_levels``-th, or the one after which cell keys would not fit in 64 bits.
    """
    grid = np.ones(len(lower), np.int64)
    chunk = (np.asarray(upper, np.float64) - lower).astype(np.float64)
    for i in range(max_levels):
        nxt_grid, nxt_chunk = next_grid(grid, chunk)
        last = (i + 1 >= max_levels
                or np.log2(nxt_grid.astype(np.float64)).sum() > _MAX_KEY_BITS)
        yield grid, chunk, last
        if last:
            return
        grid, chunk = nxt_grid, nxt_chunk


def max_cell_count(cells: np.ndarray, grid: np.ndarray) -> int:
    """The largest number of entries sharing one linear cell index (0 if none)."""
    if len(cells) == 0:
        return 0
    if int(np.prod(grid.astype(np.float64))) <= max(_BINCOUNT_CELLS, len(cells)):
        return int(np.bincount(cells).max())
    s = np.sort(cells)
    runs = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1], [True]]))
    return int(np.diff(runs).max())


def priority_order(ids: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Rows sorted by (priority, id)."""
    order = np.argsort(priority)
    p = priority[order]
    if len(p) > 1 and (p[1:] == p[:-1]).any():  # equal hashes: break ties by id
        order = np.lexsort((ids, priority))
    return order


class LevelCells:
    """The cells that annotations ``rows`` intersect, level after level.

    Points and line end points are placed once in the finest grid; their cell at a
    coarser level is that cell shifted right (chunk sizes differ by powers of two, so
    ``floor((p - lower) / chunk)`` agrees exactly). A line whose two ends share a cell
    lies in that cell (cells are convex); only the others are traced through the grid.
    """

    def __init__(self, table: AnnotationTable, rows: np.ndarray, lower: np.ndarray,
                 grids: list):
        self.table, self.rows, self.lower = table, rows, lower
        self.fine_grid, fine_chunk, _ = grids[-1]
        rank = table.space.rank
        self.ends = []
        if table.annotation_type in ("point", "line"):
            g = take_rows(table.geometry, rows)
            for first in range(0, g.shape[1], rank):
                units = to_grid_units(g[:, first:first + rank], lower, fine_chunk)
                self.ends.append(_cell_coords(units, self.fine_grid))

    def at(self, start: int, grid: np.ndarray, chunk: np.ndarray):
        """Entries ``(position in rows[start:], linear cell)`` at the level ``grid``."""
        remaining = self.rows[start:]
        if not self.ends:
            pos, coords = intersected_cells(self.table, remaining, self.lower, chunk, grid)
            return pos, _linear(coords, grid)
        shift = np.log2(self.fine_grid // grid).astype(np.int64)
        a = self.ends[0][start:] >> shift
        if len(self.ends) == 1:
            return np.arange(len(remaining)), _linear(a, grid)
        b = self.ends[1][start:] >> shift
        one_cell = (a == b).all(axis=1)
        pos = np.flatnonzero(one_cell)
        cells = _linear(a[one_cell], grid)
        crossing = np.flatnonzero(~one_cell)
        if len(crossing):
            p, coords = intersected_cells(self.table, remaining[crossing], self.lower, chunk,
                                          grid)
            pos = np.concatenate([pos, crossing[p]])
            cells = np.concatenate([cells, _linear(coords, grid)])
        return pos, cells


def build_levels(table: AnnotationTable, lower: np.ndarray, upper: np.ndarray, *,
                 max_levels: int, limit: int, shuffle: bool) -> list[Level]:
    """Assign every annotation to exactly one level, coarse to fine.

    ``shuffle`` uses :func:`spatial_priority` (the spec's uniform subsample); otherwise
    the row number is the priority, so earlier rows go to coarser levels and are listed
    first within a cell.
    """
    n = len(table)
    if limit == 0 and max_levels != 1:
        raise ValueError("target_chunk_limit=0 (no subsampling) needs num_spatial_levels=1")
    if limit < 0 or max_levels < 1:
        raise ValueError("target_chunk_limit must be >= 0 and num_spatial_levels >= 1")
    if shuffle:
        priority, space = spatial_priority(table.ids), HASH_SPACE
        by_priority = priority_order(table.ids, priority)
        sorted_priority = priority[by_priority]
    else:
        by_priority = np.arange(n)
        sorted_priority, space = by_priority.astype(np.uint64), max(n, 1)
    grids = list(level_grids(lower, upper, 1 if limit == 0 else max_levels))
    finder = LevelCells(table, by_priority, lower, grids)
    threshold, start = 0, 0  # rows by_priority[start:] remain
    levels: list[Level] = []
    for grid, chunk, last in grids:
        pos, cells = finder.at(start, grid, chunk)
        if last:
            k = n - start
        else:
            threshold = next_threshold(threshold, space, limit, max_cell_count(cells, grid))
            k = int(np.searchsorted(sorted_priority[start:], np.uint64(min(threshold, space - 1)),
                                    side="left" if threshold < space else "right"))
        emitted = pos < k
        cells, pos = _sort_by_cell_then_position(cells[emitted], pos[emitted], k)
        levels.append(Level(grid.copy(), chunk.copy(), cells, by_priority[start + pos],
                            max(1, max_cell_count(cells, grid))))
        start += k
        if start == n:
            break
    return levels


def _sort_by_cell_then_position(cells: np.ndarray, pos: np.ndarray, k: int):
    """``(cells, pos)`` ordered by cell, then by position (priority rank)."""
    p_bits = max(1, (k - 1).bit_length())
    c_bits = int(cells.max()).bit_length() if len(cells) else 0
    if c_bits + p_bits > 63:
        order = np.lexsort((pos, cells))
        return cells[order], pos[order]
    # (cell, position) packed in one integer: a plain sort of values is several times
    # faster than a lexsort, and gives back both
    key = cells.astype(np.int64) << p_bits | pos
    key.sort()
    return key >> p_bits, key & ((1 << p_bits) - 1)


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
