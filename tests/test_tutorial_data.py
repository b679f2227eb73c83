"""The tutorial data: navis's hemibrain example neurons as nglive tables, units checked."""

from __future__ import annotations

import builtins
import importlib

import numpy as np
import pandas as pd
import pytest
import trimesh

navis = pytest.importorskip("navis")

import nglive  # noqa: E402
from nglive import tutorial_data as td  # noqa: E402

IDS = {1734350788, 1734350908, 722817260, 754534424, 754538881}


@pytest.fixture(scope="module")
def synapses():
    return td.synapse_table()


@pytest.fixture(scope="module")
def lh():
    return td.lateral_horn_mesh()


def lh_voxel_mesh():
    v = navis.example_volume("LH")
    return np.asarray(v.vertices, float), np.asarray(v.faces)


# ------------------------------------------------------------------------ neurons

def test_neuron_meshes_are_keyed_by_body_id_and_in_nm(lh):
    meshes = td.neuron_meshes()
    assert set(meshes) == IDS
    assert all(type(k) is int for k in meshes)
    raw = {int(n.id): n for n in navis.example_neurons(kind="mesh")}
    for sid, mesh in meshes.items():
        assert isinstance(mesh, trimesh.Trimesh)
        np.testing.assert_allclose(mesh.vertices, np.asarray(raw[sid].vertices) * 8.0)
        np.testing.assert_array_equal(mesh.faces, raw[sid].faces)
        # a DA1 PN spans antennal lobe to lateral horn: 100-300 µm, not 12-40 µm (voxels)
        extent_um = (mesh.bounds[1] - mesh.bounds[0]).max() / 1e3
        assert 100 < extent_um < 300, extent_um
        # and its axon reaches into the lateral horn: the boxes overlap, in nm
        lo = np.maximum(mesh.bounds[0], lh.bounds[0])
        hi = np.minimum(mesh.bounds[1], lh.bounds[1])
        assert (hi > lo).all(), (sid, mesh.bounds, lh.bounds)


def test_neuron_table(synapses):
    table = td.neuron_table()
    assert table["segment_id"].dtype == np.uint64
    assert set(table["segment_id"].tolist()) == IDS
    assert table["segment_id"].is_unique
    assert isinstance(table["type"].dtype, pd.CategoricalDtype)
    assert table["type"].tolist() == ["DA1_lPN"] * 5
    assert (table["name"] == "DA1_lPN_R").all()
    assert table["color"].str.fullmatch(r"#[0-9a-f]{6}").all() and table["color"].is_unique
    skeletons = {int(n.id): n for n in navis.example_neurons(kind="skeleton")}
    for row in table.itertuples():
        n = skeletons[int(row.segment_id)]
        c = n.connectors
        assert row.n_pre == (c["type"] == "pre").sum()
        assert row.n_post == (c["type"] == "post").sum()
        # cable length in µm: navis's (voxels) x 8 nm
        assert row.cable_length_um == pytest.approx(n.cable_length * 8 / 1e3, rel=1e-6)
        assert row.has_soma == (n.soma is not None)
    assert table["cable_length_um"].between(1e3, 5e3).all()  # mm of cable, not nm or voxels
    assert table["has_soma"].dtype == bool and not table["has_soma"].all()
    # counts from a given synapse table (e.g. a filtered one) follow that table
    lh_only = td.neuron_table(synapses[synapses["roi"] == "LH(R)"])
    assert (lh_only["n_pre"] < table["n_pre"]).all()
    assert lh_only[["n_pre", "n_post"]].to_numpy().sum() == (synapses["roi"] == "LH(R)").sum()


def test_neuron_table_keeps_neurons_without_synapses(synapses):
    table = td.neuron_table(synapses.iloc[:0])
    assert len(table) == 5 and (table[["n_pre", "n_post"]] == 0).all().all()


# ------------------------------------------------------------------------ synapses

def test_synapse_table_matches_the_connector_tables(synapses):
    skeletons = navis.example_neurons(kind="skeleton")
    assert len(synapses) == sum(len(n.connectors) for n in skeletons)
    assert synapses.index.is_unique and synapses.index.name == "annotation_id"
    assert synapses["neuron_id"].dtype == np.uint64
    for n in skeletons:
        mine = synapses[synapses["neuron_id"] == np.uint64(n.id)]
        c = n.connectors
        assert len(mine) == len(c)
        np.testing.assert_array_equal(mine[["x", "y", "z"]].to_numpy(),
                                      c[["x", "y", "z"]].to_numpy(np.float32))
        assert mine["type"].astype(str).tolist() == c["type"].tolist()
        assert mine["connector_id"].tolist() == c["connector_id"].tolist()


def test_synapse_columns_are_typed_for_annotations(synapses):
    assert isinstance(synapses["type"].dtype, pd.CategoricalDtype)
    assert synapses["type"].cat.categories.tolist() == ["pre", "post"]
    assert not synapses["type"].isna().any()
    assert isinstance(synapses["roi"].dtype, pd.CategoricalDtype)
    assert not synapses["roi"].isna().any() and "none" in synapses["roi"].cat.categories
    assert {synapses[c].dtype for c in "xyz"} == {np.dtype(np.float32)}
    # the annotation encoder takes them as they are: enum properties, a relationship
    files = nglive.encode_annotations(
        synapses, td.VOXELS, "point", properties=["type", "roi", "confidence"],
        relationships=["neuron_id"], write_sharded=False)
    import json

    info = json.loads(files["info"])
    assert info["dimensions"] == {"x": [8, "nm"], "y": [8, "nm"], "z": [8, "nm"]}
    props = {p["id"]: p for p in info["properties"]}
    assert props["type"]["enum_labels"] == ["pre", "post"]
    assert {f"by_rel_neuron_id/{i}" for i in IDS} <= set(files)


