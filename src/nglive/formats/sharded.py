"""Neuroglancer's ``neuroglancer_uint64_sharded_v1`` format, packed with vectorised numpy.

Written from ``sharded.md`` in google/neuroglancer. Why not tensorstore's
``neuroglancer_uint64_sharded`` driver: written from Python it costs ~10 µs and ~650
bytes per key (benchmarks/results/sharded_floor.json), too slow for million-row tables.
Here every per-key step is array work: one hash, one sort by (shard, minishard, key),
cumulative sums for offsets, one gather of the values; Python loops run per shard and
per minishard only. tensorstore's driver stays the independent reader the tests use.

A shard file is laid out as tensorstore lays it out: the shard index
(``2**minishard_bits`` pairs of uint64 offsets), then for each non-empty minishard in
order, its values in key order followed by its minishard index. With raw encodings the
bytes are identical to tensorstore's, which the tests check.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

import numpy as np

SHARDING_TYPE = "neuroglancer_uint64_sharded_v1"
HASHES = ("identity", "murmurhash3_x86_128")
ENCODINGS = ("raw", "gzip")
MAX_MINISHARD_BITS = 32  # what tensorstore and Neuroglancer accept
# minishard indexes are delta-coded columns: level 1 compresses them as well as level 6
# (~8x) at a fifth of the time; values keep zlib's default trade-off
MINISHARD_INDEX_GZIP_LEVEL = 1
DATA_GZIP_LEVEL = 6

# values are gathered in slices of about this many units, to bound temporary memory
_UNITS_PER_BATCH = 1 << 22

_U32 = np.uint32
_C1, _C2, _C3, _C4 = _U32(0x239B961B), _U32(0xAB0E9789), _U32(0x38B34AE5), _U32(0xA1E38B93)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    """Rotate left in place."""
    high = x >> _U32(32 - r)
    x <<= _U32(r)
    x |= high
    return x


def _fmix32(h: np.ndarray) -> np.ndarray:
    h ^= h >> _U32(16)
    h *= _U32(0x85EBCA6B)
    h ^= h >> _U32(13)
    h *= _U32(0xC2B2AE35)
    h ^= h >> _U32(16)
    return h


def murmurhash3_x86_128(keys: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash3_x86_128 of each uint64 key as its 8 little-endian bytes.

    Returns the low and the high 8 bytes of each 16-byte hash as little-endian uint64
    (``sharded.md`` uses the low ones). Written from Austin Appleby's description of the
    algorithm, for 8-byte inputs only: no 16-byte body block, an 8-byte tail.

    Examples
    --------
    >>> lo, hi = murmurhash3_x86_128(np.array([0, 1], np.uint64))
    >>> [f"{v:016x}" for v in lo]
    ['4772b084e028ae41', 'e8bd67d616d4ce9a']
    """
    keys = np.ascontiguousarray(keys, dtype="<u8")
    words = keys.view(_U32).reshape(-1, 2)
    s = _U32(seed & 0xFFFFFFFF)
    # tail bytes 0-3 feed k1 (into h1), bytes 4-7 feed k2 (into h2); h3, h4 keep the seed
    k1 = words[:, 0] * _C1
    k1 = _rotl(k1, 15)
    k1 *= _C2
    h1 = k1 ^ s
    k2 = words[:, 1] * _C2
    k2 = _rotl(k2, 16)
    k2 *= _C3
    h2 = k2 ^ s
    length = _U32(8)
    h1 ^= length
    h2 ^= length
    h3 = np.full_like(h1, s ^ length)
    h1 += h2
    h1 += h3 + h3  # h4 == h3 here
    h2 += h1
    h3 += h1
    h1, h2, h3 = _fmix32(h1), _fmix32(h2), _fmix32(h3)
    h4 = h3.copy()
    h1 += h2
    h1 += h3
    h1 += h4
    h2 += h1
    h3 += h1
    h4 += h1
    lo = np.empty((len(keys), 2), _U32)
    lo[:, 0], lo[:, 1] = h1, h2
    hi = np.empty((len(keys), 2), _U32)
    hi[:, 0], hi[:, 1] = h3, h4
    return lo.view("<u8").reshape(-1), hi.view("<u8").reshape(-1)


