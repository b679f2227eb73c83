"""Encode DataFrames as Neuroglancer precomputed annotation sources, and write them out."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..destination import open_destination
from ..sharded import iter_shards, shard_order
from .columns import AnnotationTable, read_table
from .coord_space import as_coord_space
from .records import (
    by_id_lengths,
    encode_by_id,
    encode_groups,
    encode_records,
    group_runs,
    groups_words,
    reorder_groups,
)
from .sharding import choose_sharding
from .spatial import bounds, build_levels, compressed_morton, unravel

if sys.byteorder != "little":  # records are assembled as native 32-bit words
    raise ImportError("nglive's annotation encoder needs a little-endian machine")


def _json_number(v: float):
    return int(v) if float(v).is_integer() else float(v)


def _id_ranks(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rank of each row's id, and the row of each rank (None when ids ascend by row)."""
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return np.arange(len(ids)), None
    row_of_rank = np.argsort(ids)
    rank = np.empty(len(ids), np.int64)
    rank[row_of_rank] = np.arange(len(ids))
    return rank, row_of_rank


def _relationship_groups(table: AnnotationTable, r, id_rank, row_of_rank):
    """Segment ids of a relationship (ascending) and their member rows, each group's
    members ordered by annotation id, repeated (segment, row) pairs dropped.

    Returns ``(segments, counts, members)``.
    """
    counts = np.diff(r.offsets)
    rows = np.repeat(np.arange(len(table)), counts)
    # a hash table (pandas) finds the distinct segments in O(n); sorting them is cheap
    code, segments = pd.factorize(r.values)
    by_value = np.argsort(segments)
    segments = segments[by_value]
    rank_of = np.empty(len(by_value), np.int64)
    rank_of[by_value] = np.arange(len(by_value))
    code = rank_of[code]
    bits = max(1, (len(table) - 1).bit_length())
    if len(segments) and (len(segments) - 1).bit_length() + bits <= 63:
        # (segment code, id rank) packed in one integer: one fast sort of values
        key = code.astype(np.int64) << bits | id_rank[rows]
        key.sort()
        key = key[np.concatenate([[True], key[1:] != key[:-1]])] if len(key) else key
        code, rank = key >> bits, key & ((1 << bits) - 1)
    else:
        order = np.lexsort((id_rank[rows], code))
        code, rank = code[order], id_rank[rows][order]
        if len(code):  # an empty table has nothing to deduplicate
            fresh = np.concatenate([[True], (code[1:] != code[:-1]) | (rank[1:] != rank[:-1])])
            code, rank = code[fresh], rank[fresh]
    members = rank if row_of_rank is None else row_of_rank[rank]
    return segments, np.bincount(code, minlength=len(segments)), members


def encode_annotations(
    df: pd.DataFrame | None,
    coord_space,
    annotation_type: str,
    properties=(),
    relationships=(),
    write_sharded: bool = True,
    *,
    polyline_points: pd.DataFrame | None = None,
    write_by_id: bool = True,
    write_by_relationship: bool = True,
    write_by_spatial_chunk: bool = True,
    num_spatial_levels: int = 7,
    target_chunk_limit: int = 10000,
    shuffle_before_assigning_spatial_levels: bool = True,
    description: str = "",
    gzip: bool = False,
) -> dict[str, bytes]:
    """Encode a DataFrame as the files of a precomputed annotation source.

    Pure: nothing is written anywhere. Keys are paths relative to the source root
    (``"info"``, ``"by_id/..."``, ``"by_rel_<name>/..."``, ``"by_spatial_level_<i>/..."``).

    Parameters
    ----------
    df
        One row per annotation; the index is the annotation id (unique, non-negative
        integers below 2**64). Geometry columns follow ``coord_space`` names: ``x, y, z``
        for points, ``xa, ya, za, xb, yb, zb`` for lines and boxes, ``x, y, z, rx, ry, rz``
        for ellipsoids. May be None for polylines without properties or relationships.
    coord_space
        ``"xyz"``, a list of names, a dict, or a ``neuroglancer.CoordinateSpace``.
    annotation_type
        ``"point"``, ``"line"``, ``"axis_aligned_bounding_box"``, ``"ellipsoid"`` or
        ``"polyline"``.
    properties
        Column names (or property spec dicts / ``AnnotationPropertySpec``). Numeric
        columns are typed from their dtype, categoricals become enum properties, and
        ``<name>_r/_g/_b[/_a]`` columns or ``"#rrggbb[aa]"`` strings become rgb/rgba.
    relationships
        Columns of related segment ids: uint64-compatible scalars or lists of them.
    write_sharded
        Sharded indexes (a few shard files, packed by :mod:`nglive.formats.sharded`;
        parameters from :func:`~nglive.formats.annotations.sharding.choose_sharding`)
        instead of one file per key.
    polyline_points
        For polylines: one row per vertex with an ``annotation_id`` column and the
        coordinate columns, in vertex order.
    write_by_id, write_by_relationship, write_by_spatial_chunk
        Which indexes to produce.
    num_spatial_levels
        Most spatial index levels; the last one takes every annotation still left.
    target_chunk_limit
        Annotations per spatial cell to aim for (0: no subsampling, one level).
    shuffle_before_assigning_spatial_levels
        The spec's uniform random subsampling, drawn from a hash of each annotation id
        (so the same table always gives the same bytes, however it is split into
        partitions); if False, the row number is the draw: earlier rows go to coarser
        levels.
    description
        Free text stored in the ``info`` file.
    gzip
        Gzip the values of sharded indexes that average 512 bytes or more (relationship
        and spatial indexes; small by-id records always stay raw). An nglive option,
        off by default: on tables of random coordinates it saves about 20 % of those
        indexes' bytes and costs about 2.5 s per million points.

    Returns
    -------
    dict[str, bytes]
        Every file of the source.

    Raises
    ------
    nglive.formats.validation.TableError
        For bad input, naming the column, row and value.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 5.0], "y": [2.0, 6.0], "z": [3.0, 7.0],
    ...                    "size": [0.5, 2.0]}, index=[10, 11])
    >>> files = encode_annotations(df, "xyz", "point", properties=["size"],
    ...                            write_sharded=False)
    >>> sorted(files)
    ['by_id/10', 'by_id/11', 'by_spatial_level_0/0_0_0', 'info']
    """
    space = as_coord_space(coord_space)
    table = read_table(df, space, annotation_type, properties, relationships, polyline_points)
    return dict(iter_source_files(
        table, write_sharded=write_sharded, write_by_id=write_by_id,
        write_by_relationship=write_by_relationship,
        write_by_spatial_chunk=write_by_spatial_chunk, num_spatial_levels=num_spatial_levels,
        target_chunk_limit=target_chunk_limit,
        shuffle=shuffle_before_assigning_spatial_levels, description=description, gzip=gzip))