def test_points_are_in_voxels_and_lh_synapses_lie_in_the_lh(synapses):
    # The LH mesh navis labels "1 nanometer" is in the neurons' 8 nm voxels: the synapses
    # navis tags LH(R) are all inside it, and almost no others are.
    v, f = lh_voxel_mesh()
    inside = td.winding_number(synapses[["x", "y", "z"]].to_numpy(), v, f) > 0.5
    in_lh = (synapses["roi"] == "LH(R)").to_numpy()
    assert in_lh.sum() > 1000
    assert inside[in_lh].all()
    assert inside[~in_lh].mean() < 0.02


# ------------------------------------------------------------------------ lateral horn

def test_lateral_horn_mesh_is_in_nm(lh):
    v, f = lh_voxel_mesh()
    np.testing.assert_allclose(lh.vertices, v * 8.0)
    assert lh.is_watertight and lh.is_volume
    # a fly lateral horn is some 10^5 µm³ (in voxels³ it would be 5e11, in nm³ 2.5e14)
    assert 5e4 < lh.volume / 1e9 < 1e6


def test_lateral_horn_points_lie_inside_the_lh(lh):
    pts = td.lateral_horn_points(800, seed=3)
    assert pts.shape == (800, 3) and list(pts.columns) == ["x", "y", "z"]
    assert pts.index.equals(pd.RangeIndex(800)) and pts.index.name == "annotation_id"
    # inside by an independent test (winding number, not the sampler's ncollpyde), in nm
    w = td.winding_number(pts.to_numpy() * 8.0, lh.vertices, lh.faces)
    assert (np.abs(w - 1) < 1e-6).all()
    # spread through the volume, not bunched: the sample's box nearly fills the LH's
    lo, hi = pts.min().to_numpy() * 8.0, pts.max().to_numpy() * 8.0
    assert ((hi - lo) / (lh.bounds[1] - lh.bounds[0]) > 0.85).all()


def test_lateral_horn_points_are_seeded():
    a, b = td.lateral_horn_points(50, seed=1), td.lateral_horn_points(50, seed=1)
    c = td.lateral_horn_points(50, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    assert len(td.lateral_horn_points(0)) == 0
    with pytest.raises(ValueError, match="n must be >= 0"):
        td.lateral_horn_points(-1)


def test_sampler_without_ncollpyde_uses_the_winding_number(monkeypatch, lh):
    real_import = builtins.__import__

    def no_ncollpyde(name, *args, **kwargs):
        if name == "ncollpyde":
            raise ImportError("no ncollpyde")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ncollpyde)
    pts = td.lateral_horn_points(200, seed=5)
    monkeypatch.undo()
    w = td.winding_number(pts.to_numpy() * 8.0, lh.vertices, lh.faces)
    assert len(pts) == 200 and (w > 0.5).all()


# ------------------------------------------------------------------------ helpers

def test_winding_number_inside_outside_and_orientation():
    box = trimesh.creation.box(extents=(2, 2, 2))
    pts = np.array([[0, 0, 0], [0.99, 0.5, -0.5], [1.01, 0, 0], [5, 5, 5]])
    np.testing.assert_allclose(td.winding_number(pts, box.vertices, box.faces),
                               [1, 1, 0, 0], atol=1e-9)
    flipped = box.faces[:, ::-1]
    np.testing.assert_allclose(td.winding_number(pts[:1], box.vertices, flipped), [-1],
                               atol=1e-9)
    # chunks do not change the answer
    many = np.random.default_rng(0).uniform(-2, 2, (1000, 3))
    np.testing.assert_array_equal(td.winding_number(many, box.vertices, box.faces, chunk=7),
                                  td.winding_number(many, box.vertices, box.faces))


def test_missing_navis_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_navis(name, *args, **kwargs):
        if name == "navis":
            raise ImportError("No module named 'navis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_navis)
    fresh = importlib.reload(td)  # import of the module itself needs no navis
    try:
        with pytest.raises(ImportError, match="pip install navis"):
            fresh.synapse_table()
    finally:
        monkeypatch.undo()
        importlib.reload(td)


# ------------------------------------------------------------------------ in a viewer

def test_tutorial_tables_bind_to_a_viewer(synapses):
    viewer = nglive.Viewer()
    try:
        neurons = td.neuron_table(synapses)
        layer = viewer.add_meshes("neurons", td.neuron_meshes(), neurons, label_col="name",
                                  color_col="color")
        syn = synapses.assign(color=np.where(synapses["type"] == "pre", "#ff0000", "#0000ff"))
        ann = viewer.add_annotations("synapses", syn, properties=["type", "color"],
                                     relationships=["neuron_id"], coord_space=td.VOXELS,
                                     linked_segmentation="neurons")
        state = viewer.state.layers["synapses"].layer.to_json()
        assert state["linkedSegmentationLayer"] == {"neuron_id": "neurons"}
        assert ann.info["dimensions"]["x"] == [8, "nm"]
        # the view was fitted to the neurons, in nm
        lo = np.min([m.bounds[0] for m in layer.meshes.values()], axis=0)
        hi = np.max([m.bounds[1] for m in layer.meshes.values()], axis=0)
        np.testing.assert_allclose(viewer.state.position, (lo + hi) / 2, rtol=1e-5)
        # a moved mesh is noticed (content hash, not trimesh's transform-blind identifier)
        lh = td.lateral_horn_mesh()
        lh_layer = viewer.add_meshes("lh", {1: lh})
        before = lh_layer.generations["mesh"]
        lh.apply_translation([8000.0, 0, 0])
        lh_layer.refresh()
        assert lh_layer.generations["mesh"] == before + 1
    finally:
        viewer.close()
