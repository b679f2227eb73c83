"""Sharding parameters for annotation indexes: how many shards and minishards to use."""

from __future__ import annotations

import math

from ..sharded import MAX_MINISHARD_BITS, SHARDING_TYPE

# Shards bound the memory of whoever packs one (a Dask task holds one shard's rows and
# bytes); the browser reads them by byte range, so their size costs it nothing.
TARGET_SHARD_BYTES = 128 << 20
# A key lookup costs the browser one shard-index entry and one minishard index per
# minishard it has not seen yet: views of the spatial index touch hundreds of cells, so
# fewer, larger minishards mean fewer requests. 2048 keys are ~6-12 kB of gzip'd index.
TARGET_MINISHARD_KEYS = 2048
# gzip costs ~20 bytes a value and CPU per value: worth it only for larger values
GZIP_MIN_MEAN_BYTES = 512


def choose_sharding(num_keys: int, total_bytes: int, *, gzip: bool = False) -> dict:
    """Sharding parameters for an index of ``num_keys`` values totalling ``total_bytes``.

    Shards hold at most ~128 MB (``TARGET_SHARD_BYTES``), so packing any one of them
    needs bounded memory however large the table; minishards hold ~2048 keys
    (``TARGET_MINISHARD_KEYS``). Minishard indexes are gzip'd (8x smaller). Values are
    stored raw unless ``gzip`` is asked for, and even then only when they average at
    least 512 bytes (gzip would inflate small by-id records).

    Examples
    --------
    >>> s = choose_sharding(1_000_000, 28_000_000)
    >>> s["shard_bits"], s["minishard_bits"], s["data_encoding"]
    (0, 9, 'raw')
    >>> choose_sharding(100_000_000, 3_600_000_000)["shard_bits"]
    5
    """
    shard_bits = max(0, math.ceil(math.log2(max(total_bytes, 1) / TARGET_SHARD_BYTES)))
    shard_bits = min(shard_bits, max(0, int(math.log2(max(num_keys, 1)))))
    per_shard = num_keys / 2**shard_bits
    minishard_bits = max(0, math.ceil(math.log2(max(per_shard, 1) / TARGET_MINISHARD_KEYS)))
    mean = total_bytes / max(num_keys, 1)
    return {
        "@type": SHARDING_TYPE,
        "preshift_bits": 0,
        "hash": "murmurhash3_x86_128",
        "minishard_bits": int(min(minishard_bits, MAX_MINISHARD_BITS)),
        "shard_bits": int(shard_bits),
        "minishard_index_encoding": "gzip",
        "data_encoding": "gzip" if gzip and mean >= GZIP_MIN_MEAN_BYTES else "raw",
    }
