"""Annotation sources from dask DataFrames: the single-process writer's bytes, written
shard by shard by Dask workers, so no process ever holds the whole table.

The plan (each step a Dask computation over the partitions):

1. **Facts**: every partition is validated as the pandas path validates a table
   (errors name the partition, column, row and value) and reports its bounds, row
   count, id range, property types, relationship segments and sizes; a tree reduction
   combines them. Property types that depend on the values (integers sized by their
   range, colours with or without alpha) are decided from the whole table, as pandas
   would. Ids are unique within partitions; when partition id ranges overlap, a
   shuffle of the ids alone checks them across partitions.
2. **Spatial levels**, one pass per level: each annotation's level depends only on its
   priority (a hash of its id, see :mod:`.spatial`) and on per-cell counts, which are
   sums over partitions. A pass counts, per cell, the annotations still remaining at
   this level and those emitted at the previous one.
3. **Shuffle**: every partition turns its rows into *entries* tagged with their
   destination shard — each row once for the by-id index, once per related segment
   for each relationship index, once per intersected cell at its spatial level — and
   Dask's shuffle (``set_index`` on the destination, one output partition per shard)
   brings each shard's entries together.
4. **Write**: one task per shard encodes its entries with the single-process encoders
   and packer and writes the shard file whole (a renamed temporary file, or one kvstore
   write), so a retried task rewrites the same bytes. ``info`` is written last.

Memory per worker is bounded by the partition size (steps 1-3) and the shard size
(step 4, at most ~128 MB of output per shard, see ``choose_sharding``), never by the
table size: the shuffle is Dask's peer-to-peer one, which spills to disk, unless all
entries fit in a quarter of the cluster's memory (then the faster task-based one).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..destination import is_local_path, open_destination
from ..sharded import shard_name, shard_numbers
from ..validation import TableError
from .columns import (
    AnnotationTable,
    PropertyColumn,
    RelationshipColumn,
    _int_type_for,
    _relationship_key,
    read_properties,
    read_table,
)
from .coord_space import as_coord_space, geometry_columns
from .indexes import (
    by_id_shard_files,
    group_shard_files,
    groups_sharding,
    id_ranks,
    info_bytes,
    info_header,
    relationship_groups,
    spatial_entry,
)
from .records import Records, by_id_lengths, encode_records, group_runs, record_dtype
from .sharding import choose_sharding
from .spatial import (
    HASH_SPACE,
    LevelCells,
    bounds,
    compressed_morton,
    level_grids,
    next_threshold,
    priority_order,
    spatial_priority,
    unravel,
)

# a task that dies after writing part of a shard, once (tests set it: see tests/scale_out)
CRASH_ONCE_ENV = "NGLIVE_TEST_CRASH_ONCE"

log = logging.getLogger(__name__)


def is_dask_dataframe(df) -> bool:
    """True for a ``dask.dataframe.DataFrame`` (without importing dask otherwise)."""
    return type(df).__module__.split(".")[0] == "dask" and hasattr(df, "npartitions")


# ------------------------------------------------------------------------------ the plan

@dataclass
class _Index:
    """One index of the source and the destinations (output partitions) of its shards."""

    directory: str
    kind: str  # "by_id", "relationship" or "spatial"
    sharding: dict
    first_dest: int
    which: int = 0  # relationship number or spatial level

    @property
    def num_dest(self) -> int:
        return 1 << self.sharding["shard_bits"]


@dataclass
class _Plan:
    """What every task needs to know about the whole table (small, pickled to tasks)."""

    space: object
    annotation_type: str
    properties: list  # resolved property spec dicts (types decided globally)
    relationships: list  # column names
    rel_widths: list  # most ids one row lists, per relationship
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    grids: list = field(default_factory=list)
    shuffle: bool = True
    row_offsets: np.ndarray | None = None  # first global row of each partition
    num_rows: int = 0
    thresholds: list = field(default_factory=list)  # per spatial level
    indexes: list = field(default_factory=list)
    record_words: int = 0  # of one encoded record

    def table(self, pdf: pd.DataFrame, partition: int, *,
              geometry_only: bool = False) -> AnnotationTable:
        """The validated table of one partition, with the global property types (or
        only its ids and geometry)."""
        try:
            if geometry_only:
                return read_table(pdf, self.space, self.annotation_type)
            return read_table(pdf, self.space, self.annotation_type, self.properties,
                              self.relationships)
        except TableError as e:
            raise e.in_partition(partition) from None

    def priority(self, table: AnnotationTable, partition: int) -> np.ndarray:
        if self.shuffle:
            return spatial_priority(table.ids)
        start = int(self.row_offsets[partition])
        return np.arange(start, start + len(table), dtype=np.uint64)

    @property
    def space_size(self) -> int:
        return HASH_SPACE if self.shuffle else max(self.num_rows, 1)


class _PartitionLevels:
    """One partition's annotations in priority order, placed in every level's grid once:
    the annotations of a priority range (those remaining at a level, or emitted at it)
    are then a contiguous run."""

    def __init__(self, table: AnnotationTable, plan: _Plan, partition: int):
        self.plan = plan
        p = plan.priority(table, partition)
        self.order = priority_order(table.ids, p) if plan.shuffle else np.arange(len(table))
        self.sorted_priority = p[self.order]
        self.cells = LevelCells(table, self.order, plan.lower, plan.grids)

    def position(self, threshold: int) -> int:
        """How many annotations have a priority below ``threshold``."""
        if threshold >= self.plan.space_size:
            return len(self.order)
        return int(np.searchsorted(self.sorted_priority, np.uint64(threshold)))

    def entries(self, level: int, lo: int, hi: int):
        """``(row, linear cell)`` of every cell at ``level`` intersected by annotations
        with priority in ``[lo, hi)``."""
        grid, chunk, _ = self.plan.grids[level]
        start, stop = self.position(lo), self.position(hi)
        pos, cells = self.cells.at(start, grid, chunk, stop)
        return self.order[start + pos], cells


# ---------------------------------------------------------------------------- 1. facts

def _facts(pdf: pd.DataFrame, partition: int, plan: _Plan, requests) -> dict:
    try:
        table = read_table(pdf, plan.space, plan.annotation_type, requests, plan.relationships)
    except TableError as e:
        if e.column in plan.relationships and isinstance(e.value, str) and \
                e.value.startswith("["):
            raise TableError(
                e.message + " (dask turned a column of lists into strings: give lists an "
                "Arrow list dtype, pd.ArrowDtype(pyarrow.list_(pyarrow.uint64())), or set "
                "dask.config 'dataframe.convert-string' to False)", column=e.column,
                row=e.row, value=e.value, accepted=e.accepted, partition=partition) from None
        raise e.in_partition(partition) from None
    n = len(table)
    facts: dict = {"n": n, "partitions": [partition], "lengths": {partition: n}}
    if n:
        lo, hi = bounds(table)
        facts.update(lower=lo, upper=hi, id_ranges=[(int(table.ids.min()),
                                                      int(table.ids.max()), partition)])
    # an empty partition's types say nothing (no colour to tell rgb from rgba): kept
    # apart, used only if every partition is empty
    facts["specs" if n else "empty_specs"] = [{partition: p.spec} for p in table.properties]
    facts.setdefault("specs", [{} for _ in table.properties])
    facts.setdefault("empty_specs", [{} for _ in table.properties])
    facts["int_ranges"] = [
        (int(p.values.min()), int(p.values.max())) if n and p.values.dtype.kind in "iu"
        else None for p in table.properties]
    records = encode_records(table)
    facts["by_id_words"] = int(by_id_lengths(table, records).sum())
    facts["record_words"] = records.width
    rels = []
    rank, row_of_rank = id_ranks(table.ids)
    for r in table.relationships:
        segments, counts, _ = relationship_groups(table, r, rank, row_of_rank)
        widths = np.diff(r.offsets)
        rels.append({"segments": segments, "pairs": int(counts.sum()),
                     "width": int(widths.max()) if n else 0})
    facts["rels"] = rels
    return facts


def _merge_facts(*parts: dict) -> dict:
    out = {"n": sum(p["n"] for p in parts),
           "partitions": sum((p["partitions"] for p in parts), []),
           "lengths": {k: v for p in parts for k, v in p["lengths"].items()},
           "by_id_words": sum(p["by_id_words"] for p in parts),
           "record_words": parts[0]["record_words"],
           "id_ranges": sum((p.get("id_ranges", []) for p in parts), [])}
    bounded = [p for p in parts if "lower" in p]
    if bounded:
        out["lower"] = np.min([p["lower"] for p in bounded], axis=0)
        out["upper"] = np.max([p["upper"] for p in bounded], axis=0)
    for name in ("specs", "empty_specs"):
        out[name] = [{k: v for p in parts for k, v in p[name][j].items()}
                     for j in range(len(parts[0][name]))]
    out["int_ranges"] = []
    for j in range(len(parts[0]["int_ranges"])):
        ranges = [p["int_ranges"][j] for p in parts if p["int_ranges"][j] is not None]
        out["int_ranges"].append((min(r[0] for r in ranges), max(r[1] for r in ranges))
                                 if ranges else None)
    out["rels"] = [{"segments": np.unique(np.concatenate([p["rels"][j]["segments"]
                                                         for p in parts])),
                    "pairs": sum(p["rels"][j]["pairs"] for p in parts),
                    "width": max(p["rels"][j]["width"] for p in parts)}
                   for j in range(len(parts[0]["rels"]))]
    return out


def _resolve_properties(facts: dict, ddf) -> list[dict]:
    """One spec per property for the whole table, as the pandas path would choose it."""
    resolved = []
    for specs, empty, int_range in zip(facts["specs"], facts["empty_specs"],
                                       facts["int_ranges"], strict=True):
        specs = specs or empty
        distinct = {repr(s): s for s in specs.values()}
        if len(distinct) == 1:
            resolved.append(next(iter(distinct.values())))
            continue
        first = next(iter(specs.values()))
        name = first["id"]
        types = {s["type"] for s in specs.values()}
        if types <= {"uint8", "int16", "uint16", "int32", "uint32"} and int_range is not None:
            # integers typed by their range: decide on the range of the whole table
            ptype = _int_type_for(np.array(int_range))
            if ptype is None:
                raise TableError("integer values do not fit a 32-bit property", column=name,
                                 value=int_range,
                                 accepted="int32 or uint32 ranges (cast to float for larger)")
            resolved.append({**first, "type": ptype})
        elif types == {"rgb", "rgba"}:
            # pandas: "#rrggbbaa" in some rows and not in all is an error; find the row
            partition = next(k for k, s in specs.items() if s["type"] == "rgba")
            pdf = ddf.get_partition(partition).compute()
            try:
                read_properties(pdf, [{**first, "type": "rgb"}])
            except TableError as e:
                raise e.in_partition(partition) from None
            raise TableError("colour has an alpha channel in some partitions only", column=name,
                             partition=partition, accepted='"#rrggbb" or "#rrggbbaa" throughout')
        else:
            partitions = sorted(specs)
            raise TableError(
                f"the partitions give this property different types or categories "
                f"({sorted({repr(s) for s in specs.values()})[:2]}...)", column=name,
                partition=partitions[-1],
                accepted="the same dtype in every partition; for categoricals known "
                         "categories (ddf.categorize() or a CategoricalDtype)")
    return resolved


def _check_unique_ids(ddf, facts: dict, index_name: str) -> None:
    """Ids are unique within each partition; across partitions only overlapping id
    ranges can repeat one, and then a shuffle of the ids alone finds it."""
    ranges = sorted(facts["id_ranges"])
    if all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False)):
        return
    ids = ddf.map_partitions(_ids_frame, meta={"id": "u8", "bucket": "i8"})
    buckets = max(1, ddf.npartitions)
    found = ids.shuffle(on="bucket", npartitions=buckets).map_partitions(
        _first_duplicate, meta={"id": "u8"}).compute()
    if len(found):
        dup = int(found["id"].min())
        where = [i for i, part in enumerate(ddf.to_delayed())
                 if _contains_id(part, dup)]
        raise TableError("duplicate annotation id (in partitions "
                         f"{', '.join(map(str, where))})", column=index_name, row=dup,
                         value=dup, accepted="unique ids", partition=where[-1] if where else None)


def _ids_frame(pdf: pd.DataFrame) -> pd.DataFrame:
    from ..validation import as_uint64_ids

    ids = as_uint64_ids(pdf.index, column="index", index=pdf.index)
    return pd.DataFrame({"id": ids, "bucket": (ids % np.uint64(1 << 20)).astype(np.int64)})


def _first_duplicate(pdf: pd.DataFrame) -> pd.DataFrame:
    ids = np.sort(pdf["id"].to_numpy())
    dup = ids[1:][ids[1:] == ids[:-1]]
    return pd.DataFrame({"id": dup[:1].astype(np.uint64)})


def _contains_id(part, dup: int) -> bool:
    import dask

    def has(pdf):
        from ..validation import as_uint64_ids

        return bool((as_uint64_ids(pdf.index, column="index") == np.uint64(dup)).any())

    return dask.delayed(has)(part).compute()


# ---------------------------------------------------------------------- 2. levels

def _level_counts(pdf: pd.DataFrame, partition: int, plan: _Plan, level: int) -> dict:
    """Per-cell counts in one partition: annotations remaining at ``level`` and those
    emitted at ``level - 1``."""
    levels = _PartitionLevels(plan.table(pdf, partition, geometry_only=True), plan, partition)
    t = plan.thresholds
    below = t[level - 1] if level else 0
    end = plan.space_size
    out = {"remaining_rows": len(levels.order) - levels.position(below),
           "remaining": np.unique(levels.entries(level, below, end)[1], return_counts=True)}
    if level:
        lo = t[level - 2] if level > 1 else 0
        out["emitted"] = np.unique(levels.entries(level - 1, lo, below)[1], return_counts=True)
    return out


def _merge_counts(*parts: dict) -> dict:
    out = {"remaining_rows": sum(p["remaining_rows"] for p in parts),
           "remaining": _sum_counts([p["remaining"] for p in parts])}
    if "emitted" in parts[0]:
        out["emitted"] = _sum_counts([p["emitted"] for p in parts])
    return out


def _sum_counts(pairs):
    cells = np.concatenate([c for c, _ in pairs])
    counts = np.concatenate([n for _, n in pairs])
    u, inv = np.unique(cells, return_inverse=True)
    return u, np.bincount(inv.reshape(-1), weights=counts, minlength=len(u)).astype(np.int64)


# ----------------------------------------------------------------- 3. entries by shard

@dataclass
class _EntryLayout:
    """Where things sit in an entry's 32-bit words: the annotation id, the list key
    (list entries), the priority (list entries, without shuffling: a row number; with
    shuffling it is a hash of the id, computed again), the encoded record, and the
    related ids (by-id entries: per relationship a count, then ``width`` uint64 slots).

    Entries travel as one block of uint64 columns (two words each), which Dask's
    shuffle moves and slices as a single array."""

    by_id: bool
    id: int
    key: int | None
    prio: int | None
    record: int
    record_words: int
    rels: list  # (count word, first id word, width)
    words: int  # padded to an even number

    @classmethod
    def of(cls, plan: _Plan, *, by_id: bool) -> _EntryLayout:
        pos = 2
        key = prio = None
        if not by_id:
            key, pos = pos, pos + 2
            if not plan.shuffle:
                prio, pos = pos, pos + 2
        record, width = pos, plan.record_words
        pos += width
        rels = []
        if by_id:
            for w in plan.rel_widths:
                rels.append((pos, pos + 1, w))
                pos += 1 + 2 * w
        return cls(by_id, 0, key, prio, record, width, rels, pos + pos % 2)

    def columns(self) -> dict:
        return {"dest": "i4", **{f"w{i}": "u8" for i in range(self.words // 2)}}

    def frame(self, dest: np.ndarray, words: np.ndarray) -> pd.DataFrame:
        """A DataFrame of entries from their destinations and an (n, words) uint32 array."""
        block = np.ascontiguousarray(words).view(np.uint64)
        frame = pd.DataFrame(block, columns=[f"w{i}" for i in range(self.words // 2)],
                             copy=False)
        frame.insert(0, "dest", dest.astype(np.int32))
        return frame

    def words_of(self, part: pd.DataFrame) -> np.ndarray:
        """The (n, words) uint32 array of a DataFrame of entries."""
        cols = [f"w{i}" for i in range(self.words // 2)]
        return np.ascontiguousarray(part[cols].to_numpy(np.uint64)).view(np.uint32)


def _u64(words: np.ndarray, at: int) -> np.ndarray:
    return np.ascontiguousarray(words[:, at:at + 2]).view(np.uint64).reshape(-1)


def _entries(pdf: pd.DataFrame, partition: int, plan: _Plan):
    """Every entry of one partition, each with the output partition (the shard) it goes
    to: ``(by-id destinations, by-id words, list destinations, list words)``."""
    table = plan.table(pdf, partition)
    records = encode_records(table)
    levels = _PartitionLevels(table, plan, partition) if any(
        i.kind == "spatial" for i in plan.indexes) else None
    blocks = []  # (rows, dest, key, prio) of list entries
    by_id = None
    for index in plan.indexes:
        prio = None
        if index.kind == "by_id":
            dest = index.first_dest + shard_numbers(table.ids, index.sharding).astype(np.int64)
            by_id = (dest, _by_id_words(table, records, plan))
            continue
        if index.kind == "relationship":
            r = table.relationships[index.which]
            rank, row_of_rank = id_ranks(table.ids)
            segments, counts, members = relationship_groups(table, r, rank, row_of_rank)
            rows, keys = members, np.repeat(segments, counts)
        else:
            level = index.which
            grid = plan.grids[level][0]
            lo = plan.thresholds[level - 1] if level else 0
            rows, cells = levels.entries(level, lo, plan.thresholds[level])
            keys = compressed_morton(unravel(cells, grid), grid)
            if not plan.shuffle:
                prio = rows.astype(np.uint64) + np.uint64(plan.row_offsets[partition])
        dest = index.first_dest + shard_numbers(keys, index.sharding).astype(np.int64)
        blocks.append((rows, dest, keys, prio))
    layout = _EntryLayout.of(plan, by_id=False)
    rows = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros(0, np.int64)
    words = np.zeros((len(rows), layout.words), np.uint32)
    words[:, layout.id:layout.id + 2] = table.ids[rows].view(np.uint32).reshape(-1, 2)
    if blocks:
        keys = np.concatenate([b[2] for b in blocks]).astype(np.uint64)
        words[:, layout.key:layout.key + 2] = keys.view(np.uint32).reshape(-1, 2)
        if layout.prio is not None:
            prio = np.concatenate([b[3] if b[3] is not None else np.zeros(len(b[0]), "u8")
                                   for b in blocks]).astype(np.uint64)
            words[:, layout.prio:layout.prio + 2] = prio.view(np.uint32).reshape(-1, 2)
    words[:, layout.record:layout.record + layout.record_words] = records.rows(rows)
    dest = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.int64)
    if by_id is None:
        by_id = (np.zeros(0, np.int64), np.zeros((0, _EntryLayout.of(plan, by_id=True).words),
                                                  np.uint32))
    return by_id[0], by_id[1], dest, words


def _by_id_words(table: AnnotationTable, records, plan: _Plan) -> np.ndarray:
    layout = _EntryLayout.of(plan, by_id=True)
    words = np.zeros((len(table), layout.words), np.uint32)
    words[:, layout.id:layout.id + 2] = table.ids.view(np.uint32).reshape(-1, 2)
    words[:, layout.record:layout.record + layout.record_words] = records.words.reshape(
        len(table), layout.record_words)
    for rel, (count_at, ids_at, width) in zip(table.relationships, layout.rels, strict=True):
        counts = np.diff(rel.offsets)
        words[:, count_at] = counts
        within = np.arange(len(rel.values)) - np.repeat(rel.offsets[:-1], counts)
        row_of = np.repeat(np.arange(len(table)), counts)
        id_words = rel.values.view(np.uint32).reshape(-1, 2)
        for k in range(width):
            sel = within == k
            words[row_of[sel], ids_at + 2 * k:ids_at + 2 * k + 2] = id_words[sel]
    return words


# -------------------------------------------------------------------- 4. shard tasks

def _shard_records(words: np.ndarray, layout: _EntryLayout) -> Records:
    rec = np.ascontiguousarray(words[:, layout.record:layout.record + layout.record_words])
    n, w = rec.shape
    return Records(rec.reshape(-1), np.arange(n, dtype=np.int64) * w, np.full(n, w, np.int64), w)


def _shard_by_id_table(words: np.ndarray, layout: _EntryLayout, plan: _Plan) -> AnnotationTable:
    """The ids and related ids of by-id entries (what ``encode_by_id`` reads besides the
    records)."""
    rels = []
    keys = _relationship_keys(plan.relationships)
    for r, (count_at, ids_at, width) in enumerate(layout.rels):
        counts = words[:, count_at].astype(np.int64)
        slots = np.ascontiguousarray(words[:, ids_at:ids_at + 2 * width]).view(np.uint64)
        values = slots[np.arange(width)[None, :] < counts[:, None]]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        rels.append(RelationshipColumn(plan.relationships[r], keys[r], offsets, values))
    g = len(geometry_columns(plan.annotation_type, plan.space))
    return AnnotationTable(plan.annotation_type, plan.space, _u64(words, layout.id),
                           np.zeros((len(words), g), np.float32), [], rels)


def _relationship_keys(names: list[str]) -> list[str]:
    used: set = set()
    return [_relationship_key(n, used) for n in names]


def _write_shard(part: pd.DataFrame, plan: _Plan, output) -> pd.DataFrame:
    """Encode and write the one shard whose entries ``part`` holds."""
    if len(part) == 0:
        return pd.DataFrame({"file": pd.Series([], dtype=object), "bytes": np.zeros(0, "i8")})
    dest = int(part.index[0])
    index = next(i for i in plan.indexes if i.first_dest <= dest < i.first_dest + i.num_dest)
    layout = _EntryLayout.of(plan, by_id=index.kind == "by_id")
    words = layout.words_of(part)
    del part
    records = _shard_records(words, layout)
    if index.kind == "by_id":
        files = by_id_shard_files(_shard_by_id_table(words, layout, plan), records,
                                  index.sharding)
    else:
        keys, ids = _u64(words, layout.key), _u64(words, layout.id)
        if index.kind == "spatial":  # within a cell: by priority, as build_levels orders
            prio = _u64(words, layout.prio) if layout.prio is not None else \
                spatial_priority(ids)
            order = np.lexsort((ids, prio, keys))
        else:  # within a segment's list: by annotation id
            order = np.lexsort((ids, keys))
        first, counts = group_runs(keys[order])
        files = group_shard_files(index.directory, keys[order][first], counts, order, records,
                                  ids, index.sharding)
    files = list(files)
    want = f"{index.directory}/{shard_name(dest - index.first_dest, index.sharding)}"
    assert [k for k, _ in files] == [want], (files, want)  # one shard per partition
    dest_out = open_destination(output, atomic=True)
    key, data = files[0]
    _maybe_crash(dest_out, key, data)
    dest_out.write(key, data)
    dest_out.flush()
    return pd.DataFrame({"file": [key], "bytes": [len(data)]})


def _maybe_crash(dest, key: str, data: bytes) -> None:
    """Test hook: the first task to get here dies, leaving half a shard behind it (as a
    killed worker would), when ``NGLIVE_TEST_CRASH_ONCE`` names a marker file."""
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    if isinstance(dest.location, str) and is_local_path(dest.location):
        partial = os.path.join(dest.location, key) + ".tmp-crashed"
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        with open(partial, "wb") as f:
            f.write(data[: len(data) // 2])
    os._exit(1)


# ------------------------------------------------------------------------- driving it

def _client():
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _compute(items: list, desc: str, progress: bool, retries: int = 2) -> list:
    """Compute delayed objects on the active distributed client (with retries and a
    progress bar over the tasks as they finish), or on dask's local scheduler."""
    import dask

    t0 = time.perf_counter()
    client = _client()
    if client is None:
        if progress:
            from tqdm.dask import TqdmCallback

            with TqdmCallback(desc=desc):
                out = list(dask.compute(*items))
        else:
            out = list(dask.compute(*items))
    else:
        futures = client.compute(items, retries=retries)
        if progress:
            from distributed import as_completed
            from tqdm.auto import tqdm

            with tqdm(total=len(futures), desc=desc, unit="task") as bar:
                for _ in as_completed(futures):
                    bar.update(1)
        out = client.gather(futures)
    log.info("%s: %.2f s", desc, time.perf_counter() - t0)
    return out


