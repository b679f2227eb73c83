"""The indexes of an annotation source as files: by id, by relationship, by spatial cell.

Each index is either sharded (a few shard files, see :mod:`nglive.formats.sharded`) or
one file per key. The functions here take the sharding parameters as given, so the
single-process writer and the Dask writer (which learns the global counts first) lay
out the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ..sharded import iter_shards, shard_order
from .columns import AnnotationTable
from .records import (
    Records,
    by_id_lengths,
    encode_by_id,
    encode_groups,
    groups_words,
    reorder_groups,
)
from .sharding import choose_sharding


def _json_number(v: float):
    return int(v) if float(v).is_integer() else float(v)


def info_header(space, annotation_type: str, properties, relationships, lower, upper,
                description: str = "") -> dict:
    """The ``info`` members every source has (indexes are added by the writers)."""
    info: dict = {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": space.to_json(),
        "lower_bound": [_json_number(v) for v in lower],
        "upper_bound": [_json_number(v) for v in upper],
        "annotation_type": annotation_type.upper(),
        "properties": [p.spec for p in properties],
        "relationships": [{"id": r.name, "key": r.key} for r in relationships],
    }
    if description:
        info["description"] = description
    return info


def spatial_entry(level: int, grid_shape, chunk_size, limit: int) -> dict:
    """The ``info`` entry of spatial index level ``level``."""
    return {
        "key": f"by_spatial_level_{level}",
        "grid_shape": [int(g) for g in grid_shape],
        "chunk_size": [_json_number(c) for c in chunk_size],
        "limit": int(limit),
    }


def info_bytes(info: dict) -> bytes:
    return json.dumps(info, indent=1).encode()


def id_ranks(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Rank of each row's id, and the row of each rank (None when ids ascend by row)."""
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return np.arange(len(ids)), None
    row_of_rank = np.argsort(ids)
    rank = np.empty(len(ids), np.int64)
    rank[row_of_rank] = np.arange(len(ids))
    return rank, row_of_rank


def relationship_groups(table: AnnotationTable, r, id_rank, row_of_rank):
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
        if len(code):
            fresh = np.concatenate([[True], (code[1:] != code[:-1]) | (rank[1:] != rank[:-1])])
            code, rank = code[fresh], rank[fresh]
    members = rank if row_of_rank is None else row_of_rank[rank]
    return segments, np.bincount(code, minlength=len(segments)), members


def by_id_sharding(table: AnnotationTable, records: Records, gzip: bool) -> dict:
    """Sharding of the by-id index of ``table``."""
    return choose_sharding(len(table), 4 * int(by_id_lengths(table, records).sum()), gzip=gzip)


def groups_sharding(num_groups: int, num_entries: int, record_words: int, gzip: bool) -> dict:
    """Sharding of an index of ``num_groups`` annotation lists holding ``num_entries``
    annotations whose records total ``record_words`` 32-bit words."""
    total = 4 * (int(groups_words(np.int64(num_groups), 0)) + 2 * num_entries + record_words)
    return choose_sharding(num_groups, total, gzip=gzip)


def by_id_shard_files(table: AnnotationTable, records: Records,
                      sharding: dict) -> Iterator[tuple[str, bytes]]:
    """``by_id/<shard>.shard`` files of every annotation of ``table``."""
    order = shard_order(table.ids, sharding)
    words, b = encode_by_id(table, records, order)
    for name, data in iter_shards(table.ids[order], words, b, sharding):
        yield f"by_id/{name}", data


def by_id_key_files(table: AnnotationTable, records: Records) -> Iterator[tuple[str, bytes]]:
    """``by_id/<id>`` files, one per annotation."""
    words, b = encode_by_id(table, records)
    yield from _key_files("by_id", [str(k) for k in table.ids.tolist()], words, b)


def group_shard_files(directory: str, keys: np.ndarray, counts: np.ndarray,
                      members: np.ndarray, records: Records, ids: np.ndarray,
                      sharding: dict) -> Iterator[tuple[str, bytes]]:
    """Shard files of annotation lists: list ``g`` (key ``keys[g]``) holds the next
    ``counts[g]`` rows of ``members``, in that order. Lists are laid out in shard order
    before encoding, so the packer copies each shard's values in one piece."""
    order = shard_order(keys, sharding)
    if not (order == np.arange(len(order))).all():
        first = np.cumsum(counts) - counts
        members = members[reorder_groups(first, counts, order)]
        keys, counts = keys[order], counts[order]
    words, b = encode_groups(counts, members, records, ids)
    for name, data in iter_shards(keys, words, b, sharding):
        yield f"{directory}/{name}", data


def group_key_files(directory: str, names: list[str], counts: np.ndarray, members: np.ndarray,
                    records: Records, ids: np.ndarray) -> Iterator[tuple[str, bytes]]:
    """One file per annotation list, named ``names[g]``."""
    words, b = encode_groups(counts, members, records, ids)
    yield from _key_files(directory, names, words, b)


def _key_files(directory: str, names: list[str], words: np.ndarray,
               bounds: np.ndarray) -> Iterator[tuple[str, bytes]]:
    raw = words.tobytes()
    b = (bounds * 4).tolist()
    for i, name in enumerate(names):
        yield f"{directory}/{name}", raw[b[i]:b[i + 1]]
