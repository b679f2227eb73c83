"""Bad tables are refused before anything is written, with errors naming column, row, value."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nglive.formats.annotations import encode_annotations
from nglive.formats.validation import TableError


def points(**extra):
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": 0.0, "z": 0.0}, index=[10, 11, 12])
    for k, v in extra.items():
        df[k] = v
    return df


def fails(df, kind="point", **kw):
    with pytest.raises(TableError) as e:
        encode_annotations(df, "xyz", kind, **kw)
    return e.value


def test_missing_geometry_column():
    err = fails(points().drop(columns="z"))
    assert err.column == "z" and "missing column" in str(err)
    err = fails(points(), kind="line")
    assert err.column == "xa"


def test_non_finite_coordinates():
    df = points()
    df.loc[11, "y"] = np.nan
    err = fails(df)
    assert (err.column, err.row) == ("y", 11) and "non-finite" in str(err)
    df.loc[11, "y"] = np.inf
    assert fails(df).row == 11


def test_negative_radius():
    df = points(rx=[1.0, -2.0, 1.0], ry=1.0, rz=1.0)
    err = fails(df, kind="ellipsoid")
    assert (err.column, err.row, err.value) == ("rx", 11, -2.0)


def test_duplicate_and_negative_ids():
    df = points()
    df.index = [5, 6, 5]
    err = fails(df)
    assert err.row == 5 and err.value == 5 and "duplicate" in str(err)
    df.index = [5, -6, 7]
    err = fails(df)
    assert err.value == -6 and "negative" in str(err)


def test_property_names_neuroglancer_rejects():
    for name in ("Score", "2x", "has space", "_x"):
        err = fails(points(**{name: 1.0}), properties=[name])
        assert err.column == name and "rejects" in str(err)


def test_relationship_values_must_be_non_negative_integers():
    err = fails(points(seg=[1, -2, 3]), relationships=["seg"])
    assert (err.column, err.row, err.value) == ("seg", 11, -2)
    err = fails(points(seg=[1.5, 2.0, 3.0]), relationships=["seg"])
    assert err.column == "seg" and err.row == 10
    err = fails(points(seg=[[1], [2, "x"], []]), relationships=["seg"])
    assert (err.column, err.row, err.value) == ("seg", 11, "x")
    err = fails(points(seg=[[1], [2, -3], []]), relationships=["seg"])
    assert (err.column, err.row, err.value) == ("seg", 11, -3)
    err = fails(points(seg=[[1], {"a": 1}, []]), relationships=["seg"])
    assert (err.column, err.row) == ("seg", 11)


def test_categorical_too_many_categories_for_the_chosen_width():
    cats = pd.Categorical([f"c{i}" for i in range(3)], categories=[f"c{i}" for i in range(300)])
    err = fails(points(kind=cats), properties=[{"id": "kind", "type": "uint8"}])
    assert err.column == "kind" and err.value == 300 and "256" in err.accepted
    # without an explicit type, the width grows to fit
    files = encode_annotations(points(kind=cats), "xyz", "point", properties=["kind"])
    assert b'"uint16"' in files["info"]


def test_categorical_missing_value():
    err = fails(points(kind=pd.Categorical(["a", None, "b"])), properties=["kind"])
    assert (err.column, err.row) == ("kind", 11)


def test_unsupported_dtypes():
    err = fails(points(name=["a", "b", "c"]), properties=["name"])
    assert err.column == "name" and "unsupported" in str(err)
    err = fails(points(when=pd.to_datetime(["2020-01-01"] * 3)), properties=["when"])
    assert err.column == "when"
    err = fails(points(big=np.array([1, 2**40, 3], np.int64)), properties=["big"])
    assert (err.column, err.row, err.value) == ("big", 11, 2**40)
    err = fails(points(v=np.array([1, 300, 3])), properties=[{"id": "v", "type": "uint8"}])
    assert (err.column, err.row, err.value) == ("v", 11, 300)
    err = fails(points(n=pd.array([1, None, 3], dtype="Int32")), properties=["n"])
    assert (err.column, err.row) == ("n", 11)


def test_bad_colours():
    err = fails(points(c=["#ff0000", "red", "#00ff00"]), properties=["c"])
    assert (err.column, err.row, err.value) == ("c", 11, "red")
    err = fails(points(c_r=[0, 256, 0], c_g=0, c_b=0), properties=["c"])
    assert (err.column, err.row, err.value) == ("c_r", 11, 256)


def test_polyline_errors():
    pts = pd.DataFrame({"annotation_id": [1, 1, 2], "x": [0.0, 1, 2], "y": 0.0, "z": 0.0})
    err = fails(None, kind="polyline", polyline_points=pts)
    assert err.value == 2 and "at least 2" in err.accepted
    df = pd.DataFrame(index=[1])
    err = fails(df, kind="polyline", polyline_points=pts)
    assert (err.column, err.value) == ("annotation_id", 2)
    err = fails(None, kind="polyline")
    assert err.column == "annotation_id"


def test_category_label_that_is_not_unicode_names_its_row():
    # bytes decoded with surrogateescape leave lone surrogates that no UTF-8 JSON carries
    kind = pd.Categorical(["ok", "b\udcff", "ok"])
    err = fails(points(kind=kind), properties=["kind"])
    assert (err.column, err.row, err.value) == ("kind", 11, "b\udcff")
    assert "Unicode" in str(err)
    err = fails(points(kind=[0, 1, 0]),
                properties=[{"id": "kind", "type": "uint8", "enum_values": [0, 1],
                             "enum_labels": ["a", "\ud800"]}])
    assert (err.column, err.value) == ("kind", "\ud800")


def test_category_labels_in_any_script_pass():
    kind = pd.Categorical(["négatif", "興奮性", "🧠"])
    files = encode_annotations(points(kind=kind), "xyz", "point", properties=["kind"])
    info = json.loads(files["info"])
    assert info["properties"][0]["enum_labels"] == ["négatif", "興奮性", "🧠"]
