"""nglive's sharded packer, read back key by key through tensorstore's
``neuroglancer_uint64_sharded`` driver, and compared with the shards tensorstore packs."""

from __future__ import annotations

import numpy as np
import pytest
from tensorstore_shards import pack_with_tensorstore, read_with_tensorstore

from nglive.formats.sharded import (
    iter_shards,
    murmurhash3_x86_128,
    pack_shards,
    shard_name,
    shard_numbers,
    shard_order,
)

U64_MAX = 2**64 - 1


def spec(preshift, minishard, shard, hash_="murmurhash3_x86_128", index="gzip", data="raw"):
    return {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": preshift,
            "hash": hash_, "minishard_bits": minishard, "shard_bits": shard,
            "minishard_index_encoding": index, "data_encoding": data}


def key_sets(rng) -> dict[str, np.ndarray]:
    return {
        "random": np.unique(rng.integers(0, 2**64, 300, dtype=np.uint64)),
        # equal low 40 bits: one minishard and shard under the identity hash (and under
        # any preshift that keeps them), whatever the bit counts
        "colliding": (np.arange(1, 60, dtype=np.uint64) << np.uint64(40)) | np.uint64(12345),
        "single": np.array([U64_MAX], np.uint64),
        "zero": np.array([0], np.uint64),
        "2^10 keys": np.arange(1024, dtype=np.uint64) * np.uint64(7919),
        "powers of 2": np.uint64(1) << np.arange(64, dtype=np.uint64),
        "near 2^64": np.uint64(U64_MAX) - np.arange(200, dtype=np.uint64),
        "empty": np.zeros(0, np.uint64),
    }


def values_for(keys: np.ndarray, rng, *, max_len=40):
    """One uint8 buffer and its bounds: varied lengths, some values empty."""
    lengths = rng.integers(0, max_len, len(keys))
    lengths[:: 7] = 0
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.integers(0, 256, int(bounds[-1])).astype(np.uint8), bounds


# (preshift, minishard, shard) bits, zeros and extremes included
BITS = [(0, 0, 0), (0, 0, 3), (0, 4, 0), (2, 3, 2), (7, 1, 5), (64, 0, 0), (0, 2, 62),
        (0, 0, 64), (0, 12, 1), (40, 6, 6)]
ENCODINGS = [("raw", "raw"), ("gzip", "gzip"), ("raw", "gzip"), ("gzip", "raw")]


@pytest.mark.parametrize("hash_", ["identity", "murmurhash3_x86_128"])
@pytest.mark.parametrize("bits", BITS, ids=lambda b: "p{}m{}s{}".format(*b))
def test_every_key_reads_back_through_tensorstore(hash_, bits):
    rng = np.random.default_rng(sum(bits) + len(hash_))
    for i, (name, keys) in enumerate(key_sets(rng).items()):
        index, data = ENCODINGS[(i + sum(bits)) % len(ENCODINGS)]
        sharding = spec(*bits, hash_=hash_, index=index, data=data)
        values, bounds = values_for(keys, rng)
        files = pack_shards(keys, values, bounds, sharding)
        assert all(f.endswith(".shard") for f in files)
        listing = bits[2] <= 16
        absent = [k for k in (3, 2**63 + 5) if k not in set(keys.tolist())]
        listed, got = read_with_tensorstore(files, sharding, keys.tolist() + absent,
                                            listing=listing)
        if listing:
            assert listed == sorted(keys.tolist()), name
        for j, k in enumerate(keys.tolist()):
            assert got[k] == values[bounds[j]:bounds[j + 1]].tobytes(), (name, k)
        assert all(got[k] is None for k in absent), name
        # one file per shard that holds keys, named as the spec says
        want = {shard_name(s, sharding) for s in shard_numbers(keys, sharding).tolist()}
        assert set(files) == want, name


@pytest.mark.parametrize("hash_", ["identity", "murmurhash3_x86_128"])
@pytest.mark.parametrize("bits", [(0, 0, 0), (0, 4, 2), (3, 10, 1), (0, 2, 62)],
                         ids=lambda b: "p{}m{}s{}".format(*b))
