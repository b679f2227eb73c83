"""Annotation layer bindings: served sources, shader and links, live edits, errors."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

import nglive
from nglive import live


@pytest.fixture
def synapses():
    n = 50
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n), "z": rng.uniform(0, 50, n),
        "size": rng.random(n).astype(np.float32),
        "pre_id": (np.arange(n) % 5 + 720575940379279360).astype(np.uint64),
        "color": ["#ff0000"] * n,
    }, index=pd.Index(np.arange(1, n + 1, dtype=np.uint64)))


def info_of(viewer, name):
    url = viewer.state.layers[name].source[0].url.removeprefix("precomputed://")
    return json.loads(urllib.request.urlopen(url + "/info").read())


def test_served_source_with_colour_shader_and_links(viewer, synapses):
    layer = viewer.add_annotations("syn", synapses, "point", properties=["size", "color"],
                                   relationships=["pre_id"], linked_segmentation="cells")
    info = info_of(viewer, "syn")
    assert info["@type"] == "neuroglancer_annotations_v1"
    assert {p["id"] for p in info["properties"]} == {"size", "color"}
    assert [r["id"] for r in info["relationships"]] == ["pre_id"]
    js = viewer.state.layers["syn"].layer.to_json()
    assert "prop_color()" in js["shader"]
    assert js["linkedSegmentationLayer"] == {"pre_id": "cells"}
    assert js["filterBySegmentation"] == ["pre_id"]
    assert layer.generations == {"annotations": 0}


def test_in_place_edit_regenerates(viewer, synapses):
    layer = viewer.add_annotations("syn", synapses, "point", properties=["size"])
    synapses.loc[3, "x"] = 5000.0
    live.check_all()
    layer.wait()
    assert layer.generations == {"annotations": 1}
    assert info_of(viewer, "syn")["upper_bound"][0] >= 5000.0


def test_bad_edit_keeps_last_good_source(viewer, synapses):
    layer = viewer.add_annotations("syn", synapses, "point", properties=["size"])
    before = viewer.state.layers["syn"].source[0].url
    synapses.loc[7, "y"] = np.nan
    with pytest.raises(nglive.TableError) as info:
        layer.update()
    assert "'y'" in str(info.value) and "row 7" in str(info.value)
    assert viewer.state.layers["syn"].source[0].url == before
    assert info_of(viewer, "syn")["@type"] == "neuroglancer_annotations_v1"
    assert viewer.status["error"]


def test_link_needs_relationships(viewer, synapses):
    with pytest.raises(ValueError, match="relationships"):
        viewer.add_annotations("syn", synapses, "point", linked_segmentation="cells")
    with pytest.raises(ValueError, match="not in relationships"):
        viewer.add_annotations("syn", synapses, "point", relationships=["pre_id"],
                               linked_segmentation={"post_id": "cells"})


def test_unknown_annotation_type(viewer, synapses):
    with pytest.raises(ValueError, match="annotation_type"):
        viewer.add_annotations("syn", synapses, "circle")