def _shard_files(directory: str, keys: np.ndarray, words: np.ndarray, bounds: np.ndarray,
                 sharding: dict) -> Iterator[tuple[str, bytes]]:
    for name, data in iter_shards(keys, words, bounds, sharding):
        yield f"{directory}/{name}", data


def _key_files(directory: str, names: list[str], words: np.ndarray,
               bounds: np.ndarray) -> Iterator[tuple[str, bytes]]:
    """One file per key (the unsharded layout)."""
    raw = words.tobytes()
    b = (bounds * 4).tolist()
    for i, name in enumerate(names):
        yield f"{directory}/{name}", raw[b[i]:b[i + 1]]


def _by_id_files(table, records, entry, sharded, gzip):
    if not sharded:
        words, b = encode_by_id(table, records)
        yield from _key_files("by_id", [str(k) for k in table.ids.tolist()], words, b)
        return
    lengths = by_id_lengths(table, records)
    sharding = entry["sharding"] = choose_sharding(len(table), 4 * int(lengths.sum()), gzip=gzip)
    order = shard_order(table.ids, sharding)
    words, b = encode_by_id(table, records, order)
    yield from _shard_files("by_id", table.ids[order], words, b, sharding)


def _groups_files(directory, keys, counts, members, records, table, entry, sharded, gzip,
                  names=None):
    """Files of an index of annotation lists: list ``g`` (key ``keys[g]``) holds the next
    ``counts[g]`` rows of ``members``."""
    if sharded:
        rec_words = records.lengths[members].sum()
        total = 4 * int(groups_words(counts, 0).sum() + rec_words)
        sharding = entry["sharding"] = choose_sharding(len(keys), total, gzip=gzip)
        order = shard_order(keys, sharding)
        if not (order == np.arange(len(order))).all():
            first = np.cumsum(counts) - counts
            members = members[reorder_groups(first, counts, order)]
            keys, counts = keys[order], counts[order]
        words, b = encode_groups(counts, members, records, table.ids)
        yield from _shard_files(directory, keys, words, b, sharding)
    else:
        words, b = encode_groups(counts, members, records, table.ids)
        names = names if names is not None else [str(k) for k in keys.tolist()]
        yield from _key_files(directory, names, words, b)


