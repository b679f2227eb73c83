"""Round trips of nglive.formats.annotations through Neuroglancer's AnnotationReader
and through a decoder written from the spec."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tensorstore as ts
from annotation_spec_decoder import SpecSource, as_float32, level_of_each
from neuroglancer.read_precomputed_annotations import AnnotationReader

import nglive
from nglive.formats.annotations import encode_annotations, write_annotations

TYPES = ["point", "line", "axis_aligned_bounding_box", "ellipsoid", "polyline"]


def make_table(kind: str, n: int = 300, seed: int = 0):
    """A table of ``kind`` annotations with a float, an int and an enum property and
    two relationships (a scalar one and a list one); polylines come with their vertices."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(2**40, n, replace=False).astype(np.uint64) + np.uint64(2**60)
    df = pd.DataFrame(index=pd.Index(ids, name="id"))
    a = rng.uniform(0, 200, (n, 3))
    b = a + rng.uniform(-30, 30, (n, 3))
    points = None
    if kind == "point":
        df[["x", "y", "z"]] = a
    elif kind in ("line", "axis_aligned_bounding_box"):
        df[["xa", "ya", "za"]] = a
        df[["xb", "yb", "zb"]] = b
    elif kind == "ellipsoid":
        df[["x", "y", "z"]] = a
        df[["rx", "ry", "rz"]] = rng.uniform(0, 20, (n, 3))
    else:
        nv = rng.integers(2, 6, n)
        pid = np.repeat(ids, nv)
        verts = np.repeat(a, nv, axis=0) + rng.uniform(-20, 20, (nv.sum(), 3))
        points = pd.DataFrame({"annotation_id": pid, "x": verts[:, 0], "y": verts[:, 1],
                               "z": verts[:, 2]})
    df["score"] = rng.normal(size=n).astype(np.float32)
    df["count"] = rng.integers(-1000, 1000, n).astype(np.int16)
    df["kind"] = pd.Categorical(rng.choice(["axon", "dendrite", "soma"], n))
    df["seg"] = rng.integers(1, 20, n).astype(np.uint64) + np.uint64(2**63)
    df["partners"] = [list(rng.integers(1, 30, k).astype(np.uint64))
                      for k in rng.integers(0, 4, n)]
    return df, points


def expected_geometry(kind, df, points, aid):
    if kind == "point":
        return as_float32(df.loc[aid, ["x", "y", "z"]])
    if kind in ("line", "axis_aligned_bounding_box"):
        return as_float32(df.loc[aid, ["xa", "ya", "za", "xb", "yb", "zb"]])
    if kind == "ellipsoid":
        return as_float32(df.loc[aid, ["x", "y", "z", "rx", "ry", "rz"]])
    return as_float32(points.loc[points.annotation_id == aid, ["x", "y", "z"]].to_numpy().ravel())


def reader_geometry(kind, ann):
    if kind == "point":
        return as_float32(ann.point)
    if kind in ("line", "axis_aligned_bounding_box"):
        return as_float32(np.concatenate([ann.point_a, ann.point_b]))
    if kind == "ellipsoid":
        return as_float32(np.concatenate([ann.center, ann.radii]))
    return as_float32(np.asarray(ann.points).ravel())


@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
@pytest.mark.parametrize("kind", TYPES)
def test_round_trip_through_neuroglancer_reader(tmp_path, kind, sharded):
    df, points = make_table(kind)
    write_annotations(df, "xyz", kind, properties=["score", "count", "kind"],
                      relationships=["seg", "partners"], output_dir=str(tmp_path),
                      write_sharded=sharded, polyline_points=points, target_chunk_limit=50)
    reader = AnnotationReader(f"file://{tmp_path}")
    assert reader.annotation_type == kind
    enum = [p for p in reader.metadata["properties"] if p["id"] == "kind"][0]
    labels = dict(zip(enum["enum_values"], enum["enum_labels"], strict=True))
    for aid in df.index[:60]:
        ann = reader.by_id[int(aid)]
        assert reader_geometry(kind, ann) == expected_geometry(kind, df, points, aid)
        score, count, code = ann.props
        assert np.float32(score) == df.loc[aid, "score"]
        assert int(count) == df.loc[aid, "count"]
        assert labels[int(code)] == df.loc[aid, "kind"]
        assert [int(s) for s in ann.segments[0]] == [int(df.loc[aid, "seg"])]
        assert [int(s) for s in ann.segments[1]] == [int(s) for s in df.loc[aid, "partners"]]
    # by relationship: every segment lists exactly its annotations
    for seg in np.unique(df["seg"])[:5]:
        got = sorted(int(a.id) for a in reader.relationships["seg"][int(seg)])
        assert got == sorted(int(a) for a in df.index[df["seg"] == seg])
    flat = df["partners"].explode().dropna()
    for seg in flat.unique()[:5]:
        got = sorted(int(a.id) for a in reader.relationships["partners"][int(seg)])
        assert got == sorted({int(a) for a in flat.index[flat == seg]})
    # spatially: through Neuroglancer's reader, every annotation comes back
    seen = []
    for level in reader.spatial:
        grid = level.metadata["grid_shape"]
        for cell in np.ndindex(*grid):
            try:
                seen += [int(a.id) for a in level[cell]]
            except KeyError:
                pass
    assert set(seen) == {int(a) for a in df.index}


