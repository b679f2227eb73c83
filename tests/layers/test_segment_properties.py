"""Segment properties attached live to segmentation layers, with colours and visibility."""

from __future__ import annotations

import json
import urllib.request

import neuroglancer
import numpy as np
import pandas as pd
import pytest

import nglive
from nglive import live
from nglive.demo_data import demo_meshes, demo_table

REMOTE = "precomputed://gs://example-bucket/segmentation"
IDS = np.array([720575940379279361, 720575940379279362, 2**63 + 5], dtype=np.uint64)


@pytest.fixture
def cells():
    return pd.DataFrame({
        "pt_root_id": IDS,
        "cell_type": ["L2/3 IT", "basket", "L2/3 IT"],
        "n_syn": np.array([10, 20, 30], np.int32),
        "color": ["#ff0000", "teal", None],
        "show": [True, False, True],
    })


def layer_json(viewer, name):
    return viewer.state.layers[name].layer.to_json()


def fetch_info(url):
    return json.loads(urllib.request.urlopen(url.removeprefix("precomputed://") + "/info").read())


def test_attach_to_existing_remote_layer(viewer, cells):
    with viewer.txn() as s:
        s.layers["seg"] = neuroglancer.SegmentationLayer(source=REMOTE)
    layer = viewer.add_segment_properties("seg", cells, label_col="cell_type",
                                          number_cols=["n_syn"])
    sources = [s if isinstance(s, str) else s["url"] for s in
               _source_urls(layer_json(viewer, "seg"))]
    assert sources[0] == REMOTE and "/seg/properties/0" in sources[1]
    info = fetch_info(sources[1])
    assert info["inline"]["ids"] == [str(i) for i in IDS.tolist()]
    cells.loc[1, "cell_type"] = "chandelier"
    live.check_all()
    layer.wait()
    sources = _source_urls(layer_json(viewer, "seg"))
    assert sources[0] == REMOTE and "/seg/properties/1" in sources[1] and len(sources) == 2
    label = fetch_info(sources[1])["inline"]["properties"][0]
    assert label["values"][1] == "chandelier"


def _source_urls(layer):
    src = layer["source"]
    src = [src] if isinstance(src, str | dict) else src
    return [s if isinstance(s, str) else s["url"] for s in src]


def test_new_layer_from_source_with_colors_and_visibility(viewer, cells):
    layer = viewer.add_segment_properties("cells", cells, source=REMOTE, label_col="cell_type",
                                          color_col="color", visible_col="show")
    js = layer_json(viewer, "cells")
    assert _source_urls(js)[0] == REMOTE
    assert js["segmentColors"] == {str(IDS[0]): "#ff0000", str(IDS[1]): "#008080"}
    assert sorted(js["segments"]) == sorted([str(IDS[0]), str(IDS[2])])
    # the colour and visible columns are not exported as properties
    info = fetch_info(_source_urls(js)[1])
    assert {p["id"] for p in info["inline"]["properties"]} == {"label", "n_syn"}
    # a colour edit only changes the layer state: no new properties generation
    cells.loc[2, "color"] = "#00ff00"
    cells.loc[1, "show"] = True
    live.check_all()
    layer.wait()
    js = layer_json(viewer, "cells")
    assert js["segmentColors"][str(IDS[2])] == "#00ff00"
    assert len(js["segments"]) == 3
    assert layer.generations["properties"] == 0


def test_bad_colour_names_column_row_value_and_keeps_state(viewer, cells):
    layer = viewer.add_segment_properties("cells", cells, source=REMOTE, color_col="color")
    before = layer_json(viewer, "cells")
    cells.loc[1, "color"] = "not-a-colour"
    with pytest.raises(nglive.TableError) as info:
        layer.update()
    msg = str(info.value)
    assert "'color'" in msg and "row 1" in msg and "not-a-colour" in msg
    assert layer_json(viewer, "cells") == before
    assert "not-a-colour" in viewer.status["error"]


def test_attach_to_mesh_layer(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    table["color"] = ["red", "green", "blue", "#123456", "orange", "purple"]
    mesh_layer = viewer.add_meshes("shapes", meshes)
    same = viewer.add_segment_properties(mesh_layer, table, id_col="segment_id",
                                         label_col="name", color_col="color")
    assert same is mesh_layer
    js = layer_json(viewer, "shapes")
    assert len(_source_urls(js)) == 2
    assert js["segmentColors"][str(table.segment_id[3])] == "#123456"


def test_unknown_layer_without_source(viewer, cells):
    with pytest.raises(ValueError, match="pass source="):
        viewer.add_segment_properties("nope", cells)


def test_image_layer_rejected(viewer, cells):
    with viewer.txn() as s:
        s.layers["img"] = neuroglancer.ImageLayer(source="precomputed://gs://x/img")
    with pytest.raises(ValueError, match="segmentation layer"):
        viewer.add_segment_properties("img", cells)
