"""Segment properties: same output as nglui on well-formed tables, right where nglui is not."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from nglui.segmentprops import SegmentProperties as NgluiSegmentProperties

from nglive.formats.segment_properties import (
    SegmentProperties,
    segment_properties,
    segment_properties_json,
    to_json,
)
from nglive.formats.validation import TableError

BASE_ID = 720575940000000000


def nglui_dict(df, **kw):
    return NgluiSegmentProperties.from_dataframe(df, **kw).to_dict()


def by_id(props: dict) -> dict:
    return {p["id"]: p for p in props["inline"]["properties"]}


def json_equal(data: bytes, expected: dict) -> None:
    """The JSON bytes parse to ``expected``, floats compared as the float32 they encode."""
    got = json.loads(data)
    assert got["inline"]["ids"] == expected["inline"]["ids"]
    for g, e in zip(got["inline"]["properties"], expected["inline"]["properties"], strict=True):
        if e["type"] == "number" and e["data_type"] == "float32":
            gv = np.array([np.nan if v == "NaN" else v for v in g.pop("values")], np.float32)
            ev = np.array([np.nan if v == "NaN" else v for v in e["values"]], np.float32)
            np.testing.assert_array_equal(gv, ev)
            e = {k: v for k, v in e.items() if k != "values"}
        assert g == e


# --------------------------------------------------------------------- the generated family


def make_case(seed: int) -> tuple[pd.DataFrame, dict]:
    """A well-formed table and a from_dataframe call on it, varied by ``seed``."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    ids = np.uint64(BASE_ID) + rng.choice(10**6, n, replace=False).astype(np.uint64)
    words = ["basket cell", "pyramidal", "chandelier", "Martinotti", "L2/3", "a b c"]
    df = pd.DataFrame({"pt_root_id": ids})
    df["cell_type"] = rng.choice(words, n)
    df["region"] = rng.choice(["V1", "LM", "AL"], n)
    df["with_nulls"] = pd.Series(rng.choice(["x", "y z", "", None], n), dtype=object)
    df["layer"] = pd.Categorical(
        rng.choice(["L6", "L2/3", "L4"], n), categories=["L2/3", "L4", "L5", "L6"]
    )
    df["overlap"] = rng.choice(["pyramidal", "V1", "other"], n)  # shares values
    df["i8"] = rng.integers(-128, 127, n).astype(np.int8)
    df["i16"] = rng.integers(-3000, 3000, n).astype(np.int16)
    df["i32"] = rng.integers(-(2**31), 2**31 - 1, n).astype(np.int32)
    df["i64"] = rng.integers(-(2**31), 2**31 - 1, n)
    df["f32"] = rng.normal(0, 1e3, n).astype(np.float32)
    df["f64"] = rng.random(n) * 10.0 ** rng.integers(-8, 8)
    df["int_tag"] = rng.integers(0, 12, n)
    df["flag"] = rng.random(n) < 0.5
    df["flag2"] = rng.random(n) < 0.2
    df["pyramidal"] = rng.random(n) < 0.3  # a bool tag named like a value tag
    df["note"] = rng.choice(['plain', 'with "quotes"', "back\\slash", "ünïcode", "tab\tx"], n)

    kw: dict = {"id_col": "pt_root_id"}
    if rng.random() < 0.3:
        kw["label_format_map"] = rng.choice(
            ["{cell_type} ({region})", "{region}-{cell_type}", "{note}"]
        )
    elif rng.random() < 0.8:
        labels = [["cell_type"], ["cell_type", "region"], ["with_nulls", "region"],
                  "region", ["i64", "region"]]
        kw["label_col"] = labels[rng.integers(len(labels))]
        kw["label_separator"] = rng.choice(["_", " / ", ""])
    if rng.random() < 0.5:
        kw["description_col"] = rng.choice(["note", "region"])
    if rng.random() < 0.5:
        kw["string_cols"] = list(rng.choice(["region", "note", "cell_type"], 2, replace=False))
    if rng.random() < 0.8:
        k = int(rng.integers(1, 5))
        kw["number_cols"] = list(rng.choice(["i8", "i16", "i32", "i64", "f32", "f64"], k,
                                            replace=False))
    tag_mode = rng.integers(0, 4)
    if tag_mode == 1:
        kw["tag_value_cols"] = list(rng.choice(["cell_type", "layer", "with_nulls", "overlap"],
                                               int(rng.integers(1, 4)), replace=False))
        if rng.random() < 0.5:
            kw["tag_bool_cols"] = ["flag", "flag2"]
    elif tag_mode == 2:
        kw["tag_bool_cols"] = ["flag"] if rng.random() < 0.5 else "flag2"
    elif tag_mode == 3:
        kw["tag_value_cols"] = "int_tag"
    if "tag_value_cols" in kw and "with_nulls" not in kw["tag_value_cols"]:
        kw["prepend_col_name"] = bool(rng.random() < 0.3)
    if ("tag_value_cols" in kw or "tag_bool_cols" in kw) and tag_mode != 3:
        if rng.random() < 0.5:
            kw["tag_descriptions"] = {"pyramidal": "excitatory", "basket cell": "PV+",
                                      "flag": "flagged", "overlap:V1": "area V1"}
    return df, kw


