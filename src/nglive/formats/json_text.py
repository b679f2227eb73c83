"""JSON text written straight from numpy arrays: numbers, decimal-string ids, strings.

For the large arrays of Neuroglancer's JSON files (segment properties' ids and values):
every value becomes one row of a byte matrix made of fixed-width slots (sign, digits,
".", ...), a mask says which bytes of each row are used, and the masked bytes, row
major, are the JSON text. Arrays are yielded as byte chunks of ``CHUNK`` items, so a
caller can append them to one buffer without holding the text twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np


def append_chunks(out: bytearray, chunks) -> None:
    """Append byte chunks (a list or a generator: then each is freed once copied).

    Examples
    --------
    >>> out = bytearray(b"x=")
    >>> append_chunks(out, number_array(np.array([1, -2]), missing="NaN"))
    >>> bytes(out)
    b'x=[1,-2]'
    """
    for chunk in chunks:
        out += chunk


_QUADS = np.frombuffer(
    "".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint32
)  # "0000".."9999" as one 4-byte word each
CHUNK = 1 << 16  # rows encoded at a time: bounds the temporaries, stays in cache
_P10 = np.array([10**i for i in range(20)], dtype=np.uint64)


def _ndigits(mag: np.ndarray) -> np.ndarray:
    return 1 + np.searchsorted(_P10[1:], mag, side="right")


def _digit_slot(mag: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of uint64 ``mag``, right-aligned with leading zeros, (n, width)."""
    n = len(mag)
    groups = max(1, -(-width // 4))
    buf = np.empty((n, groups), np.uint32)
    v = mag.astype(np.uint64, copy=False)
    for g in range(groups - 1, -1, -1):
        if v.dtype == np.uint64 and (n == 0 or v.max() < 2**31):
            v = v.astype(np.int32)  # 32-bit division is much cheaper
        q = v // 10_000
        buf[:, g] = _QUADS[v - q * 10_000]
        v = q
    return buf.view(np.uint8).reshape(n, groups * 4)[:, groups * 4 - width :]


def _right_mask(nd: np.ndarray, width: int) -> np.ndarray:
    return np.arange(width)[None, :] >= (width - nd)[:, None]


def _assemble(n: int, slots: list) -> bytes:
    """Concatenate per-row slots; each slot is (bytes or (n, w) uint8, mask or None).

    A mask is None (always used), an (n,) bool (the whole slot per row) or (n, w) bool.
    """
    if n == 0:
        return b""
    chars, masks, any_mask = [], [], False
    for text, mask in slots:
        if isinstance(text, bytes):
            text = np.broadcast_to(np.frombuffer(text, np.uint8), (n, len(text)))
        w = text.shape[1]
        if w == 0:
            continue
        chars.append(text)
        if mask is None:
            masks.append(np.ones((1, w), bool))
        else:
            any_mask = True
            masks.append(mask if mask.ndim == 2 else mask[:, None])
        masks[-1] = np.broadcast_to(masks[-1], (n, w))
    mat = np.concatenate(chars, axis=1)
    if not any_mask:
        return mat.tobytes()
    return mat[np.concatenate(masks, axis=1)].tobytes()


def uint_string_array(values: np.ndarray) -> Iterator[bytes]:
    """A JSON array of the decimal strings of uint64 ``values``, yielded in byte chunks.

    Examples
    --------
    >>> b"".join(uint_string_array(np.array([5, 2**64 - 1], np.uint64)))
    b'["5","18446744073709551615"]'
    """

    def slots(v: np.ndarray) -> list:
        nd = _ndigits(v)
        width = int(nd.max())
        mask = None if int(nd.min()) == width else _right_mask(nd, width)
        return [(b'"', None), (_digit_slot(v, width), mask), (b'"', None)]

    return _json_array(values, slots)


def _json_array(values: np.ndarray, slots_of) -> Iterator[bytes]:
    """A JSON array whose items are ``slots_of(chunk)`` per row: yields byte chunks."""
    if len(values) == 0:
        yield b"[]"
        return
    yield b"["
    for lo in range(0, len(values), CHUNK):
        v = values[lo : lo + CHUNK]
        body = _assemble(len(v), slots_of(v) + [(b",", None)])
        yield body if lo + CHUNK < len(values) else memoryview(body)[:-1]  # no last comma
    yield b"]"


def _int_slots(values: np.ndarray) -> tuple[list, np.ndarray]:
    neg = values < 0 if values.dtype.kind == "i" else np.zeros(len(values), bool)
    if values.dtype.kind == "i":
        v64 = values.astype(np.int64)
        mag = np.where(neg, -(v64 + 1), v64).astype(np.uint64) + neg.astype(np.uint64)
    else:
        mag = values.astype(np.uint64)
    nd = _ndigits(mag)
    width = int(nd.max())
    mask = None if int(nd.min()) == width else _right_mask(nd, width)
    sign = [(b"-", neg)] if neg.any() else []
    return sign + [(_digit_slot(mag, width), mask)], nd


def _float32_decimal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers (m, k) with m * 10**k read back (as JSON, then float32) as ``|x|``.

    The 6-digit check divides or multiplies by an exact power of ten, so it rounds
    like a JSON parser (float64, then float32 as Neuroglancer does), for exponents up
    to 22; beyond that the 9-digit form is used.
    """
    a = np.abs(x.astype(np.float64))
    nz = a > 0
    with np.errstate(divide="ignore"):
        e10 = np.floor(np.log10(np.where(nz, a, 1.0))).astype(np.int64)
    # log10 can be off by one next to powers of ten
    e10 -= a < 10.0 ** e10.astype(np.float64)
    e10 += a >= 10.0 ** (e10 + 1).astype(np.float64)
    # 9 significant digits always read back as the same float32; 6 are enough for
    # anything typed with at most 6 digits (0.1, 2.5, 1234.5), so try those first
    k = np.where(nz, e10 - 8, 0)
    scale = 10.0 ** np.abs(k).astype(np.float64)
    m = np.rint(np.where(k < 0, a * scale, a / scale))
    k6 = e10 - 5
    scale6 = 10.0 ** np.abs(k6).astype(np.float64)
    m6 = np.rint(np.where(k6 < 0, a * scale6, a / scale6))
    back = np.where(k6 < 0, m6 / scale6, m6 * scale6).astype(np.float32)
    short = nz & (back == a.astype(np.float32)) & (np.abs(k6) <= 22)
    m = np.where(short, m6, m).astype(np.int64)
    k = np.where(short, k6, k)
    idx = np.flatnonzero((m % 10 == 0) & (m > 0))  # drop trailing zeros
    while len(idx):
        m[idx] //= 10
        k[idx] += 1
        idx = idx[m[idx] % 10 == 0]
    return m, k


def _float_slots(values: np.ndarray, missing: str) -> list:
    """Slots writing float32 values as short decimals (``0.25``, ``1200``, ``1.5e-07``).

    Each value is m * 10**k (m without trailing zeros); it is written as an integer
    part, a dot and a fraction, both cut from m with integer arithmetic, plus an
    exponent for very large or small magnitudes.
    """
    nan = np.isnan(values)
    ok = ~nan
    x = np.where(nan, np.float32(0), values).astype(np.float32, copy=False)
    m, k = _float32_decimal(x)
    m = m.astype(np.uint64)
    nd = _ndigits(m).astype(np.int64)
    lead = nd - 1 + k  # decimal exponent of the leading digit
    sci = (m > 0) & ((lead < -5) | (lead >= 16))
    # digits after the dot: -k in plain notation, all but the first in scientific
    fd = np.where(sci, nd - 1, np.maximum(-k, 0))
    scale = _P10[fd]
    whole = m // scale
    frac = m - whole * scale
    whole = np.where(sci | (k < 0), whole, m * _P10[np.clip(k, 0, 19)])
    wd = _ndigits(whole)
    ww = int(wd.max())
    fw = int(fd.max())
    slots: list = [
        (b"-", np.signbit(x) & ok),
        (_digit_slot(whole, ww), _right_mask(wd, ww) & ok[:, None]),
    ]
    if fw:
        left = frac * _P10[fw - fd]  # left-aligned in fw digits
        slots += [(b".", fd > 0), (_digit_slot(left, fw), np.arange(fw)[None, :] < fd[:, None])]
    if sci.any():
        ek = np.abs(lead).astype(np.uint64)
        end = _ndigits(ek)
        ew = int(end.max())
        slots += [
            (b"e", sci), (b"-", sci & (lead < 0)),
            (_digit_slot(ek, ew), _right_mask(end, ew) & sci[:, None]),
        ]
    if nan.any():
        slots.append((json.dumps(missing).encode(), nan))
    return slots


def number_array(values: np.ndarray, *, missing: str) -> Iterator[bytes]:
    """A JSON array of numbers, as byte chunks; NaN is written as the string ``missing``.

    float32 values are written with the fewest digits that read back as the same float32.

    Examples
    --------
    >>> b"".join(number_array(np.float32([0.1, 2.5e-7, np.nan, 1200]), missing="NaN"))
    b'[0.1,2.5e-7,"NaN",1200]'
    """
    if values.dtype.kind == "f":
        return _json_array(values, lambda v: _float_slots(v, missing))
    return _json_array(values, lambda v: _int_slots(v)[0])


def string_array(values: np.ndarray) -> Iterator[bytes]:
    """A JSON array of str, yielded in byte chunks of ``CHUNK`` items each.

    A block of plain text is joined directly; a block with anything to escape (or an
    item that is not a str) goes through ``json.dumps``.

    Examples
    --------
    >>> print(b"".join(string_array(np.array(["a", 'say "hi"'], object))).decode())
    ["a","say \\"hi\\""]
    """
    items = values.tolist()
    if not items:
        yield b"[]"
        return
    yield b"["
    for lo in range(0, len(items), CHUNK):
        block = items[lo : lo + CHUNK]
        text = None
        try:
            joined = '","'.join(block).encode()
            # nothing to escape: no control characters, backslashes or quotes of ours
            if joined.count(b'"') == 2 * (len(block) - 1) and not _has_control_or_backslash(
                joined
            ):
                text = b'"' + joined + b'"'
        except (UnicodeEncodeError, TypeError):  # lone surrogates, or not all str
            pass
        if text is None:
            text = json.dumps(block, ensure_ascii=False, separators=(",", ":"))[1:-1].encode(
                errors="surrogatepass"
            )
        yield (b"," if lo else b"") + text
        del text
    yield b"]"


def _has_control_or_backslash(text: bytes, block: int = 1 << 20) -> bool:
    for lo in range(0, len(text), block):  # in blocks: no text-sized temporaries
        b = np.frombuffer(text, np.uint8, min(block, len(text) - lo), lo)
        if (b < 32).any() or (b == 92).any():
            return True
    return False


def int_list_array(codes: np.ndarray, combos: list[tuple[int, ...]]) -> list:
    """A JSON array of int lists: row ``i`` is ``combos[codes[i]]``; each distinct list is
    written once and the rows are gathered as bytes.

    Examples
    --------
    >>> b"".join(int_list_array(np.array([1, 0, 1]), [(), (0, 2)]))
    b'[[0,2],[],[0,2]]'
    """
    n = len(codes)
    if n == 0:
        return [b"[]"]
    texts = [("[" + ",".join(map(str, c)) + "],").encode() for c in combos]
    width = max(map(len, texts))
    table = np.frombuffer(b"".join(t.ljust(width) for t in texts), np.uint8).reshape(-1, width)
    lens = np.array([len(t) for t in texts])
    rows = table[codes]
    if int(lens.min()) == width:
        body = rows.tobytes()
    else:
        body = rows[np.arange(width)[None, :] < lens[codes][:, None]].tobytes()
    return [b"[", memoryview(body)[:-1], b"]"]
