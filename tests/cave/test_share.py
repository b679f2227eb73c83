"""share / load_state against the fake state server: what is uploaded never points at the
kernel, properties are nglive's encoder output, small annotation layers travel as local
annotations, the rest needs a bucket, and a shared state opens again in a viewer."""

from __future__ import annotations

import json

import neuroglancer
import numpy as np
import pandas as pd
import pytest
import trimesh

import nglive
from nglive.cave import CaveError, CaveNotFoundError, NeedsBucketError, PropertySizeError
from nglive.cave.share import state_source

SYN = "synapses_pni_2"
CELLS = "aibs_metamodel_celltypes_v661"
PROPS = dict(label_col="cell_type", tag_value_cols=["cell_type"], tag_bool_cols=["stale"])


@pytest.fixture
def scene(viewer, client):
    """The tutorial's viewer: datastack, synapses, cell types as points and as labels."""
    seg = viewer.add_datastack(client)
    syn = viewer.add_cave_table(client, SYN, properties=["size"])
    cells = viewer.add_cave_table(client, CELLS, properties=["cell_type"])
    viewer.add_segment_properties(seg, cells.df, **PROPS)
    return viewer, syn, cells


def no_kernel_address(text, cave, viewer):
    elsewhere = text.replace(cave.base_url, "")
    for mark in ("127.0.0.1", "localhost", viewer.server.token, viewer.ng.token,
                 f":{viewer.server.port}"):
        assert mark not in elsewhere, mark


def test_shared_state_points_only_at_cave(scene, cave, client):
    viewer, syn, cells = scene
    link = viewer.share(client)
    assert link.startswith("https://spelunker.cave-explorer.org/#!middleauth+")
    assert link.endswith(f"/nglstate/api/v1/{link.state_id}")
    uploaded = cave.states[link.state_id].decode()
    no_kernel_address(uploaded, cave, viewer)
    state = json.loads(uploaded)
    assert state == link.state | {}  # what share says it uploaded is what arrived
    layers = {la["name"]: la for la in state["layers"]}
    assert list(layers) == ["imagery", "segmentation", SYN, CELLS]
    assert layers[SYN]["source"]["url"] == "local://annotations"
    assert layers[SYN]["source"]["transform"]["outputDimensions"] == {
        "x": [4e-09, "m"], "y": [4e-09, "m"], "z": [4e-08, "m"]}
    seg_sources = layers["segmentation"]["source"]
    assert seg_sources[-1] == (f"precomputed://middleauth+{cave.base_url}/nglstate/api/v1/"
                               f"property/{link.property_ids['segmentation']}")
    # the shared state is a valid Neuroglancer state
    assert neuroglancer.ViewerState(state).layers[SYN].type == "annotation"


def test_uploaded_properties_equal_the_encoder_output(scene, cave, client):
    viewer, syn, cells = scene
    link = viewer.share(client)
    uploaded = cave.property_json(link.property_ids["segmentation"])
    expected = nglive.segment_properties(cells.df, id_col="pt_root_id", **PROPS)
    assert uploaded == json.loads(json.dumps(expected))
    stale = uploaded["inline"]["properties"][-1]
    assert any(stale["tags"].index("stale") in t for t in stale["values"])


def test_local_annotations_carry_properties_and_relationships(scene, cave, client):
    viewer, syn, cells = scene
    state = cave.state(viewer.share(client).state_id)
    layer = {la["name"]: la for la in state["layers"]}[SYN]
    assert [p["id"] for p in layer["annotationProperties"]] == ["size"]
    assert layer["annotationRelationships"] == ["pre_pt_root_id", "post_pt_root_id"]
    assert layer["linkedSegmentationLayer"] == {"pre_pt_root_id": "segmentation",
                                                "post_pt_root_id": "segmentation"}
    assert len(layer["annotations"]) == len(syn.df)
    by_id = {a["id"]: a for a in layer["annotations"]}
    for _, row in syn.df.iloc[[0, 1, 97]].iterrows():  # row 97 has no presynaptic segment
        a = by_id[str(row["id"])]
        assert a["point"] == [row[f"ctr_pt_position_{x}"] for x in "xyz"]
        assert a["props"] == [row["size"]]
        pre = [str(row["pre_pt_root_id"])] if row["pre_pt_root_id"] else []
        assert a["segments"] == [pre, [str(row["post_pt_root_id"])]]
    cells_layer = {la["name"]: la for la in state["layers"]}[CELLS]
    enum = cells_layer["annotationProperties"][0]
    a = cells_layer["annotations"][0]
    assert enum["enum_labels"][a["props"][0]] == cells.df["cell_type"].iloc[0]


