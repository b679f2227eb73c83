"""Mesh layer bindings: generations, live post-cell updates, errors keep the last good data."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import trimesh

import nglive
from nglive import live
from nglive.demo_data import demo_meshes, demo_table


@pytest.fixture
def viewer():
    v = nglive.Viewer(log_requests=True)
    yield v
    v.close()


def fetch_json(url: str):
    return json.loads(urllib.request.urlopen(url.removeprefix("precomputed://")).read())


def source_urls(viewer, name):
    return [s.url for s in viewer.state.layers[name].source]


def labels(viewer, name):
    props = fetch_json(source_urls(viewer, name)[1] + "/info")
    return next(p["values"] for p in props["inline"]["properties"] if p["type"] == "label")


def test_add_meshes_serves_meshes_and_properties(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    layer = viewer.add_meshes("shapes", meshes, table, label_col="name")
    assert layer.generations == {"mesh": 0, "properties": 0}
    mesh_url, props_url = source_urls(viewer, "shapes")
    assert fetch_json(mesh_url + "/info")["@type"] == "neuroglancer_legacy_mesh"
    props = fetch_json(props_url + "/info")
    assert props["inline"]["ids"] == [str(i) for i in table["segment_id"]]
    assert labels(viewer, "shapes") == list(table["name"])
    numbers = {p["id"] for p in props["inline"]["properties"] if p["type"] == "number"}
    assert {"volume_um3", "area_um2", "n_faces"} <= numbers
    visible = viewer.state.layers["shapes"].segments
    assert {int(s) for s in visible} == set(meshes)


def test_in_place_edit_is_noticed_after_a_cell(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    layer = viewer.add_meshes("shapes", meshes, table, label_col="name")
    live.check_all()  # nothing changed: no new generation
    layer.wait()
    assert layer.generations == {"mesh": 0, "properties": 0}
    table.loc[0, "name"] = "renamed"
    live.check_all()
    layer.wait()
    assert layer.generations == {"mesh": 0, "properties": 1}  # meshes untouched
    assert labels(viewer, "shapes")[0] == "renamed"
    assert "/properties/1" in source_urls(viewer, "shapes")[1]


def test_editing_an_unbound_column_does_not_regenerate(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    table["notes"] = "x"  # a string column, not bound by default
    layer = viewer.add_meshes("shapes", meshes, table, label_col="name")
    table.loc[0, "notes"] = "changed"
    live.check_all()
    layer.wait()
    assert layer.generations["properties"] == 0


def test_explicit_update_with_new_meshes(viewer):
    layer = viewer.add_meshes("shapes", {1: trimesh.creation.box()})
    layer.update(meshes={1: trimesh.creation.icosphere()})
    assert layer.generations == {"mesh": 1}
    assert "/mesh/1" in source_urls(viewer, "shapes")[0]


def test_bad_edit_keeps_last_good_data_and_reports(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    layer = viewer.add_meshes("shapes", meshes, table, label_col="name")
    good_urls = source_urls(viewer, "shapes")
    table["segment_id"] = table["segment_id"].astype(object)
    table.loc[2, "segment_id"] = "not-an-id"
    with pytest.raises(nglive.TableError) as info:
        layer.update()
    assert "segment_id" in str(info.value) and "not-an-id" in str(info.value)
    assert source_urls(viewer, "shapes") == good_urls  # viewer unchanged
    assert fetch_json(good_urls[1] + "/info")["inline"]["ids"]  # still served
    assert viewer.status["error"] and "not-an-id" in viewer.status["error"]
    assert layer.generations == {"mesh": 0, "properties": 0}
    # the same bad data is not retried after every cell; a fix clears the error
    live.check_all()
    table.loc[2, "segment_id"] = table.loc[1, "segment_id"] + 100
    live.check_all()
    layer.wait()
    assert layer.error is None and viewer.status["error"] is None
    assert layer.generations["properties"] == 1


def test_missing_column_is_reported(viewer):
    table = demo_table()
    with pytest.raises(nglive.TableError, match="'nope'"):
        viewer.add_meshes("shapes", demo_meshes(), table, label_col="nope")
    assert "shapes" not in viewer.layers


def test_duplicate_layer_name_rejected(viewer):
    viewer.add_meshes("a", {1: trimesh.creation.box()})
    with pytest.raises(ValueError, match="exists"):
        viewer.add_meshes("a", {1: trimesh.creation.box()})


def test_resolved_server_url_rewrites_sources(viewer):
    viewer.add_meshes("shapes", {1: trimesh.creation.box()})
    proxied = viewer.server.server_url.replace("127.0.0.1", "localhost")
    viewer.server_url = proxied  # what the browser reports after resolving
    viewer.wait()
    assert source_urls(viewer, "shapes")[0].startswith("precomputed://" + proxied + "/nglive/")
    assert fetch_json(source_urls(viewer, "shapes")[0] + "/info")


def test_remove_layer(viewer):
    viewer.add_meshes("a", {1: trimesh.creation.box()})
    viewer.remove_layer("a")
    assert "a" not in viewer.state.layers
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(viewer.server.url_for("nope"))


def test_vertices_in_voxels_are_drawn_in_nm(viewer):
    from nglive.formats.legacy_mesh import decode_fragment

    box = trimesh.creation.box(extents=(1, 1, 1))
    viewer.add_meshes("vox", {1: box},
                      coord_space={"x": [8, "nm"], "y": [8, "nm"], "z": [40, "nm"]})
    url = source_urls(viewer, "vox")[0].removeprefix("precomputed://")
    vertices, _ = decode_fragment(urllib.request.urlopen(url + "/fragment/1").read())
    assert vertices.max(axis=0).tolist() == [4.0, 4.0, 20.0]
    with pytest.raises(ValueError, match="not lengths"):
        viewer.add_meshes("bad", {1: box}, coord_space={"x": [1, "s"], "y": [1, "nm"],
                                                          "z": [1, "nm"]})


def test_update_back_to_good_data_after_a_failure(viewer):
    table = demo_table()
    layer = viewer.add_meshes("shapes", demo_meshes(), table, label_col="name")
    bad = table.copy()
    bad.loc[3, "segment_id"] = bad.loc[2, "segment_id"]
    with pytest.raises(nglive.TableError, match="duplicate"):
        layer.update(bad)
    assert layer.update(table) == {"mesh": 0, "properties": 0}  # nothing to redo, no raise
    assert layer.error is None and viewer.status["error"] is None


def test_new_mesh_ids_become_visible_hidden_ones_stay_hidden(viewer):
    layer = viewer.add_meshes("shapes", {1: trimesh.creation.box(), 2: trimesh.creation.box()})
    with viewer.txn() as s:
        s.layers["shapes"].segments = {1}  # the user hid segment 2
    layer.update(meshes={1: trimesh.creation.box(), 2: trimesh.creation.box(),
                         3: trimesh.creation.icosphere()})
    assert {int(x) for x in viewer.state.layers["shapes"].segments} == {1, 3}
    layer.update(meshes={3: trimesh.creation.icosphere(), 4: trimesh.creation.box()})
    assert {int(x) for x in viewer.state.layers["shapes"].segments} == {3, 4}


def test_fingerprint_describes_what_was_served_when_the_table_changes_mid_check(viewer):
    table = demo_table()
    layer = viewer.add_meshes("shapes", demo_meshes(), table, label_col="name")
    source = layer.sources["properties"]
    take = source.snapshot

    def edited_while_copying():
        # another thread (a grid edit, a viewer edit) changes the table between the
        # post-cell check's fingerprint and its snapshot
        table.loc[0, "name"] = "late edit"
        return take()

    table.loc[1, "name"] = "first edit"
    source.snapshot = edited_while_copying
    live.check_all()
    layer.wait()
    source.snapshot = take
    assert labels(viewer, "shapes")[:2] == ["late edit", "first edit"]
    assert source.last_fingerprint == source.fingerprint()  # what is served is recorded
    live.check_all()  # so the next check has nothing to redo
    layer.wait()
    assert layer.generations["properties"] == 1


def test_layer_names_must_be_unicode(viewer):
    with pytest.raises(ValueError, match="not valid Unicode"):
        viewer.add_meshes("shapes\ud800", {1: trimesh.creation.box()})
    assert not viewer.layers