def check_sharding(sharding: dict) -> dict:
    """The sharding spec with defaults filled in, or a ValueError saying what is wrong.

    Examples
    --------
    >>> check_sharding({"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
    ...                 "hash": "identity", "minishard_bits": 0, "shard_bits": 0})["data_encoding"]
    'raw'
    """
    if not isinstance(sharding, dict) or sharding.get("@type") != SHARDING_TYPE:
        raise ValueError(f"sharding must be a dict with '@type': {SHARDING_TYPE!r}, "
                         f"got {sharding!r}")
    spec = {"minishard_index_encoding": "raw", "data_encoding": "raw", **sharding}
    limits = {"preshift_bits": 64, "minishard_bits": MAX_MINISHARD_BITS, "shard_bits": 64}
    for name, top in limits.items():
        v = spec.get(name)
        if not isinstance(v, int | np.integer) or isinstance(v, bool) or not 0 <= v <= top:
            raise ValueError(f"sharding {name!r} must be an integer in [0, {top}], got {v!r}")
    if spec["minishard_bits"] + spec["shard_bits"] > 64:
        raise ValueError("sharding minishard_bits + shard_bits must be at most 64, got "
                         f"{spec['minishard_bits']} + {spec['shard_bits']}")
    if spec.get("hash") not in HASHES:
        raise ValueError(f"sharding 'hash' must be one of {HASHES}, got {spec.get('hash')!r}")
    for name in ("minishard_index_encoding", "data_encoding"):
        if spec[name] not in ENCODINGS:
            raise ValueError(f"sharding {name!r} must be one of {ENCODINGS}, got {spec[name]!r}")
    return spec


def hashed_keys(keys: np.ndarray, sharding: dict) -> np.ndarray:
    """``hash(key >> preshift_bits)`` of each uint64 key, as ``sharded.md`` defines it."""
    spec = check_sharding(sharding)
    keys = np.asarray(keys, np.uint64)
    shift = spec["preshift_bits"]
    shifted = np.zeros_like(keys) if shift == 64 else keys >> np.uint64(shift)
    if spec["hash"] == "identity":
        return shifted
    return murmurhash3_x86_128(shifted)[0]


def _low_bits(h: np.ndarray, bits: int) -> np.ndarray:
    return h if bits == 64 else h & np.uint64((1 << bits) - 1)


def shard_numbers(keys: np.ndarray, sharding: dict) -> np.ndarray:
    """The shard number of each key (bits ``[minishard_bits, +shard_bits)`` of its hash).

    Examples
    --------
    >>> s = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 1,
    ...      "hash": "identity", "minishard_bits": 2, "shard_bits": 3}
    >>> shard_numbers(np.array([0, 8, 16, 255], np.uint64), s).tolist()
    [0, 1, 2, 7]
    """
    spec = check_sharding(sharding)
    mb, sb = spec["minishard_bits"], spec["shard_bits"]
    h = hashed_keys(keys, spec)
    return _low_bits(h >> np.uint64(mb), sb) if mb < 64 else np.zeros_like(h)


def shard_name(shard: int, sharding: dict) -> str:
    """``<shard>.shard``: lowercase hex, zero padded to ``ceil(shard_bits / 4)`` digits.

    Examples
    --------
    >>> s = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
    ...      "hash": "identity", "minishard_bits": 0, "shard_bits": 5}
    >>> shard_name(3, s)
    '03.shard'
    """
    digits = math.ceil(sharding["shard_bits"] / 4)
    return f"{int(shard):0{digits}x}.shard" if digits else "0.shard"


def shard_order(keys: np.ndarray, sharding: dict) -> np.ndarray:
    """The permutation that sorts ``keys`` by (shard, minishard, key): the order in which
    :func:`pack_shards` stores values. Encoders that lay their values out in this order
    spare the packer a gather.

    Raises ValueError on a repeated key.

    Examples
    --------
    >>> s = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
    ...      "hash": "identity", "minishard_bits": 1, "shard_bits": 1}
    >>> shard_order(np.array([5, 4, 1, 0], np.uint64), s).tolist()
    [3, 1, 2, 0]
    """
    spec = check_sharding(sharding)
    keys = np.asarray(keys, np.uint64)
    return _shard_order(keys, hashed_keys(keys, spec), spec)


def _shard_order(keys: np.ndarray, h: np.ndarray, spec: dict) -> np.ndarray:
    bucket = _low_bits(h, spec["minishard_bits"] + spec["shard_bits"])
    order = _sort_by_bucket_then_key(bucket, keys)
    if len(keys) > 1:
        k = keys[order]
        dup = k[1:] == k[:-1]  # equal keys hash alike, so they end up side by side
        if dup.any():
            raise ValueError(f"key {int(k[1:][dup][0])} is given more than once")
    return order


