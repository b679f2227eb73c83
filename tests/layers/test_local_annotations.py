"""Local annotations: DataFrame <-> viewer state, both ways, ids kept."""

from __future__ import annotations

import time

import neuroglancer
import numpy as np
import pandas as pd
import pytest

import nglive
from nglive import live


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def annotations(viewer, name):
    return viewer.state.layers[name].layer.to_json()["annotations"]


@pytest.fixture
def points():
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0], "z": [0.0, 0.0, 5.0],
                         "label": ["a", "b", "c"]}, index=[10, 11, 12])


def test_rows_become_annotations(viewer, points):
    viewer.add_local_annotations("pts", points)
    anns = annotations(viewer, "pts")
    assert [(a["id"], a["point"]) for a in anns] == [
        ("10", [1.0, 0.0, 0.0]), ("11", [2.0, 1.0, 0.0]), ("12", [3.0, 2.0, 5.0])]
    src = viewer.state.layers["pts"].layer.to_json()["source"]
    assert src["url"] == "local://annotations"


def test_viewer_edits_flow_into_the_table(viewer, points):
    layer = viewer.add_local_annotations("pts", points)
    with viewer.txn() as s:  # what the client does when a user clicks, drags, deletes
        anns = s.layers["pts"].annotations
        anns.append(neuroglancer.PointAnnotation(id="f00dfeed", point=[7, 8, 9]))
        anns[0].point = [1.5, 0.5, 0.5]
        del anns[1]
    assert wait_until(lambda: 11 not in points.index and len(points) == 3)
    assert points.loc[10, ["x", "y", "z"]].tolist() == [1.5, 0.5, 0.5]
    assert points.loc[10, "label"] == "a"  # other columns kept
    new_id = 13  # next integer id, never the deleted 11
    assert points.loc[new_id, ["x", "y", "z"]].tolist() == [7.0, 8.0, 9.0]
    assert pd.isna(points.loc[new_id, "label"])
    layer.wait()
    viewer.wait()
    # the viewer's random id was replaced by the table's id
    assert wait_until(lambda: {a["id"] for a in annotations(viewer, "pts")} == {"10", "12", "13"})
    assert layer.edits_from_viewer >= 1


def test_table_edits_flow_into_the_viewer(viewer, points):
    viewer.add_local_annotations("pts", points)
    points.loc[12, "x"] = 100.0
    points.loc[20] = [4.0, 4.0, 4.0, "d"]
    live.check_all()
    viewer.wait()
    anns = {a["id"]: a["point"] for a in annotations(viewer, "pts")}
    assert anns["12"] == [100.0, 2.0, 5.0] and anns["20"] == [4.0, 4.0, 4.0]


def test_navigation_does_not_touch_the_table(viewer, points):
    layer = viewer.add_local_annotations("pts", points)
    before = points.copy()
    with viewer.txn() as s:
        s.position = [50, 50, 50]
    time.sleep(0.3)
    pd.testing.assert_frame_equal(points, before)
    assert layer.edits_from_viewer == 0


def test_errors(viewer, points):
    with pytest.raises(nglive.TableError, match="'z'"):
        viewer.add_local_annotations("a", points.drop(columns="z"))
    dup = pd.concat([points, points.iloc[:1]])
    with pytest.raises(nglive.TableError, match="duplicate"):
        viewer.add_local_annotations("b", dup)
    bad = points.copy()
    bad.loc[11, "y"] = float("inf")
    with pytest.raises(nglive.TableError, match="row 11"):
        viewer.add_local_annotations("c", bad)
    with pytest.raises(ValueError, match="annotation_type"):
        viewer.add_local_annotations("d", points, "polyline")


def test_new_rows_keep_uint64_ids_exact_and_take_defaults(viewer):
    big = np.uint64(720575940379279361)
    points = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0],
                           "neuron_id": np.array([big], dtype=np.uint64),
                           "region": ["LH"], "reviewed": [True]}, index=[5])
    viewer.add_local_annotations("pts", points, defaults={"region": "MB"})
    with viewer.txn() as s:
        s.layers["pts"].annotations.append(
            neuroglancer.PointAnnotation(id="c0ffee", point=[4, 5, 6]))
    assert wait_until(lambda: len(points) == 2)
    assert points.loc[5, "neuron_id"] == big  # not rounded through float64
    assert str(points["neuron_id"].dtype) == "UInt64"
    assert pd.isna(points.loc[6, "neuron_id"])
    assert points.loc[6, "region"] == "MB"
    assert str(points["reviewed"].dtype) == "boolean"


def test_defaults_must_name_columns(viewer, points):
    with pytest.raises(nglive.TableError, match="defaults"):
        viewer.add_local_annotations("pts", points, defaults={"nope": 1})