@pytest.mark.parametrize("seed", range(60))
def test_same_as_nglui_on_generated_tables(seed):
    df, kw = make_case(seed)
    expected = nglui_dict(df, **kw)
    got = segment_properties(df, **kw)
    assert got == expected
    json_equal(segment_properties_json(df, **kw), expected)


def test_generated_family_covers_every_property_kind():
    kinds, options = set(), set()
    for seed in range(60):
        df, kw = make_case(seed)
        kinds |= {p["type"] for p in segment_properties(df, **kw)["inline"]["properties"]}
        options |= {k for k, v in kw.items() if v}
    assert kinds == {"label", "description", "string", "number", "tags"}
    assert {"label_format_map", "label_col", "prepend_col_name", "tag_descriptions",
            "tag_bool_cols", "tag_value_cols"} <= options


def test_same_as_nglui_with_many_rows_and_disambiguation():
    rng = np.random.default_rng(7)
    n = 20_000
    df = pd.DataFrame({
        "pt_root_id": np.uint64(BASE_ID) + np.arange(n, dtype=np.uint64) * np.uint64(3),
        "a": rng.choice(["x", "y", "both", None], n),
        "b": rng.choice(["both", "z", ""], n),
        "both": rng.random(n) < 0.5,
        "v": rng.random(n),
    })
    kw = dict(label_col=["a", "b"], tag_value_cols=["a", "b"], tag_bool_cols=["both"],
              number_cols="v", tag_descriptions={"a:both": "in a"})
    expected = nglui_dict(df, **kw)
    assert by_id(expected)["tags"]["tags"] == ["a:both", "x", "y", "b:both", "z", "both"]
    assert segment_properties(df, **kw) == expected
    json_equal(segment_properties_json(df, **kw), expected)


def test_random_columns_match_nglui_for_the_same_seed():
    df = pd.DataFrame({"pt_root_id": np.arange(1, 11, dtype=np.uint64), "x": np.arange(10)})
    for count, names in [(1, ["random_sample"]), (3, ["r_0", "r_1", "r_2"])]:
        prefix = "random_sample" if count == 1 else "r"
        np.random.seed(3)
        expected = nglui_dict(df, number_cols="x", random_columns=count,
                              random_column_prefix=prefix)
        np.random.seed(3)
        got = segment_properties(df, number_cols="x", random_columns=count,
                                 random_column_prefix=prefix)
        assert got == expected
        assert list(by_id(got)) == ["x", *names]
    assert "random_sample" not in df.columns  # the caller's table is left alone


# --------------------------------------------------------------------- differences from nglui


def test_large_integers_are_never_wrapped():
    df = pd.DataFrame({
        "pt_root_id": [1, 2, 3],
        "big_unsigned": np.array([0, 2**31, 2**32 - 1], np.int64),
        "u64": np.array([1, 2, 3_000_000_000], np.uint64),
    })
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        props = by_id(segment_properties(df, number_cols=["big_unsigned", "u64"]))
    assert props["big_unsigned"]["data_type"] == "uint32"
    assert props["big_unsigned"]["values"] == [0, 2**31, 2**32 - 1]
    assert props["u64"]["data_type"] == "uint32"
    # what nglui does with the same column: int32, wrapped
    wrapped = by_id(nglui_dict(df, number_cols="big_unsigned"))["big_unsigned"]
    assert wrapped["data_type"] == "int32" and wrapped["values"][1] < 0