def iter_source_files(table: AnnotationTable, *, write_sharded=True, write_by_id=True,
                      write_by_relationship=True, write_by_spatial_chunk=True,
                      num_spatial_levels=7, target_chunk_limit=10000, shuffle=True,
                      description="", gzip=False) -> Iterator[tuple[str, bytes]]:
    """The files of an already validated :class:`AnnotationTable`, ``info`` last.

    One index is encoded at a time and each shard is produced as it is packed, so a
    caller that writes and drops each file holds one index's values at most.
    See :func:`encode_annotations` for the keywords.
    """
    records = encode_records(table)
    lower, upper = bounds(table)
    info: dict = {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": table.space.to_json(),
        "lower_bound": [_json_number(v) for v in lower],
        "upper_bound": [_json_number(v) for v in upper],
        "annotation_type": table.annotation_type.upper(),
        "properties": [p.spec for p in table.properties],
        "relationships": [{"id": r.name, "key": r.key} for r in table.relationships],
    }
    if description:
        info["description"] = description
    if write_by_id:
        info["by_id"] = {"key": "by_id"}
        yield from _by_id_files(table, records, info["by_id"], write_sharded, gzip)
    if write_by_relationship and table.relationships:
        id_rank, row_of_rank = _id_ranks(table.ids)
        for r, entry in zip(table.relationships, info["relationships"], strict=True):
            segments, counts, members = _relationship_groups(table, r, id_rank, row_of_rank)
            yield from _groups_files(r.key, segments, counts, members, records, table, entry,
                                     write_sharded, gzip)
    info["spatial"] = []
    if write_by_spatial_chunk:
        levels = build_levels(table, lower, upper, max_levels=num_spatial_levels,
                              limit=target_chunk_limit, shuffle=shuffle)
        for i, level in enumerate(levels):
            entry = {
                "key": f"by_spatial_level_{i}",
                "grid_shape": [int(g) for g in level.grid_shape],
                "chunk_size": [_json_number(c) for c in level.chunk_size],
                "limit": int(level.limit),
            }
            info["spatial"].append(entry)
            first, counts = group_runs(level.cells)
            coords = unravel(level.cells[first], level.grid_shape)
            if write_sharded:
                keys, names = compressed_morton(coords, level.grid_shape), None
            else:
                keys, names = level.cells[first], ["_".join(map(str, c)) for c in coords.tolist()]
            yield from _groups_files(entry["key"], keys, counts, level.members, records, table,
                                     entry, write_sharded, gzip, names=names)
        del levels
    yield "info", json.dumps(info, indent=1).encode()


def write_annotations(
    df: pd.DataFrame | None,
    coord_space,
    annotation_type: str,
    properties=(),
    relationships=(),
    output_dir=None,
    store=None,
    write_sharded: bool = True,
    *,
    polyline_points: pd.DataFrame | None = None,
    write_by_id: bool = True,
    write_by_relationship: bool = True,
    write_by_spatial_chunk: bool = True,
    num_spatial_levels: int = 7,
    target_chunk_limit: int = 10000,
    shuffle_before_assigning_spatial_levels: bool = True,
    description: str = "",
    gzip: bool = False,
) -> str:
    """Write a DataFrame as a precomputed annotation source.

    Takes the keywords of ngsidekick's ``write_precomputed_annotations`` and writes the
    same format (see :func:`encode_annotations` for the table and keyword rules). The
    table is validated before anything is written; nothing is written if it is
    rejected. Then one index is encoded at a time and each shard file is written as
    soon as it is packed; ``info`` is written last, so a reader never sees a source
    whose files are not all there.

    Parameters
    ----------
    output_dir
        A local directory, a tensorstore kvstore URL (``file://``, ``gs://``,
        ``s3://``, ...), a kvstore spec dict or an open ``tensorstore.KvStore`` (use
        the latter for ``memory://``, whose contents live in the store's context).
        Defaults to ``"annotations"``. With ``store``, the key prefix in the store.
    store
        An :class:`nglive.Store`: the source is written as a new immutable generation
        of the prefix ``output_dir`` (default ``"annotations"``) in one transaction,
        and the generation's path in the store is returned (e.g. ``"annotations/0"``;
        its ``info`` is ``store.read(path + "/info")``). A viewer serving that store
        serves it.

    Returns
    -------
    str
        Where the source was written: the directory or URL, or the generation path.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "seg": [7]})
    >>> out = write_annotations(df, "xyz", "point", relationships=["seg"],
    ...                         output_dir=tempfile.mkdtemp())
    >>> import os; sorted(os.listdir(out))
    ['by_id', 'by_rel_seg', 'by_spatial_level_0', 'info']
    >>> import nglive
    >>> store = nglive.Store()
    >>> write_annotations(df, "xyz", "point", store=store)
    'annotations/0'
    >>> sorted(store.list("annotations/0/"))[:2]
    ['annotations/0/by_id/0.shard', 'annotations/0/by_spatial_level_0/0.shard']
    """
    space = as_coord_space(coord_space)
    table = read_table(df, space, annotation_type, properties, relationships, polyline_points)
    files = iter_source_files(
        table, write_sharded=write_sharded, write_by_id=write_by_id,
        write_by_relationship=write_by_relationship,
        write_by_spatial_chunk=write_by_spatial_chunk, num_spatial_levels=num_spatial_levels,
        target_chunk_limit=target_chunk_limit,
        shuffle=shuffle_before_assigning_spatial_levels, description=description, gzip=gzip)
    if store is not None:
        if not hasattr(store, "write_generation"):
            raise TypeError(f"store must be an nglive.Store, not {type(store).__name__}")
        return store.write_generation(output_dir or "annotations", dict(files)).path
    dest = open_destination("annotations" if output_dir is None else output_dir)
    for key, data in files:
        if key == "info":
            dest.flush()  # every other file is stored before info appears
        dest.write(key, data)
    dest.flush()
    return dest.location
