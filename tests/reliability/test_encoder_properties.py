"""Property-based tests of every encoder: generated tables (random dtypes, nulls, extreme
values, unicode, duplicates, empties) either round-trip exactly, read back by decoders
written from the specs (not by nglive's own code), or raise TableError before anything
is written.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nglive.formats.annotations import write_annotations
from nglive.formats.legacy_mesh import encode_legacy_meshes
from nglive.formats.segment_properties import segment_properties, segment_properties_json
from nglive.formats.validation import TableError
from nglive.mesh import AlphaShaper
from nglive.mesh.triangulation import AlphaShapeInputError

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from annotation_spec_decoder import SpecSource  # noqa: E402

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
F32_MAX = float(np.finfo(np.float32).max)

# text that users paste: ASCII, accents, CJK, emoji, controls, and lone surrogates (bytes
# decoded with surrogateescape), which no UTF-8 JSON can carry
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
PLAIN = st.text(st.characters(codec="utf-8"), max_size=6)


def has_surrogate(text) -> bool:
    return isinstance(text, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def strict_json(data: bytes) -> dict:
    """Parse as RFC 8259 JSON: UTF-8, no NaN/Infinity tokens."""
    def reject(token):
        raise AssertionError(f"not JSON: {token}")
    return json.loads(bytes(data).decode("utf-8"), parse_constant=reject)


# --------------------------------------------------------------------- segment properties

INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


@st.composite
def property_tables(draw):
    n = draw(st.integers(0, 12))
    ids = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n))
    if n and draw(st.booleans()):
        ids[-1] = ids[0]  # a duplicate
    id_form = draw(st.sampled_from(["uint64", "str", "int64", "pyarrow"]))
    if id_form == "pyarrow":  # pandas' pyarrow backend (read_parquet(dtype_backend=...))
        id_values = pd.array(ids, dtype="uint64[pyarrow]")
    elif id_form == "int64":
        ids = [i % 2**63 - (2**62 if draw(st.booleans()) else 0) for i in ids]
        id_values = np.array(ids, dtype=np.int64)
    elif id_form == "str":
        id_values = np.array([str(i) for i in ids], dtype=object)
    else:
        id_values = np.array(ids, dtype=np.uint64)
    labels = draw(st.lists(st.none() | TEXT, min_size=n, max_size=n))
    dtype = draw(st.sampled_from(["float64", "float32", "bool", *INT_DTYPES]))
    if dtype.startswith("float"):
        nums = draw(st.lists(st.floats(width=64 if dtype == "float64" else 32), min_size=n,
                             max_size=n))
    elif dtype == "bool":
        nums = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    else:
        info = np.iinfo(dtype)
        nums = draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n,
                             max_size=n))
    tags = draw(st.lists(st.sampled_from([None, "", "a", "A", "b c", "#x", "ä", "z\ud800"]),
                         min_size=n, max_size=n))
    label_dtype = object
    if not any(has_surrogate(v) for v in labels) and draw(st.booleans()):
        label_dtype = draw(st.sampled_from(["string[pyarrow]", "string[python]"]))
    df = pd.DataFrame({"pt_root_id": id_values, "label": pd.Series(labels, dtype=label_dtype),
                       "number": np.array(nums, dtype=dtype),
                       "tag": pd.Series(tags, dtype=object)})
    return df, ids, id_form


def expected_problem(df: pd.DataFrame, ids: list, id_form: str) -> str | None:
    """Why this table must be rejected (the column), or None if it must round-trip."""
    if id_form == "int64" and (np.asarray(df["pt_root_id"]) < 0).any():
        return "pt_root_id"
    if len(set(ids)) != len(ids):
        return "pt_root_id"
    if any(has_surrogate(v) for v in df["label"] if not pd.isna(v)):
        return "label"
    num = df["number"].to_numpy()
    if num.dtype.kind == "f" and (np.isinf(num).any() or (np.abs(num[np.isfinite(num)])
                                                           > F32_MAX).any()):
        return "number"
    tags = {v for v in df["tag"] if v not in (None, "")}
    text = {t.replace(" ", "_") for t in tags}
    if any(t.startswith("#") for t in text) or len({t.lower() for t in text}) != len(text):
        return "tag"
    if any(has_surrogate(t) for t in text):
        return "tag"
    return None


def check_number(prop: dict, original: np.ndarray) -> None:
    values = prop["values"]
    dtype = prop["data_type"]
    assert len(values) == len(original)
    for got, want in zip(values, original.tolist(), strict=True):
        if dtype == "float32":
            want32 = np.float32(want)
            if math.isnan(want32):
                assert got == "NaN"
            else:
                assert np.float32(got) == want32, (got, want)
        else:  # an integer type: exact, and within the type
            info = np.iinfo(dtype)
            assert got == int(want) and info.min <= got <= info.max


@SETTINGS
@given(property_tables())
def test_segment_properties_round_trip_or_reject(case):
    df, ids, id_form = case
    problem = expected_problem(df, ids, id_form)
    kw = dict(label_col="label", number_cols="number", tag_value_cols="tag")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # big ints as float32: documented
        if problem is not None:
            with pytest.raises(TableError) as info:
                segment_properties_json(df, **kw)
            assert info.value.column == problem or problem in str(info.value)
            with pytest.raises(TableError):
                segment_properties(df, **kw)
            return
        data = segment_properties_json(df, **kw)
        as_dict = segment_properties(df, **kw)
    out = strict_json(data)
    assert out["@type"] == "neuroglancer_segment_properties"
    assert out["inline"]["ids"] == [str(i) for i in ids]
    props = {p["id"]: p for p in out["inline"]["properties"]}
    assert props["label"]["values"] == ["" if pd.isna(v) else v for v in df["label"]]
    check_number(props["number"], df["number"].to_numpy())
    tag_prop = props["tags"]
    present = sorted({v for v in df["tag"] if v not in (None, "")})
    assert tag_prop["tags"] == [t.replace(" ", "_") for t in present]
    for row_tags, v in zip(tag_prop["values"], df["tag"], strict=True):
        assert row_tags == ([] if v in (None, "") else [present.index(v)])
    # the dictionary says the same as the bytes
    assert json.loads(json.dumps(as_dict, allow_nan=False))["inline"]["ids"] == \
        out["inline"]["ids"]


# --------------------------------------------------------------------- colours

CSS = {"red": "#ff0000", "teal": "#008080", "white": "#ffffff"}


@st.composite
def colour_values(draw):
    """(value, expected '#rrggbb' or None for missing, or "bad")."""
    channel = st.integers(-5, 260)
    kind = draw(st.sampled_from(["hex6", "hex3", "css", "rgb()", "tuple", "junk", "none"]))
    if kind == "none":
        return draw(st.sampled_from([None, math.nan, ""])), None
    if kind == "css":
        name = draw(st.sampled_from(sorted(CSS)))
        return name, CSS[name]
    if kind == "junk":
        return draw(st.sampled_from(["#ggg", "#12345", "blurple", "rgb(1,2)", "x\ud800"])), "bad"
    r, g, b = draw(channel), draw(channel), draw(channel)
    ok = all(0 <= c <= 255 for c in (r, g, b))
    want = f"#{r:02x}{g:02x}{b:02x}" if ok else "bad"
    if kind == "hex6":
        return (f"#{r % 256:02X}{g % 256:02x}{b % 256:02x}",
                f"#{r % 256:02x}{g % 256:02x}{b % 256:02x}")
    if kind == "hex3":
        r, g, b = r % 16, g % 16, b % 16
        return f"#{r:x}{g:x}{b:x}", f"#{r * 17:02x}{g * 17:02x}{b * 17:02x}"
    if kind == "rgb()":
        return f"rgb({r}, {g}, {b})", want
    return (r, g, b), want


@SETTINGS
@given(st.lists(colour_values(), max_size=12))
def test_colours_are_exact_or_rejected_by_row(cases):
    from nglive.formats.colors import hex_colors

    values = pd.Series([v for v, _ in cases], dtype=object,
                       index=pd.Index([f"row{i}" for i in range(len(cases))]))
    wanted = [w for _, w in cases]
    if "bad" in wanted:
        with pytest.raises(TableError) as info:
            hex_colors(values, column="colour")
        assert info.value.column == "colour"
        assert info.value.row == f"row{wanted.index('bad')}" or wanted.count("bad") > 1
        return
    assert hex_colors(values, column="colour").tolist() == wanted


# --------------------------------------------------------------------- annotations

PROPERTY_DTYPES = ["float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
                   "uint32", "bool"]


@st.composite
def annotation_tables(draw):
    n = draw(st.integers(0, 15))
    coord = st.floats(-1e6, 1e6, width=32) | st.sampled_from(
        [0.0, -0.0, 1e-40, 3e38, -3e38, 1e39, math.nan, math.inf])
    xyz = {c: draw(st.lists(coord, min_size=n, max_size=n)) for c in "xyz"}
    ids = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n, unique=True))
    if n > 1 and draw(st.booleans()):
        ids[1] = ids[0]
    dtype = draw(st.sampled_from(PROPERTY_DTYPES))
    if dtype.startswith("float"):
        score = draw(st.lists(st.floats(width=32) | st.just(1e39), min_size=n, max_size=n))
    elif dtype == "bool":
        score = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    else:
        info = np.iinfo(dtype)
        score = draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n,
                              max_size=n))
    channel = st.integers(0, 255) | st.sampled_from([-1, 256, 300])
    color = {f"color_{c}": draw(st.lists(channel, min_size=n, max_size=n)) for c in "rgb"}
    segments = draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n))
    df = pd.DataFrame({**{c: np.array(v, np.float64) for c, v in xyz.items()},
                       "score": np.array(score, dtype=dtype),
                       **{k: np.array(v, np.int64) for k, v in color.items()},
                       "segment": np.array(segments, dtype=np.uint64)},
                      index=pd.Index(np.array(ids, dtype=np.uint64)))
    return df, draw(st.booleans())


def annotation_problem(df: pd.DataFrame) -> str | None:
    geom = df[list("xyz")].to_numpy()
    if not np.isfinite(geom).all() or (np.abs(geom) > F32_MAX).any():
        return "geometry"
    if df.index.has_duplicates:
        return "id"
    s = df["score"].to_numpy()
    if s.dtype.kind == "f" and (~np.isfinite(s) & ~np.isnan(s) | (np.abs(s) > F32_MAX)
                                & np.isfinite(s)).any():
        return "score"
    for c in "rgb":
        v = df[f"color_{c}"].to_numpy()
        if ((v < 0) | (v > 255)).any():
            return f"color_{c}"
    return None


@SETTINGS
@given(annotation_tables())
def test_annotations_round_trip_or_reject_before_writing(tmp_path_factory, case):
    df, sharded = case
    out = tmp_path_factory.mktemp("ann")
    problem = annotation_problem(df)
    args = dict(properties=["score", "color"], relationships=["segment"],
                write_sharded=sharded)
    if problem is not None:
        with pytest.raises(TableError) as info:
            write_annotations(df, "xyz", "point", output_dir=str(out / "src"), **args)
        assert problem in str(info.value) or problem == "geometry"
        assert not (out / "src").exists() or not os.listdir(out / "src")  # nothing written
        return
    path = write_annotations(df, "xyz", "point", output_dir=str(out / "src"), **args)
    src = SpecSource(path)
    by_id = src.by_id()
    assert sorted(by_id) == sorted(int(i) for i in df.index)
    props = [p["id"] for p in src.info["properties"]]
    for aid, row in zip(df.index.tolist(), df.itertuples(index=False), strict=True):
        geom, values, rels = by_id[int(aid)]
        assert geom == np.float32([row.x, row.y, row.z]).tolist()
        got = dict(zip(props, values, strict=True))
        ptype = src.info["properties"][props.index("score")]["type"]
        if ptype == "float32":
            want = np.float32(row.score)
            assert (math.isnan(got["score"]) and math.isnan(want)) or got["score"] == want
        else:
            assert got["score"] == int(row.score)
        assert tuple(got["color"]) == (row.color_r, row.color_g, row.color_b)
        assert rels == [[int(row.segment)]]
    # the relationship index finds each annotation under its segment
    rel = src.relationship(0)
    for aid, seg in zip(df.index.tolist(), df["segment"].tolist(), strict=True):
        assert int(aid) in [r[0] for r in rel[int(seg)]]


# --------------------------------------------------------------------- legacy meshes


@st.composite
def mesh_sets(draw):
    count = draw(st.integers(0, 3))
    meshes = {}
    for _ in range(count):
        sid = draw(st.integers(0, 2**64 - 1) | st.sampled_from([-1, "7", "x", 2**64]))
        nv = draw(st.integers(0, 6))
        vertex = st.floats(-1e5, 1e5, width=32) | st.sampled_from([math.nan, 1e39])
        vertices = np.array(draw(st.lists(st.tuples(vertex, vertex, vertex), min_size=nv,
                                          max_size=nv)), np.float64).reshape(nv, 3)
        nf = draw(st.integers(0, 4))
        index = st.integers(-1, max(nv, 1))
        faces = np.array(draw(st.lists(st.tuples(index, index, index), min_size=nf,
                                       max_size=nf)), np.int64).reshape(nf, 3)
        meshes[sid] = (vertices, faces)
    return meshes


def mesh_problem(meshes: dict) -> bool:
    ints = []
    for sid, (vertices, faces) in meshes.items():
        if isinstance(sid, str):
            if not sid.isdigit():
                return True
            sid = int(sid)
        if not 0 <= sid < 2**64:
            return True
        ints.append(sid)
        if not np.isfinite(vertices).all() or (np.abs(vertices) > F32_MAX).any():
            return True
        if len(faces) and ((faces < 0).any() or (faces >= len(vertices)).any()):
            return True
    return len(set(ints)) != len(ints)


def decode_fragment_from_spec(data: bytes):
    """meshes.md (legacy): uint32le vertex count, float32le xyz, uint32le triangles."""
    (nv,) = np.frombuffer(data[:4], "<u4")
    vertices = np.frombuffer(data[4:4 + 12 * nv], "<f4").reshape(-1, 3)
    faces = np.frombuffer(data[4 + 12 * nv:], "<u4").reshape(-1, 3)
    return vertices, faces


@SETTINGS
@given(mesh_sets())
def test_legacy_meshes_round_trip_or_reject(meshes):
    if mesh_problem(meshes):
        with pytest.raises(TableError):
            encode_legacy_meshes(meshes)
        return
    files = encode_legacy_meshes(meshes)
    assert strict_json(files["info"]) == {"@type": "neuroglancer_legacy_mesh"}
    for sid, (vertices, faces) in meshes.items():
        manifest = strict_json(files[f"{int(sid)}:0"])
        (fragment,) = manifest["fragments"]
        got_v, got_f = decode_fragment_from_spec(files[fragment])
        np.testing.assert_array_equal(got_v, vertices.astype(np.float32))
        np.testing.assert_array_equal(got_f, faces)


@SETTINGS
@given(mesh_sets())
def test_multires_meshes_decode_or_reject(meshes):
    from multires_spec_decoder import decode_fragments, decode_manifest
    from trimesh.triangles import closest_point

    from nglive.formats.multires_mesh import SNAP, encode_multires_meshes

    if mesh_problem(meshes):
        with pytest.raises(TableError):
            encode_multires_meshes(meshes)
        return
    files = encode_multires_meshes(meshes, num_lods=2)
    assert strict_json(files["info"])["@type"] == "neuroglancer_multilod_draco"
    for sid, (vertices, faces) in meshes.items():
        manifest = decode_manifest(files[f"{int(sid)}.index"])
        chunk = float(manifest["chunk_shape"][0])
        # quantisation (half a step) plus snapping onto a cut plane, per axis
        tol = np.sqrt(3) * (chunk / 65535 / 2 + max(chunk * SNAP, 2 * chunk / 65535))
        tris = vertices[faces] if len(faces) else np.zeros((0, 3, 3))
        for lod, _, _, model, _ in decode_fragments(manifest, files[str(int(sid))], 16):
            if lod:
                continue
            assert len(tris)
            rep = np.repeat(model, len(tris), axis=0)
            near = closest_point(np.tile(tris, (len(model), 1, 1)), rep)
            dist = np.linalg.norm(near - rep, axis=1).reshape(len(model), -1).min(axis=1)
            assert dist.max() <= tol * (1 + 1e-6) + 1e-9, (dist.max(), tol)


# --------------------------------------------------------------------- alpha shapes


@st.composite
def point_clouds(draw):
    n = draw(st.integers(0, 60))
    kind = draw(st.sampled_from(["random", "grid", "flat", "repeated", "bad"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "grid":  # voxel-grid annotations: integer coordinates, many repeats
        pts = rng.integers(0, 4, size=(n, 3)).astype(float) * 8.0
    elif kind == "flat":
        pts = np.c_[rng.random((n, 2)), np.zeros(n)]
    elif kind == "repeated":
        pts = np.repeat(rng.random((max(n // 4, 1), 3)), 4, axis=0)[:n]
    else:
        pts = rng.normal(size=(n, 3)) * draw(st.sampled_from([1e-6, 1.0, 1e6]))
    if kind == "bad" and n:
        pts[rng.integers(0, n)] = draw(st.sampled_from([math.nan, math.inf]))
    return pts


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(point_clouds(), st.booleans())
def test_alpha_meshing_gives_a_valid_mesh_or_says_why(pts, repair):
    distinct = len(np.unique(pts, axis=0)) if len(pts) else 0
    try:
        shaper = AlphaShaper(pts)
    except AlphaShapeInputError as e:
        assert (not np.isfinite(pts).all() or distinct < 4 or "plane" in str(e)), str(e)
        return
    assume(np.isfinite(pts).all())
    alpha = float(shaper.critical_alphas[-1]) * 2  # above every radius: the hull
    rep = shaper.report(alpha, repair=repair)
    assert rep.merged_duplicates == len(pts) - distinct
    assert rep.points_outside == 0 and rep.watertight and rep.n_solids == 1
    mesh = shaper.mesh(alpha, repair=repair)
    assert mesh.faces.max() < len(mesh.vertices)
    # every vertex is an input point (meshes use the original coordinates)
    rows = {tuple(p) for p in pts.tolist()}
    assert all(tuple(v) in rows for v in mesh.vertices.tolist())
    auto = shaper.report(shaper.auto_alpha() if len(shaper.points) > 4 else alpha)
    assert auto.merged_duplicates == rep.merged_duplicates