def _map_reduce(items: list, combine, desc: str, progress: bool, fan_in: int = 8):
    """``combine`` over the results of delayed ``items`` (one per partition), reduced as
    a tree on the workers: the progress bar counts partitions."""
    from dask import delayed

    if not items:
        raise ValueError("the dask DataFrame has no partitions")
    level = items
    while len(level) > 1:
        level = [delayed(combine)(*level[i:i + fan_in]) for i in range(0, len(level), fan_in)]
    client = _client()
    if client is None or len(items) == 1:
        return _compute([level[0]], desc, progress)[0]
    t0 = time.perf_counter()
    futures = client.compute(items, retries=2)
    if progress:
        from distributed import as_completed
        from tqdm.auto import tqdm

        with tqdm(total=len(futures), desc=desc, unit="partition") as bar:
            for _ in as_completed(futures):
                bar.update(1)
    while len(futures) > 1:
        futures = [client.submit(combine, *futures[i:i + fan_in], retries=2)
                   for i in range(0, len(futures), fan_in)]
    out = futures[0].result()
    log.info("%s: %.2f s", desc, time.perf_counter() - t0)
    return out


def write_annotations_dask(ddf, coord_space, annotation_type: str, properties=(),
                           relationships=(), output_dir=None, *, write_by_id=True,
                           write_by_relationship=True, write_by_spatial_chunk=True,
                           num_spatial_levels=7, target_chunk_limit=10000,
                           shuffle_before_assigning_spatial_levels=True, description="",
                           gzip=False, progress=True) -> str:
    """Write a ``dask.dataframe.DataFrame`` as a sharded precomputed annotation source.

    Called by :func:`nglive.write_annotations` for dask DataFrames (same keywords).
    Produces the same bytes as the pandas path on the same table, however it is
    partitioned. ``output_dir`` must be reachable by every worker: a shared directory,
    ``file://``, ``gs://`` or ``s3://``.

    Choosing sizes: each task holds one input partition and its entries (a few hundred
    bytes per row: aim for partitions of 1-5 million rows, ~100-500 MB in memory),
    and a shard task holds one shard's entries and bytes (shards are capped at ~128 MB
    of output, so ~0.5 GB). Workers with 4 GB each are enough at any table size (100M
    rows: 3.2 GB peak per worker, benchmarks/results/dask.json).
    """
    from dask import delayed

    space = as_coord_space(coord_space)
    if annotation_type == "polyline":
        raise ValueError("polylines need polyline_points, a second table: write them from "
                         "pandas (the Dask path takes point, line, axis_aligned_bounding_box "
                         "and ellipsoid tables)")
    geometry_columns(annotation_type, space)  # rejects unknown types
    if target_chunk_limit == 0 and num_spatial_levels != 1:
        raise ValueError("target_chunk_limit=0 (no subsampling) needs num_spatial_levels=1")
    if target_chunk_limit < 0 or num_spatial_levels < 1:
        raise ValueError("target_chunk_limit must be >= 0 and num_spatial_levels >= 1")
    output = "annotations" if output_dir is None else output_dir
    if hasattr(output, "spec") and not isinstance(output, str | dict):
        output = output.spec().to_json()  # an open KvStore: its spec travels to workers
    text = output if isinstance(output, str) else str(output.get("driver", "")) \
        if isinstance(output, dict) else ""
    if "memory" in text and not is_local_path(output):
        raise ValueError("Dask workers write the files themselves: give a directory, "
                         "file://, gs:// or s3:// location, not memory://")
    if isinstance(output, os.PathLike):
        output = os.fspath(output)
    rel_names = [relationships] if isinstance(relationships, str) else list(relationships)
    plan = _Plan(space, annotation_type, [], rel_names, [],
                 shuffle=shuffle_before_assigning_spatial_levels)
    parts = ddf.to_delayed()
    # 1. facts
    per_part = [delayed(_facts)(p, i, plan, properties) for i, p in enumerate(parts)]
    facts = _map_reduce(per_part, _merge_facts, "checking the table", progress)
    plan.properties = _resolve_properties(facts, ddf)
    index_name = getattr(ddf.index, "name", None) or "index"
    _check_unique_ids(ddf, facts, index_name)
    n = facts["n"]
    plan.num_rows = n
    plan.rel_widths = [r["width"] for r in facts["rels"]]
    lengths = [facts["lengths"][i] for i in range(len(parts))]
    plan.row_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rank = len(space.names)
    plan.lower = facts.get("lower", np.zeros(rank))
    plan.upper = facts.get("upper", np.ones(rank))
    rel_keys = _relationship_keys(rel_names)
    rel_specs = [RelationshipColumn(name, key, None, None)
                 for name, key in zip(rel_names, rel_keys, strict=True)]
    info = info_header(space, annotation_type,
                       [PropertyColumn(s, None) for s in plan.properties], rel_specs,
                       plan.lower, plan.upper, description)
    record_words = record_dtype(len(geometry_columns(annotation_type, space)),
                                [PropertyColumn(s, None) for s in plan.properties]).itemsize // 4
    plan.record_words = record_words
    indexes: list[_Index] = []
    dest = 0

    def add(directory, kind, sharding, which=0):
        nonlocal dest
        indexes.append(_Index(directory, kind, sharding, dest, which))
        dest += 1 << sharding["shard_bits"]

    if write_by_id:
        sharding = choose_sharding(n, 4 * facts["by_id_words"], gzip=gzip)
        info["by_id"] = {"key": "by_id", "sharding": sharding}
        add("by_id", "by_id", sharding)
    if write_by_relationship:
        for r, (entry, rf) in enumerate(zip(info["relationships"], facts["rels"], strict=True)):
            sharding = groups_sharding(len(rf["segments"]), rf["pairs"],
                                       record_words * rf["pairs"], gzip)
            entry["sharding"] = sharding
            add(entry["key"], "relationship", sharding, r)
    # 2. spatial levels
    info["spatial"] = []
    if write_by_spatial_chunk:
        plan.grids = list(level_grids(plan.lower, plan.upper,
                                      1 if target_chunk_limit == 0 else num_spatial_levels))
        for level, emitted in enumerate(_levels(parts, plan, target_chunk_limit, progress)):
            cells, counts = emitted
            grid, chunk, _ = plan.grids[level]
            entry = spatial_entry(level, grid, chunk,
                                  max(1, int(counts.max()) if len(counts) else 0))
            m = int(counts.sum())
            entry["sharding"] = groups_sharding(len(cells), m, record_words * m, gzip)
            info["spatial"].append(entry)
            add(entry["key"], "spatial", entry["sharding"], level)
    plan.indexes = indexes
    # 3. entries to their shards, 4. one task per shard
    written = []
    if dest:
        import dask.dataframe as dd

        # one task per input partition makes its entries once; both shuffles take theirs
        split = by_id_dests(indexes)
        method = _shuffle_method(_entry_bytes(plan, facts, info))
        log.info("shuffling ~%.0f MB of entries to %d shards (%s shuffle)",
                 _entry_bytes(plan, facts, info) / 2**20, dest, method)
        pairs = [delayed(_split_entries, nout=2)(p, i, plan, split)
                 for i, p in enumerate(parts)]
        for which, first, last in ((0, 0, split), (1, split, dest)):
            if last <= first:
                continue
            columns = _EntryLayout.of(plan, by_id=which == 0).columns()
            entries = dd.from_delayed([pair[which] for pair in pairs], verify_meta=False,
                                      meta=pd.DataFrame({k: np.zeros(0, v)
                                                         for k, v in columns.items()}))
            # one output partition per shard (destination), whatever the input partitions
            by_shard = entries.set_index("dest", divisions=list(range(first, last + 1)),
                                         shuffle_method=method)
            written += by_shard.map_partitions(
                _write_shard, plan, output, meta=pd.DataFrame(
                    {"file": pd.Series([], dtype=object), "bytes": np.zeros(0, "i8")})
            ).to_delayed()
        _compute(written, "writing shards", progress)
    _remove_crashed_leftovers(output)
    final = open_destination(output)
    final.write("info", info_bytes(info))  # last: a reader never sees a partial source
    final.flush()
    return final.location