def test_integers_beyond_32_bits_become_float32_with_a_warning_naming_the_column():
    df = pd.DataFrame({"pt_root_id": [1, 2], "volume_nm3": np.array([-1, 2**40], np.int64)})
    with pytest.warns(UserWarning, match="volume_nm3"):
        p = by_id(segment_properties(df, number_cols="volume_nm3"))["volume_nm3"]
    assert p["data_type"] == "float32"
    assert p["values"] == [-1.0, float(2**40)]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int8", "int16", "int32",
                                   "UInt8", "UInt16", "UInt32", "Int8", "Int16", "Int32"])
def test_neuroglancer_integer_types_are_kept(dtype):
    df = pd.DataFrame({"pt_root_id": [1, 2], "n": pd.array([0, 100], dtype=dtype)})
    p = by_id(segment_properties(df, number_cols="n"))["n"]
    assert p["data_type"] == dtype.lower()
    assert p["values"] == [0, 100]
    assert json.loads(segment_properties_json(df, number_cols="n")) == segment_properties(
        df, number_cols="n")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_nglui_fails_on_small_unsigned_columns_that_nglive_accepts(dtype):
    df = pd.DataFrame({"pt_root_id": [1, 2], "n": np.array([0, 100], dtype=dtype)})
    with pytest.raises(TypeError):
        nglui_dict(df, number_cols="n")
    assert by_id(segment_properties(df, number_cols="n"))["n"]["data_type"] == dtype


def test_bool_number_columns_are_uint8():
    df = pd.DataFrame({"pt_root_id": [1, 2, 3], "ok": [True, False, True],
                       "maybe": pd.array([True, None, False], dtype="boolean")})
    props = by_id(segment_properties(df, number_cols=["ok", "maybe"]))
    assert props["ok"] == {"id": "ok", "type": "number", "values": [1, 0, 1],
                           "data_type": "uint8"}
    assert props["maybe"]["data_type"] == "float32"
    assert props["maybe"]["values"] == [1.0, "NaN", 0.0]


def test_missing_numbers_are_the_string_nan_in_strict_json():
    df = pd.DataFrame({
        "pt_root_id": [1, 2, 3],
        "f": [0.5, np.nan, -2.0],
        "i": pd.array([7, None, 9], dtype="Int64"),
    })
    d = segment_properties(df, number_cols=["f", "i"])
    props = by_id(d)
    assert props["f"]["values"] == [0.5, "NaN", -2.0]
    assert props["i"] == {"id": "i", "type": "number", "values": [7.0, "NaN", 9.0],
                          "data_type": "float32"}
    json.dumps(d, allow_nan=False)  # the dictionary is strict JSON
    data = segment_properties_json(df, number_cols=["f", "i"])
    assert b'[0.5,"NaN",-2]' in data and b'[7,"NaN",9]' in data
    assert json.loads(data) == d
    # nglui's output for the float column is not JSON at all
    with pytest.raises(ValueError):
        json.dumps(nglui_dict(df, number_cols="f"), allow_nan=False)


def test_missing_values_in_large_integer_columns_warn_about_precision():
    df = pd.DataFrame({"pt_root_id": [1, 2], "n": pd.array([2**25 + 1, None], dtype="Int64")})
    with pytest.warns(UserWarning, match="'n'"):
        segment_properties(df, number_cols="n")


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e39])
def test_infinite_or_out_of_range_floats_are_an_error(value):
    df = pd.DataFrame({"pt_root_id": [1, 2], "f": [1.0, value]}, index=["a", "b"])
    with pytest.raises(TableError) as err:
        segment_properties(df, number_cols="f")
    assert err.value.column == "f" and err.value.row == "b"


def test_non_numeric_number_columns_are_an_error_naming_the_value():
    df = pd.DataFrame({"pt_root_id": [1, 2], "n": [1, "many"]})
    with pytest.raises(TableError, match="'many'") as err:
        segment_properties(df, number_cols="n")
    assert err.value.row == 1
    with pytest.raises(TableError, match="'s'"):
        segment_properties(pd.DataFrame({"pt_root_id": [1], "s": ["a"]}).astype(
            {"s": "string"}), number_cols="s")


def test_ids_above_2_53_survive_exactly():
    ids = np.array([2**64 - 1, 2**53 + 1, 720575940621039145, 0], np.uint64)
    df = pd.DataFrame({"pt_root_id": ids})
    want = ["18446744073709551615", "9007199254740993", "720575940621039145", "0"]
    assert segment_properties(df)["inline"]["ids"] == want
    assert json.loads(segment_properties_json(df))["inline"]["ids"] == want
    strs = pd.DataFrame({"pt_root_id": want})
    assert segment_properties(strs)["inline"]["ids"] == want


