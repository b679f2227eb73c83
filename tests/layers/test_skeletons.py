"""Skeleton layers: node tables served as precomputed skeletons through the real viewer
and server, regenerated live on table edits; navis neurons and SWC files accepted."""

from __future__ import annotations

import json
import urllib.request

import navis
import numpy as np
import pandas as pd
import pytest
from formats.skeleton_spec_decoder import decode

import nglive
from nglive import live

BIG = 2**64 - 5  # uint64 ids end to end


def fetch(url: str) -> bytes:
    return urllib.request.urlopen(url.removeprefix("precomputed://")).read()


def source_urls(viewer, name):
    return [s.url for s in viewer.state.layers[name].source]


def served_skeleton(viewer, name, sid) -> dict:
    url = source_urls(viewer, name)[0]
    return decode(fetch(f"{url}/{sid}"), json.loads(fetch(url + "/info")))


def labels(viewer, name):
    props = json.loads(fetch(source_urls(viewer, name)[1] + "/info"))
    ids = props["inline"]["ids"]
    values = next(p["values"] for p in props["inline"]["properties"] if p["type"] == "label")
    return dict(zip(ids, values, strict=True))


def two_skeletons() -> pd.DataFrame:
    return pd.DataFrame({
        "skeleton_id": np.array([7, 7, 7, BIG, BIG], np.uint64),
        "node_id": [1, 2, 3, 1, 2],
        "parent_id": [-1, 1, 1, -1, 1],
        "x": [0.0, 10, 20, 100, 110], "y": [0.0, 5, 5, 0, 0], "z": 0.0,
        "radius": [1.0, 2, 3, 4, 5],
    })


def test_add_skeletons_serves_skeletons_and_properties(viewer):
    nodes = two_skeletons()
    props = pd.DataFrame({"skeleton_id": np.array([7, BIG], np.uint64),
                          "name": ["small", "big id"], "length": [1.5, 2.5]})
    layer = viewer.add_skeletons("sk", nodes, props, label_col="name")
    assert layer.generations == {"skeleton": 0, "properties": 0}
    info = json.loads(fetch(source_urls(viewer, "sk")[0] + "/info"))
    assert info["@type"] == "neuroglancer_skeletons"
    sk = served_skeleton(viewer, "sk", BIG)
    np.testing.assert_array_equal(sk["positions"], [[100, 0, 0], [110, 0, 0]])
    assert sk["edges"].tolist() == [[1, 0]] and sk["radius"].tolist() == [4, 5]
    assert labels(viewer, "sk") == {"7": "small", str(BIG): "big id"}
    assert {int(s) for s in viewer.state.layers["sk"].segments} == {7, BIG}


def test_node_table_edit_regenerates_after_a_cell(viewer):
    nodes = two_skeletons()
    layer = viewer.add_skeletons("sk", nodes)
    assert layer.sources["skeleton"].last_fingerprint == layer.sources["skeleton"].fingerprint()
    live.check_all()  # nothing changed: no new generation
    layer.wait()
    assert layer.generations == {"skeleton": 0}
    nodes.loc[2, "x"] = 99.0
    live.check_all()
    layer.wait()
    assert layer.generations == {"skeleton": 1}
    assert "/skeleton/1" in source_urls(viewer, "sk")[0]
    assert served_skeleton(viewer, "sk", 7)["positions"][2].tolist() == [99, 5, 0]
    # an unbound column does not regenerate
    nodes["note"] = "x"
    live.check_all()
    layer.wait()
    assert layer.generations == {"skeleton": 1}


def test_new_skeletons_become_visible(viewer):
    layer = viewer.add_skeletons("sk", two_skeletons())
    with viewer.txn() as s:
        s.layers["sk"].segments = {7}  # the user hid the other one
    more = pd.concat([two_skeletons(),
                      two_skeletons().iloc[:2].assign(skeleton_id=np.uint64(8))])
    layer.update(nodes=more)
    assert {int(s) for s in viewer.state.layers["sk"].segments} == {7, 8}


def test_bad_edit_keeps_last_good_data_and_reports(viewer):
    nodes = two_skeletons()
    layer = viewer.add_skeletons("sk", nodes)
    good = source_urls(viewer, "sk")
    nodes.loc[4, "parent_id"] = 42
    live.check_all()
    with pytest.raises(nglive.TableError, match=f"skeleton {BIG}: parent is not a node"):
        layer.wait()
    assert "row 4" in layer.error and "value 42" in layer.error
    assert source_urls(viewer, "sk") == good and layer.generations == {"skeleton": 0}
    assert served_skeleton(viewer, "sk", BIG)["edges"].tolist() == [[1, 0]]  # still served
    nodes.loc[4, "parent_id"] = 1
    nodes.loc[4, "x"] = 111.0
    live.check_all()
    layer.wait()
    assert layer.error is None and layer.generations == {"skeleton": 1}


def test_dict_of_tables_and_voxel_coordinates(viewer):
    table = two_skeletons()
    nodes = {5: table[table.skeleton_id == 7].drop(columns="skeleton_id")}
    viewer.add_skeletons("sk", nodes, coord_space={"x": [8, "nm"], "y": [8, "nm"],
                                                   "z": [40, "nm"]})
    info = json.loads(fetch(source_urls(viewer, "sk")[0] + "/info"))
    assert info["transform"] == [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0]
    assert served_skeleton(viewer, "sk", 5)["positions"].shape == (3, 3)