def _split_entries(pdf: pd.DataFrame, partition: int, plan: _Plan, split: int):
    """A partition's by-id entries and list entries, as two DataFrames."""
    by_id_dest, by_id_words, dest, words = _entries(pdf, partition, plan)
    return (_EntryLayout.of(plan, by_id=True).frame(by_id_dest, by_id_words),
            _EntryLayout.of(plan, by_id=False).frame(dest, words))


def _entry_bytes(plan: _Plan, facts: dict, info: dict) -> int:
    """About how many bytes the entries of the whole table take."""
    per_list = 4 + 4 * _EntryLayout.of(plan, by_id=False).words
    per_by_id = 4 + 4 * _EntryLayout.of(plan, by_id=True).words
    lists = sum(r["pairs"] for r in facts["rels"]) + facts["n"]  # spatial: ~1 per row
    return facts["n"] * per_by_id + lists * per_list


def _shuffle_method(entry_bytes: int) -> str:
    """Dask's task-based shuffle is several times faster while everything fits in
    memory (at 1M rows, ~6 s against ~15 s on 2 workers); its peer-to-peer shuffle
    spills to disk and bounds memory, for tables that do not fit. Dask's configuration
    (``dataframe.shuffle.method``) decides if it is set."""
    import dask

    configured = dask.config.get("dataframe.shuffle.method", None)
    if configured:
        return configured
    client = _client()
    if client is None:
        return "tasks"
    workers = client.scheduler_info(n_workers=-1).get("workers", {}).values()
    memory = sum(w.get("memory_limit") or 0 for w in workers)
    return "tasks" if memory and entry_bytes < memory / 4 else "p2p"


