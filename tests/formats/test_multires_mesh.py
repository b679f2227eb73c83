"""Multi-resolution mesh encoder, decoded here from the spec (manifests by hand, fragments
with DracoPy): octree layout, fragments inside their bounds, the finest LOD is the input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from multires_spec_decoder import decode_fragments, decode_manifest, zorder_key
from scipy.spatial import cKDTree

from nglive.formats.multires_mesh import SNAP, encode_multires_meshes
from nglive.formats.validation import TableError

BIG_ID = 720575940379279361  # above 2**53: must survive exactly


def decode(files, sid, bits=16):
    manifest = decode_manifest(files[f"{sid}.index"])
    return manifest, list(decode_fragments(manifest, files[str(sid)], bits))


def lod_mesh(frags, lod) -> trimesh.Trimesh:
    parts = [trimesh.Trimesh(model, faces, process=False)
             for k, _, _, model, faces in frags if k == lod]
    return trimesh.util.concatenate(parts)


def distance_to_surface(mesh, points, k=8):
    """Distance from each point to the nearest of the k triangles with nearest centroids."""
    _, cand = cKDTree(mesh.triangles_center).query(points, k=k)
    tris = mesh.triangles[cand].reshape(-1, 3, 3)
    closest = trimesh.triangles.closest_point(tris, np.repeat(points, k, axis=0))
    dist = np.linalg.norm(closest - np.repeat(points, k, axis=0), axis=1)
    return dist.reshape(-1, k).min(axis=1)


SPHERE = trimesh.creation.icosphere(subdivisions=5, radius=1000.0)  # 20,480 faces
SPHERE.apply_translation([5000.0, -300.0, 120.0])


@pytest.fixture(scope="module")
def sphere_files():
    return encode_multires_meshes({BIG_ID: SPHERE}, num_lods=4)


def test_info_is_the_spec(sphere_files):
    info = json.loads(sphere_files["info"])
    assert info == {"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": 16,
                    "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                    "lod_scale_multiplier": 1.0}
    assert sorted(sphere_files) == sorted([f"{BIG_ID}", f"{BIG_ID}.index", "info"])


def test_octree_layout(sphere_files):
    manifest, frags = decode(sphere_files, BIG_ID)
    positions = manifest["positions"]
    assert len(positions) == 4
    assert positions[-1].tolist() == [[0, 0, 0]]  # one root
    assert len(positions[0]) > 8  # the finest level is really split
    for lod, pos in enumerate(positions):
        keys = [zorder_key(p) for p in pos]
        assert keys == sorted(keys) and len(set(keys)) == len(keys), f"lod {lod} not Z-order"
        if lod:  # every finer node has its parent here (Neuroglancer walks from the root)
            parents = {tuple(p) for p in pos}
            assert {tuple(p >> 1) for p in positions[lod - 1]} <= parents
    scales = manifest["lod_scales"]
    assert np.all(scales > 0) and np.all(np.diff(scales) >= 0)
    assert np.all(manifest["vertex_offsets"] == 0)
    faces = [sum(len(f) for k, *_, f in frags if k == lod) for lod in range(4)]
    assert faces[0] >= len(SPHERE.faces)  # cut, never dropped
    assert all(a > 2 * b for a, b in zip(faces, faces[1:], strict=False)), faces


@pytest.mark.parametrize("bits", [10, 16])
def test_every_lod_inside_its_fragment(bits):
    files = encode_multires_meshes({3: SPHERE}, num_lods=4, vertex_quantization_bits=bits)
    manifest, frags = decode(files, 3, bits)
    chunk = manifest["chunk_shape"].astype(np.float64)
    origin = manifest["grid_origin"].astype(np.float64)
    half = 2 ** (bits - 1)  # Neuroglancer's partition point for the 2x2x2 sub-grid
    for lod, pos, ints, model, faces in frags:
        assert ints.min() >= 0 and ints.max() < 2**bits
        lo = origin + chunk * 2**lod * pos
        hi = lo + chunk * 2**lod
        tol = chunk * 2**lod * 1e-6
        assert np.all(model >= lo - tol) and np.all(model <= hi + tol)
        if lod:  # no triangle crosses a sub-grid plane (it may touch one)
            corner = ints[faces]  # (m, 3 corners, 3 axes)
            below = (corner <= half).all(axis=1)
            above = (corner >= half).all(axis=1)
            assert np.all(below | above), f"lod {lod} fragment {pos} crosses its sub-grid"


def test_finest_lod_is_the_input_up_to_quantisation(sphere_files):
    manifest, frags = decode(sphere_files, BIG_ID)
    fine = lod_mesh(frags, 0)
    step = float(manifest["chunk_shape"].max()) / (2**16 - 1)
    # quantisation moves a vertex by up to half a step per axis, snapping onto a cut
    # plane by up to SNAP of the fragment size (8 steps) on each axis
    tol = np.sqrt(3) * (step / 2 + SNAP * float(manifest["chunk_shape"].max()))
    assert fine.area == pytest.approx(SPHERE.area, rel=1e-4)
    np.testing.assert_allclose(fine.bounds, SPHERE.bounds, atol=tol)
    # every input vertex is there, and every output vertex lies on the input surface
    dist, _ = cKDTree(fine.vertices).query(SPHERE.vertices)
    assert dist.max() <= tol
    assert np.quantile(dist, 0.9) <= step  # most vertices are not near a plane
    assert distance_to_surface(SPHERE, fine.vertices).max() <= tol
    # fragments stitch: merged by position the cut sphere is closed again
    fine.merge_vertices(digits_vertex=6)
    assert fine.is_watertight


def test_coarse_lods_approximate_the_input(sphere_files):
    manifest, frags = decode(sphere_files, BIG_ID)
    for lod in (1, 2, 3):
        coarse = lod_mesh(frags, lod)
        assert coarse.area == pytest.approx(SPHERE.area, rel=0.05)
        dist = np.linalg.norm(coarse.vertices - SPHERE.center_mass, axis=1)
        assert np.all(np.abs(dist - 1000.0) < 50.0)
        # lod_scales say how far each LOD strays from the input (Neuroglancer draws a
        # LOD while that is under a pixel): the 90th percentile of the real distances
        off = np.quantile(distance_to_surface(SPHERE, coarse.vertices), 0.9)
        back = np.quantile(distance_to_surface(coarse, SPHERE.vertices), 0.9)
        assert 0.5 * max(off, back) <= manifest["lod_scales"][lod] <= 2 * max(off, back)


def test_large_triangles_are_cut_at_every_plane():
    box = trimesh.creation.box(extents=(400.0, 100.0, 50.0)).subdivide().subdivide()
    files = encode_multires_meshes({1: box}, num_lods=4)  # 192 faces over 8^3 cells
    manifest, frags = decode(files, 1)
    assert len(manifest["positions"]) == 4
    fine = lod_mesh(frags, 0)
    assert len(fine.faces) > 2 * len(box.faces)
    assert len(manifest["positions"][0]) > 12
    assert fine.area == pytest.approx(box.area, rel=1e-6)
    fine.merge_vertices(digits_vertex=6)
    assert fine.is_watertight


def test_small_meshes_have_one_lod_and_empty_meshes_one_empty_node():
    files = encode_multires_meshes({1: trimesh.creation.box(),
                                    2: (np.zeros((0, 3)), np.zeros((0, 3), int))})
    manifest, frags = decode(files, 1)
    assert len(manifest["lod_scales"]) == 1 and len(frags) == 1
    assert len(frags[0][4]) == 12
    manifest, frags = decode(files, 2)
    assert [p.tolist() for p in manifest["positions"]] == [[[0, 0, 0]]]
    assert manifest["sizes"][0].tolist() == [0] and files["2"] == b""


def test_degenerate_meshes_encode():
    point = (np.zeros((3, 3)), [[0, 1, 2]])  # the face collapses: an empty mesh
    line = (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], float), [[0, 1, 2]])
    files = encode_multires_meshes({1: point, 2: line}, num_lods=2)
    manifest, frags = decode(files, 1)
    assert frags == [] and files["1"] == b""
    assert all(s.sum() == 0 for s in manifest["sizes"])
    _, frags = decode(files, 2)  # a zero-area triangle is kept as it is
    assert [len(f) for *_, f in frags] == [1]
    got = frags[0][3]
    np.testing.assert_allclose(got[np.argsort(got[:, 0])], line[0], atol=1e-4)


def test_string_and_numpy_ids_are_exact():
    files = encode_multires_meshes({str(BIG_ID): trimesh.creation.box(),
                                    np.uint64(2**64 - 1): trimesh.creation.box()})
    assert f"{BIG_ID}.index" in files and f"{2**64 - 1}.index" in files


@pytest.mark.parametrize(
    "mesh, match, value",
    [
        ((np.array([[0, 0, 0], [1, 0, np.nan], [0, 1, 0]]), [[0, 1, 2]]), "not finite", "nan"),
        ((np.eye(3), [[0, 1, 7]]), "vertex that does not exist", "value 7"),
        ((np.eye(3), [[0, -2, 1]]), "vertex that does not exist", "value -2"),
    ],
)
def test_bad_meshes_name_id_and_value_before_encoding(mesh, match, value):
    good = trimesh.creation.icosphere()
    with pytest.raises(TableError, match=match) as err:
        encode_multires_meshes({1: good, BIG_ID: mesh})
    assert f"row {BIG_ID}" in str(err.value) and value in str(err.value)


def test_quantization_bits_must_be_10_or_16():
    with pytest.raises(ValueError, match="10 or 16"):
        encode_multires_meshes({1: trimesh.creation.box()}, vertex_quantization_bits=12)


@pytest.mark.parametrize("n_frags", [5, 70_000])  # 70,000: too many for one uint64 key
def test_unique_corners_both_ways_agree(n_frags):
    from nglive.formats.multires_mesh import _unique_corners

    rng = np.random.default_rng(1)
    frag_key = np.sort(rng.choice(10**6, n_frags, replace=False)).astype(np.uint64)
    frag_key = np.repeat(frag_key, 2)  # two faces per fragment
    local = rng.integers(0, 4, (3 * len(frag_key), 3))  # repeats within fragments
    rows, inverse = _unique_corners(frag_key, local, 16)
    expect = np.concatenate([np.repeat(frag_key, 3)[:, None].astype(np.int64), local], axis=1)
    uniq, inv = np.unique(expect, axis=0, return_inverse=True)
    np.testing.assert_array_equal(rows, uniq)
    np.testing.assert_array_equal(inverse, inv.ravel())


def test_sharded_manifests_have_their_fragments_just_before_them():
    from tensorstore_shards import read_with_tensorstore

    meshes = {BIG_ID: SPHERE, 2**64 - 1: trimesh.creation.box(), 6: trimesh.creation.icosphere()}
    plain = encode_multires_meshes(meshes, num_lods=3)
    files = encode_multires_meshes(meshes, num_lods=3, sharding=True)
    sharding = json.loads(files["info"])["sharding"]
    assert sharding["data_encoding"] == "raw"  # fragments are read by byte range
    assert json.loads(files["info"])["@type"] == "neuroglancer_multilod_draco"
    shards = {k: v for k, v in files.items() if k != "info"}
    assert shards and all(k.endswith(".shard") for k in shards)
    _, read = read_with_tensorstore(shards, sharding, list(meshes), listing=False)
    for sid in meshes:
        manifest = read[sid]
        assert manifest == plain[f"{sid}.index"]  # the key reads the manifest alone
        size = int(sum(s.sum() for s in decode_manifest(manifest)["sizes"]))
        (shard,) = [v for v in shards.values() if manifest in v]
        at = shard.index(manifest)
        assert shard[at - size:at] == plain[str(sid)]


def test_cache_re_encodes_only_edited_meshes(monkeypatch):
    import nglive.formats.multires_mesh as mm

    calls = []
    real = mm.encode_multires_mesh
    monkeypatch.setattr(mm, "encode_multires_mesh",
                        lambda v, f, **kw: calls.append(len(f)) or real(v, f, **kw))
    cache: dict = {}
    meshes = {1: trimesh.creation.box(), 2: trimesh.creation.icosphere(), 3: SPHERE}
    first = encode_multires_meshes(meshes, cache=cache)
    assert len(calls) == 3
    moved = trimesh.creation.icosphere().apply_translation((5, 0, 0))
    again = encode_multires_meshes({**meshes, 2: moved}, cache=cache)
    assert len(calls) == 4  # only the moved one
    assert again["3"] == first["3"]
    # (fragments are relative to the grid, so a moved mesh changes its manifest only)
    assert again["2.index"] != first["2.index"]
    assert again == encode_multires_meshes({**meshes, 2: moved})  # same bytes as fresh
    encode_multires_meshes({1: meshes[1]}, cache=cache)
    assert len(cache) == 1  # dropped meshes leave the cache
