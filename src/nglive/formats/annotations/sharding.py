"""Sharded indexes through tensorstore's ``neuroglancer_uint64_sharded`` kvstore driver.

Values are written into a private ``memory://`` kvstore inside one transaction; at
commit tensorstore packs them into ``<shard>.shard`` files, which are read back as bytes.
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import tensorstore as ts

TARGET_SHARD_BYTES = 64 << 20
TARGET_MINISHARD_KEYS = 512
# gzip costs ~20 bytes a value and CPU per value: worth it only for larger values
GZIP_MIN_MEAN_BYTES = 512
MIN_KEYS_FOR_FOUR_SHARDS = 50_000


def choose_sharding(num_keys: int, total_bytes: int, *, gzip: bool = False) -> dict:
    """Sharding parameters for an index of ``num_keys`` values totalling ``total_bytes``.

    Shards aim at ~64 MB, with at least 4 of them from 50k keys up (tensorstore writes
    shards in parallel), and minishards at ~512 keys. Values are stored raw unless
    ``gzip`` is asked for, and even then only when they average at least 512 bytes
    (gzip would inflate small by-id records): gzip through tensorstore costs far more
    time than it saves bytes on loopback.

    Examples
    --------
    >>> s = choose_sharding(1_000_000, 28_000_000)
    >>> s["shard_bits"], s["minishard_bits"], s["data_encoding"]
    (2, 9, 'raw')
    """
    shard_bits = max(0, math.ceil(math.log2(max(total_bytes, 1) / TARGET_SHARD_BYTES)))
    if num_keys >= MIN_KEYS_FOR_FOUR_SHARDS:
        # tensorstore commits shards in parallel: 4 shards write a 100k-key index ~30 %
        # faster than one (benchmarks/bench_sharded_floor.py)
        shard_bits = max(shard_bits, 2)
    shard_bits = min(shard_bits, max(0, int(math.log2(max(num_keys, 1)))))
    per_shard = num_keys / 2**shard_bits
    minishard_bits = max(0, math.ceil(math.log2(max(per_shard, 1) / TARGET_MINISHARD_KEYS)))
    mean = total_bytes / max(num_keys, 1)
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": 0,
        "hash": "murmurhash3_x86_128",
        "minishard_bits": int(minishard_bits),
        "shard_bits": int(shard_bits),
        "minishard_index_encoding": "gzip",
        "data_encoding": "gzip" if gzip and mean >= GZIP_MIN_MEAN_BYTES else "raw",
    }


def uint64_keys(values: np.ndarray) -> list[bytes]:
    """The sharded-format keys of uint64 ids: 8 bytes, big endian."""
    raw = np.ascontiguousarray(values, dtype=">u8").tobytes()
    return [raw[i:i + 8] for i in range(0, len(raw), 8)]


def split_values(words: np.ndarray, bounds: np.ndarray) -> list[bytes]:
    """Values ``words[bounds[i]:bounds[i + 1]]`` as bytes objects."""
    raw = words.tobytes()
    b = (bounds * 4).tolist()
    return [raw[b[i]:b[i + 1]] for i in range(len(b) - 1)]


def pack_sharded(indexes: list[tuple[str, dict, list[bytes], list[bytes]]]) -> dict[str, bytes]:
    """Pack several indexes, each ``(directory, sharding, keys, values)``, into shard files.

    Returns ``{"<directory>/<shard>.shard": bytes}``.
    """
    context = ts.Context()
    root = f"memory://nglive-{uuid.uuid4().hex}/"
    txn = ts.Transaction()
    for directory, sharding, keys, values in indexes:
        kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded",
                              "base": root + directory + "/", "metadata": sharding},
                             context=context).result()
        write = kv.with_transaction(txn).write
        for k, v in zip(keys, values, strict=True):
            write(k, v)
    txn.commit_async().result()
    base = ts.KvStore.open(root, context=context).result()
    names = base.list().result()
    reads = [base.read(name) for name in names]
    return {name.decode(): r.result().value for name, r in zip(names, reads, strict=True)}