def by_id_dests(indexes: list[_Index]) -> int:
    """How many destinations (shards) the by-id index has (it comes first), or 0."""
    return indexes[0].num_dest if indexes and indexes[0].kind == "by_id" else 0


def _levels(parts: list, plan: _Plan, limit: int, progress: bool):
    """Per level, the per-cell counts of the annotations it emits: ``(cells, counts)``.

    Fills ``plan.thresholds`` on the way (one pass over the partitions per level)."""
    from dask import delayed

    plan.thresholds = []
    space = plan.space_size
    threshold = 0
    level = 0
    while True:
        _, _, last = plan.grids[level]
        per_part = [delayed(_level_counts)(p, i, plan, level) for i, p in enumerate(parts)]
        res = _map_reduce(per_part, _merge_counts, f"spatial level {level}", progress)
        if level:
            yield res["emitted"]
            if res["remaining_rows"] == 0:
                return
        cells, counts = res["remaining"]
        if last:
            threshold = space
        else:
            max_count = int(counts.max()) if len(counts) else 0
            threshold = next_threshold(threshold, space, limit, max_count)
        plan.thresholds.append(threshold)
        if threshold >= space:  # every remaining annotation is emitted here
            yield cells, counts
            return
        level += 1


def _remove_crashed_leftovers(output) -> None:
    """Temporary files of tasks that died mid-write (local directories only)."""
    if not is_local_path(output):
        return
    for folder, _, names in os.walk(os.fspath(output)):
        for name in names:
            if ".tmp-" in name:
                os.remove(os.path.join(folder, name))