def test_duplicate_ids_are_an_error_naming_them():
    df = pd.DataFrame({"pt_root_id": np.array([5, 7, 5, 9, 7, 11], np.uint64)},
                      index=list("abcdef"))
    with pytest.raises(TableError, match="duplicate segment ids: 5, 7") as err:
        segment_properties(df)
    assert err.value.row == "a" and err.value.column == "pt_root_id"


@pytest.mark.parametrize("ids", [[1.0, 2.5], [1.0, np.nan], [1, -2], [True, False],
                                 ["12", "x"], [1.0, 2.0]])
def test_non_integer_ids_are_an_error(ids):
    with pytest.raises(TableError):
        segment_properties(pd.DataFrame({"pt_root_id": ids}))


def test_missing_columns_are_an_error_naming_them():
    df = pd.DataFrame({"pt_root_id": [1]})
    for kw in [dict(id_col="root_id"), dict(label_col="cell_type"),
               dict(number_cols=["n"]), dict(tag_bool_cols="flag"),
               dict(label_format_map="{cell_type}")]:
        with pytest.raises(TableError, match="column '"):
            segment_properties(df, **kw)


def test_random_column_that_already_exists_is_an_error():
    df = pd.DataFrame({"pt_root_id": [1], "random_sample_1": [0.0]})
    with pytest.raises(TableError, match="random_sample_1"):
        segment_properties(df, random_columns=2)


def test_missing_strings_are_empty_not_none_or_nan():
    df = pd.DataFrame({"pt_root_id": [1, 2, 3], "s": ["a", None, np.nan]})
    props = by_id(segment_properties(df, description_col="s", string_cols="s",
                                     label_format_map="<{s}>"))
    assert props["description"]["values"] == ["a", "", ""]
    assert props["s"]["values"] == ["a", "", ""]
    assert props["label"]["values"] == ["<a>", "<>", "<>"]
    assert by_id(nglui_dict(df, string_cols="s"))["s"]["values"] == ["a", "None", "nan"]


def test_nulls_are_never_tags_even_with_prepend_col_name():
    df = pd.DataFrame({"pt_root_id": [1, 2, 3, 4], "t": ["a", None, "", np.nan]})
    tags = by_id(segment_properties(df, tag_value_cols="t", prepend_col_name=True))["tags"]
    assert tags["tags"] == ["t:a"]
    assert tags["values"] == [[0], [], [], []]
    assert "t:None" in by_id(nglui_dict(df, tag_value_cols="t",
                                        prepend_col_name=True))["tags"]["tags"]


def test_tags_of_mixed_types_are_ordered_by_text():
    df = pd.DataFrame({"pt_root_id": [1, 2, 3], "t": [10, "b", 9]})
    tags = by_id(segment_properties(df, tag_value_cols="t"))["tags"]
    assert tags["tags"] == ["10", "9", "b"]
    assert tags["values"] == [[0], [2], [1]]


def test_tag_descriptions_are_always_strings():
    df = pd.DataFrame({"pt_root_id": [1, 2], "t": [3, 12]})
    tags = by_id(segment_properties(df, tag_value_cols="t", tag_descriptions={3: "three"}))
    assert tags["tags"]["tags"] == ["3", "12"]
    assert tags["tags"]["tag_descriptions"] == ["three", "12"]
    # nglui writes the integers themselves, which Neuroglancer's parser rejects
    assert by_id(nglui_dict(df, tag_value_cols="t", tag_descriptions={}))["tags"][
        "tag_descriptions"] == [3, 12]


def test_tag_errors():
    df = pd.DataFrame({"pt_root_id": [1, 2], "a": ["x", "y"], "b": ["y", "z"],
                       "h": ["#hash", "ok"], "c": ["Foo", "foo"]})
    with pytest.raises(TableError, match="'y'"):
        segment_properties(df, tag_value_cols=["a", "b"], allow_disambiguation=False)
    with pytest.raises(TableError, match="#"):
        segment_properties(df, tag_value_cols="h")
    with pytest.raises(TableError, match="case-insensitively"):
        segment_properties(df, tag_value_cols="c")