def test_raw_shards_are_byte_identical_to_tensorstores(hash_, bits):
    """With raw encodings tensorstore's layout is fully determined, and nglive's is the
    same (with gzip, only zlib's settings differ)."""
    rng = np.random.default_rng(7)
    sharding = spec(*bits, hash_=hash_, index="raw", data="raw")
    for name, keys in key_sets(rng).items():
        if not len(keys):
            continue
        values, bounds = values_for(keys, rng)
        mine = pack_shards(keys, values, bounds, sharding)
        pieces = [values[a:b].tobytes() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        theirs = pack_with_tensorstore(keys.tolist(), pieces, sharding)
        assert mine == theirs, name


def test_bytes_do_not_depend_on_key_order_or_value_dtype():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 2**64, 500, dtype=np.uint64))
    lengths = 4 * rng.integers(0, 10, len(keys))
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(0, 256, int(bounds[-1])).astype(np.uint8)
    sharding = spec(0, 3, 2)
    first = pack_shards(keys, values, bounds, sharding)
    assert pack_shards(keys, values, bounds, sharding) == first
    # the same values given as 32-bit words, as bytes, and in another order
    words = values.view(np.uint32)
    assert pack_shards(keys, words, bounds // 4, sharding) == first
    assert pack_shards(keys, values.tobytes(), bounds, sharding) == first
    perm = rng.permutation(len(keys))
    parts = [values[bounds[i]:bounds[i + 1]] for i in perm]
    shuffled = np.concatenate(parts)
    sb = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    assert pack_shards(keys[perm], shuffled, sb, sharding) == first
    # values laid out in shard order need no gather and give the same bytes
    order = shard_order(keys, sharding)
    parts = [values[bounds[i]:bounds[i + 1]] for i in order]
    ob = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    assert pack_shards(keys[order], np.concatenate(parts), ob, sharding) == first
    assert dict(iter_shards(keys, values, bounds, sharding)) == first


def test_fixed_size_values_in_any_order():
    """28-byte records (the by-id case) take a block-copy path."""
    rng = np.random.default_rng(2)
    keys = rng.permutation(5000).astype(np.uint64) * np.uint64(3)
    words = rng.integers(0, 2**32, 7 * len(keys), dtype=np.uint64).astype(np.uint32)
    bounds = np.arange(len(keys) + 1) * 7
    sharding = spec(0, 4, 1, data="gzip")
    files = pack_shards(keys, words, bounds, sharding)
    listed, got = read_with_tensorstore(files, sharding, keys.tolist())
    assert listed == sorted(keys.tolist())
    assert all(got[k] == words[7 * i:7 * i + 7].tobytes()
               for i, k in enumerate(keys.tolist()))


def test_murmurhash_places_keys_where_tensorstore_looks_for_them():
    """An identity-hashed source written with murmurhash3's shard numbers would be read
    wrongly: tensorstore finds every key, so the hash is the spec's."""
    keys = np.arange(2000, dtype=np.uint64)
    lo, hi = murmurhash3_x86_128(keys)
    assert lo.dtype == np.uint64 and len(np.unique(lo)) == len(keys)
    sharding = spec(0, 5, 4)  # 16 shards: a wrong hash would miss most keys
    values = keys.astype("<u8").view(np.uint8)
    files = pack_shards(keys, values, np.arange(len(keys) + 1) * 8, sharding)
    assert len(files) == 16
    _, got = read_with_tensorstore(files, sharding, keys.tolist(), listing=False)
    assert all(got[k] == int(k).to_bytes(8, "little") for k in keys.tolist())
    # seeds change the hash
    assert (murmurhash3_x86_128(keys, seed=1)[0] != lo).all()


def test_bad_input_is_rejected():
    keys = np.array([5, 9, 5], np.uint64)
    with pytest.raises(ValueError, match="key 5 is given more than once"):
        pack_shards(keys, b"abc", np.arange(4), spec(0, 1, 1))
    with pytest.raises(ValueError, match="value bounds"):
        pack_shards(np.array([1, 2], np.uint64), b"abc", np.arange(4), spec(0, 1, 1))
    with pytest.raises(ValueError, match="inside the value buffer"):
        pack_shards(np.array([1, 2], np.uint64), b"ab", np.array([0, 2, 5]), spec(0, 1, 1))
    for bad in [spec(65, 0, 0), spec(0, 33, 0), spec(0, 40, 30), spec(0, 0, -1),
                {**spec(0, 0, 0), "hash": "md5"}, {**spec(0, 0, 0), "data_encoding": "zstd"},
                {**spec(0, 0, 0), "@type": "other"}]:
        with pytest.raises(ValueError, match="sharding"):
            pack_shards(np.array([1], np.uint64), b"a", np.array([0, 1]), bad)


@pytest.mark.parametrize("index", ["gzip", "raw"])
def test_leading_bytes_are_kept_before_the_indexed_value(index):
    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(0, 2**64, 200, dtype=np.uint64))
    heads = [rng.bytes(int(n)) for n in rng.integers(0, 30, len(keys))]
    tails = [rng.bytes(int(n)) for n in rng.integers(0, 40, len(keys))]
    blobs = [h + t for h, t in zip(heads, tails, strict=True)]
    bounds = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    sharding = spec(0, 2, 1, index=index)
    files = pack_shards(keys, b"".join(blobs), bounds, sharding,
                        leading=np.array([len(h) for h in heads]))
    _, read = read_with_tensorstore(files, sharding, keys.tolist(), listing=False)
    for k, h, t in zip(keys.tolist(), heads, tails, strict=True):
        assert read[k] == t
        if len(t) >= 16:  # the head sits just before (a long random tail is unique)
            (shard,) = [v for v in files.values() if t in v]
            at = shard.index(t)
            assert shard[at - len(h):at] == h
    with pytest.raises(ValueError, match="raw data"):
        pack_shards(keys, b"".join(blobs), bounds, spec(0, 2, 1, data="gzip"),
                    leading=np.zeros(len(keys), int))
    with pytest.raises(ValueError, match="at most its value"):
        pack_shards(keys, b"".join(blobs), bounds, sharding,
                    leading=np.full(len(keys), 100))


def test_shard_names_are_padded_lowercase_hex():
    assert shard_name(0, spec(0, 0, 0)) == "0.shard"
    assert shard_name(10, spec(0, 0, 4)) == "a.shard"
    assert shard_name(10, spec(0, 0, 5)) == "0a.shard"
    assert shard_name(2**64 - 1, spec(0, 0, 64)) == "ffffffffffffffff.shard"