def test_load_state_round_trip(scene, cave, client):
    viewer, syn, cells = scene
    link = viewer.share(client)
    other = nglive.Viewer()
    try:
        loaded = other.load_state(client, link)
        assert loaded == cave.state(link.state_id)
        assert other.state.to_json() == neuroglancer.ViewerState(loaded).to_json()
        assert other.load_state(client, link.state_id) == loaded  # an id works too
    finally:
        other.close()


def test_load_state_replaces_bound_layers_of_the_same_name(scene, cave, client):
    viewer, syn, cells = scene
    link = viewer.share(client)
    points = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0]})
    viewer.add_annotations("mine", points)
    viewer.load_state(client, link)
    assert SYN not in viewer.layers and "mine" in viewer.layers
    names = [la.name for la in viewer.state.layers]
    assert names == ["imagery", "segmentation", SYN, CELLS, "mine"]
    assert viewer.state.layers[SYN].to_json()["source"]["url"] == "local://annotations"


def test_layers_that_need_a_bucket(scene, cave, client):
    viewer, syn, cells = scene
    with pytest.raises(NeedsBucketError, match=rf"\['{SYN}'\].*over 100 rows.*publish_to="):
        viewer.share(client, local_limit=100)
    viewer.add_meshes("shapes", {1: trimesh.creation.box()})
    with pytest.raises(NeedsBucketError, match=r"\['shapes'\].*publish_to="):
        viewer.share(client)
    assert not cave.states  # nothing was uploaded


def test_layers_published_to_a_bucket_join_the_shared_state(scene, cave, client, tmp_path):
    viewer, syn, cells = scene
    viewer.add_meshes("shapes", {1: trimesh.creation.box()})
    public = "https://example.org/study"
    link = viewer.share(client, publish_to=tmp_path / "pub", publish_url=public,
                        local_limit=1000)
    state = cave.state(link.state_id)
    no_kernel_address(json.dumps(state), cave, viewer)
    layers = {la["name"]: la for la in state["layers"]}
    assert list(layers) == ["imagery", "segmentation", SYN, CELLS, "shapes"]
    # meshes and the 2000-row synapse table (over local_limit) went to the bucket
    assert sorted(link.published.sources) == ["shapes", SYN]
    for name in ("shapes", SYN):
        sources = layers[name]["source"]
        sources = [sources] if isinstance(sources, str | dict) else sources
        urls = [s if isinstance(s, str) else s["url"] for s in sources]
        assert urls and all(u.startswith(f"precomputed://{public}/") for u in urls), urls
    assert (tmp_path / "pub" / SYN / "annotations" / "info").exists()
    # the small cell table still travels inside the state, the labels via the state server
    assert layers[CELLS]["source"]["url"] == "local://annotations"
    assert "nglstate/api/v1/property/" in layers["segmentation"]["source"][-1]


def test_properties_over_the_state_server_limit(viewer, cave, client, tmp_path):
    seg = viewer.add_datastack(client)
    n = 30_000
    big = pd.DataFrame({"pt_root_id": np.arange(1, n + 1, dtype=np.uint64),
                        "name": [f"cell {i} " + "x" * 90 for i in range(n)]})
    viewer.add_segment_properties(seg, big, label_col="name")
    with pytest.raises(PropertySizeError, match=r"'segmentation' are 3\.\d MB.*2\.5 MB.*"
                                                r"publish_to="):
        viewer.share(client)
    assert not cave.properties and not cave.states
    link = viewer.share(client, publish_to=tmp_path / "pub",
                        publish_url="https://example.org/pub")
    seg_layer = cave.state(link.state_id)["layers"][1]
    urls = [s if isinstance(s, str) else s["url"] for s in seg_layer["source"]]
    assert urls[0].startswith("graphene://middleauth+")
    assert urls[-1] == "precomputed://https://example.org/pub/segmentation/properties"
    assert not cave.properties


def test_a_layer_pointing_at_the_kernel_is_refused(scene, client, cave):
    viewer, syn, cells = scene
    url = viewer.state.layers[SYN].to_json()["source"]
    with viewer.txn() as s:
        s.layers["copy"] = neuroglancer.AnnotationLayer(source=url)
    with pytest.raises(CaveError, match=r"\['copy'\] point at this kernel"):
        viewer.share(client)
    assert not cave.states


def test_unknown_state(viewer, client):
    with pytest.raises(CaveNotFoundError, match="state 999"):
        viewer.load_state(client, 999)
    with pytest.raises(ValueError, match="neither a state id nor a link"):
        viewer.load_state(client, "https://example.org/#!{}")


def test_state_source_forms():
    assert state_source("17") == 17
    assert state_source("https://spelunker.cave-explorer.org/#!middleauth+http://127.0.0.1:"
                        "8000/nglstate/api/v1/3") == "http://127.0.0.1:8000/nglstate/api/v1/3"