def test_label_format_map_keeps_each_columns_type():
    df = pd.DataFrame({"pt_root_id": [1, 2], "n": [3, 4], "x": [0.5, 1.5]})
    labels = by_id(segment_properties(df, label_format_map="{n}:{x}"))["label"]["values"]
    assert labels == ["3:0.5", "4:1.5"]
    # nglui formats whole rows, which turns the ints into floats here
    assert by_id(nglui_dict(df, label_format_map="{n}:{x}"))["label"]["values"] == [
        "3.0:0.5", "4.0:1.5"]
    spec = by_id(segment_properties(df, label_format_map="{x:.2f}|{n!r}"))["label"]["values"]
    assert spec == ["0.50|3", "1.50|4"]


# --------------------------------------------------------------------- JSON


def test_json_is_strict_and_compact_and_to_json_accepts_both_forms():
    df = pd.DataFrame({"pt_root_id": [1, 2], "t": ["a b", None], "f": [0.1, np.nan]})
    kw = dict(label_col="t", tag_value_cols="t", number_cols="f", tag_descriptions={})
    data = segment_properties_json(df, **kw)
    assert b"NaN," not in data.replace(b'"NaN"', b"")
    json_equal(data, json.loads(to_json(segment_properties(df, **kw))))
    assert to_json(SegmentProperties.from_dataframe(df, **kw)) == data
    assert b"[0.1," in data  # the float32 0.1, shortest form
    bad = {"inline": {"values": [float("nan")]}}
    with pytest.raises(ValueError):
        to_json(bad)


def test_json_escapes_strings_that_need_it():
    texts = ['plain', 'with "quotes"', "back\\slash", "tab\t", "ünïcode ☃", "\u2028", ""]
    df = pd.DataFrame({"pt_root_id": np.arange(1, len(texts) + 1), "s": texts})
    got = json.loads(segment_properties_json(df, label_col="s", string_cols="s"))
    assert by_id(got)["label"]["values"] == [t for t in texts]
    assert by_id(got)["s"]["values"] == texts


def test_empty_table():
    df = pd.DataFrame({"pt_root_id": np.array([], np.uint64), "s": pd.Series([], dtype=object),
                       "n": np.array([], np.int64), "b": np.array([], bool)})
    kw = dict(label_col="s", number_cols="n", tag_bool_cols="b")
    d = segment_properties(df, **kw)
    assert d["inline"]["ids"] == []
    assert all(p["values"] == [] for p in d["inline"]["properties"])
    assert json.loads(segment_properties_json(df, **kw)) == d


def test_tag_lists_per_id_are_sorted_indices():
    n = 60_000  # large enough for the threaded JSON path
    rng = np.random.default_rng(1)
    df = pd.DataFrame({
        "pt_root_id": np.arange(1, n + 1, dtype=np.uint64),
        "t1": rng.choice(["b", "a", None], n),
        "t2": pd.Categorical(rng.choice(["z", "y"], n), categories=["z", "y"]),
        "f1": rng.random(n) < 0.5, "f2": rng.random(n) < 0.5,
    })
    kw = dict(tag_value_cols=["t1", "t2"], tag_bool_cols=["f2", "f1"])
    tags = by_id(segment_properties(df, **kw))["tags"]
    assert tags["tags"] == ["a", "b", "z", "y", "f2", "f1"]
    pos = {t: i for i, t in enumerate(tags["tags"])}
    want = [
        sorted([pos[v] for v in (a, c) if v is not None]
               + [pos["f2"]] * bool(f2) + [pos["f1"]] * bool(f1))
        for a, c, f1, f2 in zip(df.t1, df.t2, df.f1, df.f2, strict=True)
    ]
    assert tags["values"] == want
    assert by_id(json.loads(segment_properties_json(df, **kw)))["tags"]["values"] == want


def test_long_string_columns_escape_only_the_blocks_that_need_it():
    from nglive.formats.json_text import CHUNK

    n = 2 * CHUNK + 10  # three blocks; only the middle one needs escaping
    texts = [f"cell {i}" for i in range(n)]
    texts[CHUNK + 5] = 'say "hi"\\\t'
    df = pd.DataFrame({"pt_root_id": np.arange(1, n + 1, dtype=np.uint64), "s": texts,
                       "f": np.linspace(0, 1, n)})
    data = segment_properties_json(df, label_col="s", number_cols="f")
    got = by_id(json.loads(data))
    assert got["label"]["values"] == texts
    assert got["f"]["values"] == pytest.approx(np.linspace(0, 1, n).astype(np.float32).tolist())