@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
@pytest.mark.parametrize("kind", TYPES)
def test_round_trip_through_spec_decoder(tmp_path, kind, sharded):
    df, points = make_table(kind, n=200, seed=1)
    write_annotations(df, "xyz", kind, properties=["score", "count", "kind"],
                      relationships=["seg", "partners"], output_dir=str(tmp_path),
                      write_sharded=sharded, polyline_points=points, target_chunk_limit=40)
    src = SpecSource(str(tmp_path))
    by_id = src.by_id()
    assert set(by_id) == {int(a) for a in df.index}
    for aid in df.index:
        geom, values, rels = by_id[int(aid)]
        assert geom == expected_geometry(kind, df, points, aid)
        assert values[0] == df.loc[aid, "score"] and values[1] == df.loc[aid, "count"]
        assert rels == [[int(df.loc[aid, "seg"])], [int(s) for s in df.loc[aid, "partners"]]]
    levels = src.spatial()
    once = level_of_each(levels)
    assert set(once) == set(by_id)
    assert all(len(v) == 1 for v in once.values()), "an annotation at several levels"
    for cells in levels:  # spatial records are the by_id records without relationships
        for recs in cells.values():
            for aid, geom, values in recs:
                assert (geom, values) == by_id[aid][:2]


def test_scalar_relationship_with_missing_values_and_list_relationship_sharded(tmp_path):
    df = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": 0.0, "z": 0.0,
                       "pre": pd.array([5, None, 5, 7], dtype="UInt64"),
                       "post": [[1, 2], [], None, np.array([2, 2**64 - 1], np.uint64)]},
                      index=[1, 2, 3, 4])
    write_annotations(df, "xyz", "point", relationships=["pre", "post"],
                      output_dir=str(tmp_path))
    reader = AnnotationReader(f"file://{tmp_path}")
    assert "sharding" in reader.metadata["relationships"][1]
    assert sorted(int(a.id) for a in reader.relationships["pre"][5]) == [1, 3]
    assert sorted(int(a.id) for a in reader.relationships["post"][2]) == [1, 4]
    assert [int(a.id) for a in reader.relationships["post"][2**64 - 1]] == [4]
    assert [list(map(int, s)) for s in reader.by_id[2].segments] == [[], []]
    assert [list(map(int, s)) for s in reader.by_id[4].segments] == [[7], [2, 2**64 - 1]]


def test_enum_and_colour_properties(tmp_path):
    df = pd.DataFrame({
        "x": [0.0, 1, 2], "y": 0.0, "z": 0.0,
        "cls": pd.Categorical(["b", "a", "b"], categories=["b", "a", "unused"]),
        "tint_r": [255, 0, 10], "tint_g": [0, 255, 20], "tint_b": [0, 0, 30],
        "glow_r": [1, 2, 3], "glow_g": [4, 5, 6], "glow_b": [7, 8, 9], "glow_a": [10, 11, 12],
        "hex": ["#ff8000", "#00FF00", "#0000ff"],
        "hexa": ["#ff800080", "#00ff00ff", "#00000000"],
    })
    write_annotations(df, "xyz", "point", properties=["cls", "tint", "glow", "hex", "hexa"],
                      output_dir=str(tmp_path), write_sharded=False)
    reader = AnnotationReader(f"file://{tmp_path}")
    specs = {p["id"]: p for p in reader.metadata["properties"]}
    assert specs["cls"]["enum_labels"] == ["b", "a", "unused"]
    assert specs["cls"]["enum_values"] == [0, 1, 2]
    assert [specs[k]["type"] for k in ("tint", "glow", "hex", "hexa")] == \
        ["rgb", "rgba", "rgb", "rgba"]
    src = SpecSource(str(tmp_path))
    _, values, _ = src.by_id()[1]
    assert values == [1, (0, 255, 0), (2, 5, 8, 11), (0, 255, 0), (0, 255, 0, 255)]
    ann = reader.by_id[0]
    assert int(ann.props[0]) == 0


def test_unsharded_source_has_one_file_per_key_and_every_index():
    df, _ = make_table("point", n=50)
    files = encode_annotations(df, "xyz", "point", relationships=["seg"],
                               write_sharded=False)
    info = json.loads(files["info"])
    assert "sharding" not in info["by_id"]
    assert {k for k in files if k.startswith("by_id/")} == {f"by_id/{a}" for a in df.index}
    assert {k for k in files if k.startswith("by_rel_seg/")} == \
        {f"by_rel_seg/{s}" for s in np.unique(df["seg"])}


