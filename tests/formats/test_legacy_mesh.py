"""Legacy mesh encoder: decoded back exactly, manifests as the spec describes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from nglive.formats.legacy_mesh import decode_fragment, encode_legacy_meshes
from nglive.formats.validation import TableError

BIG_ID = 720575940379279361  # above 2**53: must survive exactly


def test_round_trip_vertices_and_faces():
    box = trimesh.creation.box(extents=(2, 3, 4))
    sphere = trimesh.creation.icosphere(subdivisions=2)
    files = encode_legacy_meshes({5: box, BIG_ID: sphere})
    assert json.loads(files["info"]) == {"@type": "neuroglancer_legacy_mesh"}
    for sid, mesh in [(5, box), (BIG_ID, sphere)]:
        manifest = json.loads(files[f"{sid}:0"])
        (frag,) = manifest["fragments"]
        vertices, faces = decode_fragment(files[frag])
        np.testing.assert_allclose(vertices, mesh.vertices.astype(np.float32))
        np.testing.assert_array_equal(faces, mesh.faces)


def test_fragment_byte_layout():
    data = encode_legacy_meshes({1: (np.eye(3), [[0, 1, 2]])})["fragment/1"]
    assert len(data) == 4 + 3 * 12 + 12
    assert int.from_bytes(data[:4], "little") == 3
    assert np.frombuffer(data[4:40], "<f4").tolist() == np.eye(3).ravel().tolist()
    assert np.frombuffer(data[40:], "<u4").tolist() == [0, 1, 2]


def test_string_and_numpy_ids_are_exact():
    files = encode_legacy_meshes({str(BIG_ID): trimesh.creation.box(),
                                  np.uint64(2**64 - 1): trimesh.creation.box()})
    assert f"{BIG_ID}:0" in files
    assert f"{2**64 - 1}:0" in files


@pytest.mark.parametrize(
    "meshes, match",
    [
        ({-1: trimesh.creation.box()}, "negative id"),
        ({"abc": trimesh.creation.box()}, "not an integer id"),
        ({1: (np.zeros((3, 2)), [[0, 1, 2]])}, r"vertices have shape \(3, 2\)"),
        ({1: (np.zeros((3, 3)), [[0, 1, 5]])}, "vertex that does not exist"),
        ({1: (np.full((3, 3), np.nan), [[0, 1, 2]])}, "not finite"),
        ({1: "not a mesh"}, "neither a trimesh"),
        ({1: trimesh.creation.box(), "1": trimesh.creation.box()}, "repeat"),
    ],
)
def test_bad_meshes_name_what_is_wrong(meshes, match):
    with pytest.raises(TableError, match=match):
        encode_legacy_meshes(meshes)