def _sort_by_bucket_then_key(bucket: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Argsort by (bucket, key). numpy sorts plain integers several times faster than it
    argsorts them, so whenever the fields fit in 64 bits they are packed together with
    the position and sorted as values."""
    n = len(keys)
    if n < 2 or _is_sorted(bucket, keys):
        return np.arange(n, dtype=np.int64)
    n_bits = (n - 1).bit_length()
    b_bits = int(bucket.max()).bit_length()
    k_bits = int(keys.max()).bit_length()
    if b_bits + k_bits + n_bits <= 64:  # e.g. annotation ids below 2**40
        return _packed_argsort([(bucket, b_bits), (keys, k_bits)], n_bits)
    if bool((keys[1:] > keys[:-1]).all()):
        by_key = None
    elif k_bits + n_bits <= 64:
        by_key = _packed_argsort([(keys, k_bits)], n_bits)
    else:
        by_key = np.argsort(keys, kind="stable")
    b = bucket if by_key is None else bucket[by_key]
    if b_bits + n_bits <= 64:
        order = _packed_argsort([(b, b_bits)], n_bits)
    else:
        order = np.argsort(b, kind="stable")
    return order if by_key is None else by_key[order]


def _packed_argsort(fields: list, n_bits: int) -> np.ndarray:
    """Argsort by ``fields`` (arrays with their bit widths, most significant first, that
    fit in 64 bits together with the position), ties in position order."""
    packed = np.zeros(len(fields[0][0]), np.uint64)
    for values, bits in fields:
        packed <<= np.uint64(bits)
        packed |= values
    packed <<= np.uint64(n_bits)
    packed |= np.arange(len(packed), dtype=np.uint64)
    packed.sort()
    packed &= np.uint64((1 << n_bits) - 1) if n_bits < 64 else np.uint64(2**64 - 1)
    return packed.astype(np.int64)


def _is_sorted(bucket: np.ndarray, keys: np.ndarray) -> bool:
    db = bucket[1:] >= bucket[:-1]
    if not db.all():
        return False
    same = bucket[1:] == bucket[:-1]
    return bool(np.all(~same | (keys[1:] > keys[:-1])))


def _unit_view(values, bounds) -> tuple[np.ndarray, np.ndarray, int]:
    """``values`` as the widest unsigned integers (8, 4, 2 or 1 bytes) that every value
    boundary is a multiple of, and the boundaries in those units."""
    arr = np.asarray(values)
    if arr.ndim != 1 or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr).reshape(-1)
    raw = arr.view(np.uint8)
    byte_bounds = np.asarray(bounds, np.int64) * arr.itemsize
    if len(byte_bounds) and (byte_bounds[0] < 0 or byte_bounds[-1] > len(raw)
                             or (np.diff(byte_bounds) < 0).any()):
        raise ValueError("value bounds must be non-decreasing offsets inside the value buffer")
    bits = int(np.bitwise_or.reduce(byte_bounds)) if len(byte_bounds) else 0
    for unit in (8, 4, 2, 1):
        if bits % unit == 0 and len(raw) % unit == 0:
            return raw.view(f"<u{unit}"), byte_bounds // unit, unit
    raise AssertionError("unreachable")  # pragma: no cover


def _gather(dst: np.ndarray, src: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
    """``dst`` = the concatenation of ``src[starts[i]:starts[i] + lengths[i]]``."""
    n = len(lengths)
    if n == 0:
        return
    width = int(lengths[0])
    if width and (lengths == width).all() and (starts % width == 0).all():
        # fixed-size values (e.g. by-id records): a row gather
        item = np.dtype((np.void, width * src.itemsize))  # copied as blocks: fast
        rows = src[: len(src) - len(src) % width].view(item)
        dst.view(item)[:] = rows[starts // width]
        return
    ends = np.cumsum(lengths)
    i = 0
    while i < n:
        base = int(ends[i - 1]) if i else 0
        j = max(i + 1, int(np.searchsorted(ends, base + _UNITS_PER_BATCH, side="right")))
        lens = lengths[i:j]
        stop = int(ends[j - 1])
        # source position of output unit u: u + (start of its value - output start of it)
        shift = np.repeat(starts[i:j] - (ends[i:j] - lens), lens)
        shift += np.arange(base, stop, dtype=np.int64)
        dst[base:stop] = src[shift]
        i = j


def iter_shards(keys: np.ndarray, values, bounds: np.ndarray, sharding: dict, *,
                leading: np.ndarray | None = None) -> Iterator[tuple[str, bytes]]:
    """Pack values into shard files one shard at a time: ``(file name, bytes)``.

    See :func:`pack_shards`; this form lets a writer store each shard as soon as it is
    packed, so only one shard's bytes exist at a time. Only non-empty shards are
    produced (a missing shard file holds no keys).
    """
    spec = check_sharding(sharding)
    if leading is not None and spec["data_encoding"] != "raw":
        raise ValueError("leading bytes need raw data encoding (readers find them by "
                         "position before the indexed value)")
    keys = np.ascontiguousarray(keys, np.uint64).reshape(-1)
    src, unit_bounds, unit = _unit_view(values, bounds)
    if len(unit_bounds) != len(keys) + 1:
        raise ValueError(f"{len(keys)} keys need {len(keys) + 1} value bounds, "
                         f"got {len(unit_bounds)}")
    if len(keys) == 0:
        return
    mb, sb = spec["minishard_bits"], spec["shard_bits"]
    h = hashed_keys(keys, spec)
    order = _shard_order(keys, h, spec)
    in_order = order[-1] == len(keys) - 1 and bool((order == np.arange(len(keys))).all())
    if not in_order:
        h = h[order]
    minishard = _low_bits(h, mb)
    shard = _low_bits(h >> np.uint64(mb), sb) if mb < 64 else np.zeros_like(h)
    sorted_keys = keys if in_order else keys[order]
    starts = unit_bounds[:-1] if in_order else unit_bounds[:-1][order]
    lengths = np.diff(unit_bounds) if in_order else np.diff(unit_bounds)[order]
    if leading is not None:
        leading = np.asarray(leading, np.int64).reshape(-1)
        if len(leading) != len(keys) or (leading < 0).any() or (
                leading > np.diff(unit_bounds) * unit).any():
            raise ValueError("leading must give, per key, at most its value's bytes")
        leading = leading if in_order else leading[order]
    del h, order
    shard_start = np.flatnonzero(np.concatenate([[True], shard[1:] != shard[:-1]]))
    shard_stop = np.append(shard_start[1:], len(keys))
    for a, b in zip(shard_start.tolist(), shard_stop.tolist(), strict=True):
        yield shard_name(int(shard[a]), spec), _pack_one_shard(
            spec, src, unit, sorted_keys[a:b], minishard[a:b], starts[a:b], lengths[a:b],
            contiguous=in_order, leading=None if leading is None else leading[a:b])


def _pack_one_shard(spec: dict, src: np.ndarray, unit: int, keys: np.ndarray,
                    minishard: np.ndarray, starts: np.ndarray, lengths: np.ndarray, *,
                    contiguous: bool, leading: np.ndarray | None = None) -> bytes:
    n = len(keys)
    if spec["data_encoding"] == "gzip":
        # the format compresses each value on its own: one zlib call per value is
        # inherent here (only chosen for large values, where compression dominates)
        raw = src.view(np.uint8)
        s, e = (starts * unit).tolist(), ((starts + lengths) * unit).tolist()
        values = [zlib.compress(raw[x:y], DATA_GZIP_LEVEL, 31) for x, y in zip(s, e, strict=True)]
        sizes = np.fromiter(map(len, values), np.int64, n)
        data = np.frombuffer(b"".join(values), np.uint8)
        del values
    else:
        sizes = lengths * unit
        if contiguous:
            a = int(starts[0])
            data = src[a:a + int(lengths.sum())].view(np.uint8)
        else:
            data = np.empty(int(lengths.sum()), src.dtype)
            _gather(data, src, starts, lengths)
            data = data.view(np.uint8)
    ms_start = np.flatnonzero(np.concatenate([[True], minishard[1:] != minishard[:-1]]))
    ms_count = np.diff(np.append(ms_start, n))
    # each minishard's values, then its index (the layout tensorstore writes too)
    value_start = np.cumsum(sizes) - sizes
    ms_data_start = value_start[ms_start]
    ms_data_size = np.diff(np.append(ms_data_start, len(data)))
    table, first_offset = _minishard_indexes(keys, sizes, ms_start, ms_count, leading)
    parts = []
    if spec["minishard_index_encoding"] == "gzip":
        tb = table.view(np.uint8)
        index_start = np.empty(len(ms_start), np.int64)
        index_size = np.empty(len(ms_start), np.int64)
        pos = 0
        for i, (d0, dn, c) in enumerate(zip(ms_data_start.tolist(), ms_data_size.tolist(),
                                            ms_count.tolist(), strict=True)):
            table[first_offset[i]] += pos  # where this minishard's first value starts
            row0 = 24 * int(ms_start[i])
            index = zlib.compress(tb[row0:row0 + 24 * c], MINISHARD_INDEX_GZIP_LEVEL, 31)
            parts += [memoryview(data[d0:d0 + dn]), index]
            index_start[i], index_size[i] = pos + dn, len(index)
            pos += dn + len(index)
    else:
        index_size = 24 * ms_count
        index_start = np.cumsum(ms_data_size + index_size) - index_size
        table[first_offset] += (index_start - ms_data_size).astype(np.uint64)
        tb = memoryview(table.view(np.uint8))
        for d0, dn, i0, c in zip(ms_data_start.tolist(), ms_data_size.tolist(),
                                 (24 * ms_start).tolist(), ms_count.tolist(), strict=True):
            parts += [memoryview(data[d0:d0 + dn]), tb[i0:i0 + 24 * c]]
    # shard index: [start, end) of each minishard index, relative to the shard index end;
    # an empty minishard gets [0, 0), as tensorstore writes it
    shard_index = np.zeros((1 << spec["minishard_bits"], 2), "<u8")
    present = minishard[ms_start].astype(np.int64)
    shard_index[present, 0] = index_start
    shard_index[present, 1] = index_start + index_size
    # one copy of everything into the file's bytes
    return b"".join([memoryview(shard_index).cast("B"), *parts])


def _bytes_view(x) -> memoryview | bytes:
    return x if isinstance(x, bytes) else memoryview(np.ascontiguousarray(x).view(np.uint8))


def _minishard_indexes(keys: np.ndarray, sizes: np.ndarray, ms_start: np.ndarray,
                       ms_count: np.ndarray, leading: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Every minishard index of a shard, raw and concatenated: per minishard a C-order
    [3, count] uint64 array of key deltas (the first is the key), data offset deltas
    (values are contiguous, so 0 — or the value's ``leading`` bytes, which the index
    skips — plus, for the first, where the minishard starts: added by the caller) and
    sizes (without leading bytes).

    Returns the indexes and the position of each minishard's first offset in them.
    """
    n = len(keys)
    key_delta = np.empty(n, np.uint64)
    key_delta[0] = keys[0]
    np.subtract(keys[1:], keys[:-1], out=key_delta[1:])
    key_delta[ms_start] = keys[ms_start]
    # column of each entry of the concatenated [3, count] arrays, as runs
    kind = np.repeat(np.tile(np.arange(3, dtype=np.uint8), len(ms_start)),
                     np.repeat(ms_count, 3))
    table = np.zeros(3 * n, "<u8")
    table[kind == 0] = key_delta
    if leading is None:
        table[kind == 2] = sizes
    else:
        table[kind == 1] = leading
        table[kind == 2] = sizes - leading
    return table, 3 * ms_start + ms_count


def pack_shards(keys: np.ndarray, values, bounds: np.ndarray, sharding: dict, *,
                leading: np.ndarray | None = None) -> dict[str, bytes]:
    """Pack uint64 keys and their values into the shard files of ``sharding``.

    Parameters
    ----------
    keys
        (N,) distinct uint64 chunk ids (Neuroglancer's annotation ids, segment ids or
        compressed Morton codes).
    values
        One contiguous 1-D buffer holding every value (any numpy dtype or bytes):
        value ``i`` is ``values[bounds[i]:bounds[i + 1]]``, in elements of ``values``.
    bounds
        (N + 1,) non-decreasing offsets into ``values``.
    sharding
        A ``neuroglancer_uint64_sharded_v1`` spec: ``preshift_bits`` (0-64), ``hash``
        (``"identity"`` or ``"murmurhash3_x86_128"``), ``minishard_bits`` (0-32),
        ``shard_bits`` (0-64), ``minishard_index_encoding`` and ``data_encoding``
        (``"raw"`` or ``"gzip"``).
    leading
        Optional (N,) byte counts at the start of each value that its index entry
        leaves out (raw data only): they sit just before the indexed bytes, where
        multi-resolution meshes keep fragment data before their manifest.

    Returns
    -------
    dict[str, bytes]
        ``{"<shard>.shard": file bytes}`` for every non-empty shard. The bytes depend
        only on the keys, values and spec (not on the order the keys are given in).

    Examples
    --------
    >>> s = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0,
    ...      "hash": "murmurhash3_x86_128", "minishard_bits": 1, "shard_bits": 1,
    ...      "minishard_index_encoding": "gzip", "data_encoding": "raw"}
    >>> files = pack_shards(np.array([7, 8], np.uint64), b"abcdef", np.array([0, 2, 6]), s)
    >>> sorted(files)
    ['0.shard', '1.shard']
    """
    if isinstance(values, bytes | bytearray | memoryview):
        values = np.frombuffer(values, np.uint8)
    return dict(iter_shards(keys, values, bounds, sharding, leading=leading))