def test_sharded_source_is_few_shard_files():
    df, _ = make_table("point", n=2000)
    files = encode_annotations(df, "xyz", "point", relationships=["seg", "partners"])
    assert all(k == "info" or k.endswith(".shard") for k in files)
    info = json.loads(files["info"])
    for entry in [info["by_id"], *info["relationships"], *info["spatial"]]:
        assert entry["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"


def test_index_switches():
    df, _ = make_table("point", n=20)
    files = encode_annotations(df, "xyz", "point", relationships=["seg"], write_sharded=False,
                               write_by_id=False, write_by_relationship=False,
                               write_by_spatial_chunk=False)
    assert list(files) == ["info"]
    info = json.loads(files["info"])
    assert "by_id" not in info and info["spatial"] == []


def test_write_to_an_nglive_store_makes_a_generation(tmp_path):
    """The docstring offered store=nglive.Store(); it raised AttributeError (issue 13)."""
    df = pd.DataFrame({"x": [1.0, 4.0], "y": [2.0, 5.0], "z": [3.0, 6.0], "seg": [7, 8]})
    store = nglive.Store()
    assert write_annotations(df, "xyz", "point", relationships=["seg"], store=store) \
        == "annotations/0"
    assert write_annotations(df, "xyz", "point", store=store) == "annotations/1"
    assert store.current("annotations").path == "annotations/1"
    assert json.loads(store.read("annotations/0/info"))["annotation_type"] == "POINT"
    on_disk = nglive.Store(tmp_path / "store")
    path = write_annotations(df, "xyz", "point", relationships=["seg"], store=on_disk,
                             output_dir="syn/points")
    assert path == "syn/points/0"
    reader = AnnotationReader(f"file://{tmp_path}/store/{path}")
    assert as_float32(reader.by_id[1].point) == [4.0, 5.0, 6.0]
    assert [int(a.id) for a in reader.relationships["seg"][8]] == [1]


def test_write_to_kvstore_and_url(tmp_path):
    df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0]})
    kv = ts.KvStore.open("memory://out/").result()
    write_annotations(df, "xyz", "point", output_dir=kv)
    assert b"info" in kv.list().result()
    write_annotations(df, "xyz", "point", output_dir=f"file://{tmp_path}/src")
    reader = AnnotationReader(f"file://{tmp_path}/src")
    assert as_float32(reader.by_id[0].point) == [1.0, 2.0, 3.0]


def test_nothing_is_written_when_validation_fails(tmp_path):
    df = pd.DataFrame({"x": [1.0, np.nan], "y": 0.0, "z": 0.0})
    with pytest.raises(ValueError):
        write_annotations(df, "xyz", "point", output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    store = nglive.Store(tmp_path / "store")
    with pytest.raises(ValueError):
        write_annotations(df, "xyz", "point", store=store)
    assert store.list() == [] and store.current("annotations") is None


def test_coordinate_space_forms_and_rank():
    import neuroglancer

    df = pd.DataFrame({"x": [1.0], "y": [2.0], "t": [3.0], "c": [0.0]})
    forms = [
        {"names": ["x", "y", "t", "c"], "units": ["nm", "nm", "s", ""], "scales": [4, 4, 1, 1]},
        {"x": [4, "nm"], "y": [4, "nm"], "t": [1, "s"], "c": [1, ""]},
    ]
    for cs in forms:
        info = json.loads(encode_annotations(df, cs, "point", write_sharded=False)["info"])
        assert info["dimensions"] == {"x": [4.0, "nm"], "y": [4.0, "nm"], "t": [1.0, "s"],
                                      "c": [1.0, ""]}
    # neuroglancer.CoordinateSpace normalises units to SI base units itself
    cs = neuroglancer.CoordinateSpace(names=["x", "y", "t", "c"], units=["nm", "nm", "s", ""],
                                      scales=[4, 4, 1, 1])
    info = json.loads(encode_annotations(df, cs, "point")["info"])
    assert info["dimensions"] == {"x": [4e-9, "m"], "y": [4e-9, "m"], "t": [1.0, "s"],
                                  "c": [1.0, ""]}
    info = json.loads(encode_annotations(df[["x", "y"]], "xy", "point")["info"])
    assert info["dimensions"] == {"x": [1.0, "nm"], "y": [1.0, "nm"]}


def test_polyline_points_only_shortcut(tmp_path):
    pts = pd.DataFrame({"annotation_id": [7, 7, 7, 3, 3], "x": [0.0, 1, 2, 5, 6],
                        "y": [0.0, 1, 0, 5, 5], "z": 0.0})
    write_annotations(None, "xyz", "polyline", polyline_points=pts, output_dir=str(tmp_path))
    reader = AnnotationReader(f"file://{tmp_path}")
    assert as_float32(np.asarray(reader.by_id[7].points)) == [[0, 0, 0], [1, 1, 0], [2, 0, 0]]
    assert as_float32(np.asarray(reader.by_id[3].points)) == [[5, 5, 0], [6, 5, 0]]


def test_empty_table():
    df = pd.DataFrame({"x": [], "y": [], "z": []})
    for sharded in (True, False):
        files = encode_annotations(df, "xyz", "point", write_sharded=sharded)
        info = json.loads(files["info"])
        assert info["lower_bound"] == [0, 0, 0] and len(info["spatial"]) == 1
