"""JSON text from numpy arrays: exact numbers, escaped strings, chunked output."""

from __future__ import annotations

import json

import numpy as np

from nglive.formats.json_text import (
    CHUNK,
    int_list_array,
    number_array,
    string_array,
    uint_string_array,
)


def test_float32_text_reads_back_exactly_over_all_magnitudes():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([x[np.isfinite(x)], np.float32([0, 0.1, 1e16, 1e15, 1e-5, 1e-6,
                                                       3.4028235e38, 1.4e-45, 16777216])])
    text = b"".join(number_array(x, missing="NaN"))
    back = np.array(json.loads(text), np.float64).astype(np.float32)
    np.testing.assert_array_equal(back, x)
    assert b",0.1,1e16,1000000000000000,0.00001,1e-6," in text


def test_integers_of_every_width_and_ids_up_to_2_64():
    rng = np.random.default_rng(1)
    for dtype in ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64"):
        info = np.iinfo(dtype)
        v = np.concatenate([rng.integers(info.min, info.max, 1000, dtype=dtype, endpoint=True),
                            np.array([info.min, info.max, 0], dtype)])
        assert json.loads(b"".join(number_array(v, missing="NaN"))) == v.tolist()
    ids = np.concatenate([rng.integers(0, 2**64, 1000, dtype=np.uint64),
                          np.array([0, 9, 10, 2**64 - 1], np.uint64)])
    assert json.loads(b"".join(uint_string_array(ids))) == [str(i) for i in ids.tolist()]


def test_arrays_longer_than_a_chunk_come_in_pieces():
    n = 2 * CHUNK + 3
    values = np.arange(n, dtype=np.int32)
    chunks = list(number_array(values, missing="NaN"))
    assert len(chunks) > 3 and json.loads(b"".join(chunks)) == values.tolist()
    texts = np.array([f"s{i}" if i % 1000 else 'q"\\\n' for i in range(n)], object)
    assert json.loads(b"".join(string_array(texts))) == texts.tolist()


def test_int_lists_and_empty_arrays():
    codes = np.array([2, 0, 1, 2])
    combos = [(), (3,), (1, 10, 200)]
    assert json.loads(b"".join(int_list_array(codes, combos))) == [list(combos[c]) for c in codes]
    assert b"".join(int_list_array(np.array([], int), [])) == b"[]"
    assert b"".join(number_array(np.array([], np.float32), missing="NaN")) == b"[]"
    assert b"".join(string_array(np.array([], object))) == b"[]"