def test_navis_neurons_in_nm_with_names_and_a_radius_shader(viewer):
    nl = navis.example_neurons(3, kind="skeleton")
    layer = viewer.add_skeletons("neurons", nl, color_by="radius")
    source = layer.sources["skeleton"]
    # what was served is what the post-cell check compares with: an idle cell is free
    assert source.last_fingerprint == source.fingerprint()
    assert labels(viewer, "neurons") == {str(n.id): n.name for n in nl}
    n = nl[0]
    sk = served_skeleton(viewer, "neurons", n.id)
    scale = n.units.to("nm").magnitude  # 8 nm voxels
    np.testing.assert_allclose(sk["positions"], n.nodes[["x", "y", "z"]].to_numpy() * scale)
    np.testing.assert_allclose(sk["radius"], n.nodes["radius"].to_numpy() * scale)
    assert len(sk["edges"]) == len(n.nodes) - len(n.root)
    shader = viewer.state.layers["neurons"].skeleton_shader
    assert "colormapJet" in shader and "radius" in shader
    # editing a neuron's node table in place reaches the viewer after the cell
    n.nodes.loc[n.nodes.index[0], "x"] += 1000
    live.check_all()
    layer.wait()
    assert layer.generations["skeleton"] == 1
    moved = served_skeleton(viewer, "neurons", n.id)["positions"][0, 0]
    assert moved == pytest.approx((n.nodes["x"].iloc[0]) * scale)


def test_swc_paths_are_read_with_navis(viewer, tmp_path):
    n = navis.example_neurons(1, kind="skeleton")
    n.units = None  # SWC coordinates as written: drawn in coord_space units (nm)
    path = tmp_path / "neuron.swc"
    navis.write_swc(n, path)
    viewer.add_skeletons("swc", path)
    read = navis.read_swc(path)
    sk = served_skeleton(viewer, "swc", read.id)
    np.testing.assert_allclose(sk["positions"], read.nodes[["x", "y", "z"]].to_numpy())


def test_tables_with_several_roots_are_refused_unless_asked(viewer):
    nodes = two_skeletons()
    nodes.loc[2, "parent_id"] = -1
    with pytest.raises(nglive.TableError, match="skeleton 7: several roots"):
        viewer.add_skeletons("sk", nodes)
    assert "sk" not in viewer.layers
    viewer.add_skeletons("sk", nodes, several_roots=True)
    assert served_skeleton(viewer, "sk", 7)["edges"].tolist() == [[1, 0]]


def forest(n_skeletons: int, nodes: int = 4) -> pd.DataFrame:
    sid = np.repeat(np.arange(n_skeletons, dtype=np.uint64) + np.uint64(2**63), nodes)
    node = np.tile(np.arange(1, nodes + 1), n_skeletons)
    return pd.DataFrame({"skeleton_id": sid, "node_id": node,
                         "parent_id": np.where(node == 1, -1, node - 1),
                         "x": np.arange(len(sid), dtype=float), "y": 1.0, "z": 2.0,
                         "radius": 3.0})


@pytest.mark.parametrize("n_skeletons", [5, 600])  # unsharded, and sharded above 512
def test_only_changed_skeletons_are_reencoded_with_the_same_bytes(n_skeletons):
    from nglive.formats.skeletons import encode_skeletons
    from nglive.layers.skeleton_cache import SkeletonCache

    keywords = dict(id_col="skeleton_id", as_float=True)
    cache = SkeletonCache()
    table = forest(n_skeletons)
    assert cache.encode(table, key=1, **keywords) == encode_skeletons(table, **keywords)
    assert cache.reencoded == n_skeletons
    table.loc[6, "x"] = -5.0  # one node of the second skeleton
    assert cache.encode(table, key=1, **keywords) == encode_skeletons(table, **keywords)
    assert cache.reencoded == 1
    # a new skeleton is encoded, a removed one is dropped, the rest reused
    grown = pd.concat([table[table.skeleton_id != table.skeleton_id.iloc[0]],
                       forest(1).assign(skeleton_id=np.uint64(7))])
    files = cache.encode(grown, key=1, **keywords)
    assert files == encode_skeletons(grown, **keywords) and cache.reencoded == 1
    # a bad edit raises and leaves the cache as it was
    bad = grown.copy()
    bad.loc[bad.index[-1], "parent_id"] = 99
    with pytest.raises(nglive.TableError, match="skeleton 7: parent is not a node"):
        cache.encode(bad, key=1, **keywords)
    assert cache.encode(grown, key=1, **keywords) == files and cache.reencoded == 0
    # other settings: everything again
    cache.encode(grown, key=2, **keywords)
    assert cache.reencoded == len(grown.skeleton_id.unique())


def test_a_live_edit_reencodes_one_skeleton(viewer):
    nodes = forest(3)
    layer = viewer.add_skeletons("sk", nodes)
    nodes.loc[9, "y"] = 50.0  # skeleton 2**63 + 2
    live.check_all()
    layer.wait()
    assert layer.generations == {"skeleton": 1} and layer._cache.reencoded == 1
    for k in range(3):
        sk = served_skeleton(viewer, "sk", 2**63 + k)
        np.testing.assert_array_equal(
            sk["positions"], nodes.iloc[4 * k:4 * k + 4][["x", "y", "z"]].to_numpy(np.float32))
