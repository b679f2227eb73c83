"""add_meshes(format="multires") through the real viewer, store and HTTP server."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import trimesh

import nglive
from nglive import live
from nglive.demo_data import demo_meshes, demo_table

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from multires_spec_decoder import decode_fragments, decode_manifest  # noqa: E402

BIG_ID = 720575940379279361


@pytest.fixture
def viewer():
    v = nglive.Viewer(log_requests=True)
    yield v
    v.close()


def mesh_url(viewer, name) -> str:
    return viewer.state.layers[name].source[0].url.removeprefix("precomputed://")


def get(url: str, byte_range: tuple[int, int] | None = None) -> bytes:
    request = urllib.request.Request(url)
    if byte_range:
        request.add_header("Range", f"bytes={byte_range[0]}-{byte_range[1] - 1}")
    with urllib.request.urlopen(request) as response:
        return response.read()


def served_lod0(viewer, name, sid) -> trimesh.Trimesh:
    """Fetch a segment as Neuroglancer does (manifest, then fragments by byte range)."""
    base = mesh_url(viewer, name)
    manifest = decode_manifest(get(f"{base}/{sid}.index"))
    sizes = np.concatenate(manifest["sizes"]).astype(np.int64)
    ends = np.cumsum(sizes)
    data = b"".join(get(f"{base}/{sid}", (int(e - s), int(e)))
                    for s, e in zip(sizes, ends, strict=True) if s)
    parts = [trimesh.Trimesh(model, faces, process=False)
             for lod, _, _, model, faces in decode_fragments(manifest, data, 16) if lod == 0]
    return trimesh.util.concatenate(parts)


def test_multires_meshes_are_served_with_their_properties(viewer):
    meshes = demo_meshes()
    table = demo_table(meshes)
    layer = viewer.add_meshes("shapes", meshes, table, label_col="name", format="multires")
    assert layer.generations == {"mesh": 0, "properties": 0}
    info = json.loads(get(mesh_url(viewer, "shapes") + "/info"))
    assert info["@type"] == "neuroglancer_multilod_draco"
    assert {int(s) for s in viewer.state.layers["shapes"].segments} == set(meshes)
    for sid, mesh in meshes.items():
        fine = served_lod0(viewer, "shapes", sid)
        assert fine.area == pytest.approx(mesh.area, rel=1e-4)
    props = json.loads(get(viewer.state.layers["shapes"].source[1].url.removeprefix(
        "precomputed://") + "/info"))
    assert props["inline"]["ids"] == [str(i) for i in table["segment_id"]]


def test_big_ids_and_voxel_units(viewer):
    box = trimesh.creation.box(extents=(1, 1, 1))
    viewer.add_meshes("vox", {BIG_ID: box}, format="multires",
                      coord_space={"x": [8, "nm"], "y": [8, "nm"], "z": [40, "nm"]})
    fine = served_lod0(viewer, "vox", BIG_ID)
    np.testing.assert_allclose(fine.bounds, [[-4, -4, -20], [4, 4, 20]], atol=1e-3)


def test_edits_regenerate_and_bad_meshes_keep_the_last_good_data(viewer):
    meshes = {1: trimesh.creation.icosphere(radius=10.0)}
    layer = viewer.add_meshes("m", meshes, format="multires")
    before = get(mesh_url(viewer, "m") + "/1.index")
    meshes[1] = trimesh.creation.icosphere(radius=20.0)
    live.check_all()
    layer.wait()
    assert layer.generations["mesh"] == 1
    assert served_lod0(viewer, "m", 1).bounds[1, 0] == pytest.approx(20.0, abs=1e-3)
    bad = np.array(meshes[1].vertices)
    bad[5, 2] = np.nan
    with pytest.raises(nglive.TableError, match="not finite"):
        layer.update(meshes={1: meshes[1], 2: (bad, meshes[1].faces)})
    assert layer.generations["mesh"] == 1  # nothing written
    assert get(mesh_url(viewer, "m") + "/1.index") != before
    assert served_lod0(viewer, "m", 1).bounds[1, 0] == pytest.approx(20.0, abs=1e-3)


def test_unknown_format_is_refused(viewer):
    with pytest.raises(ValueError, match="format must be one of"):
        viewer.add_meshes("m", {1: trimesh.creation.box()}, format="draco")


def test_an_edit_re_encodes_only_the_edited_mesh(viewer, monkeypatch):
    import nglive.formats.multires_mesh as mm

    calls = []
    real = mm.encode_multires_mesh
    monkeypatch.setattr(mm, "encode_multires_mesh",
                        lambda v, f, **kw: calls.append(len(f)) or real(v, f, **kw))
    meshes = {i: trimesh.creation.icosphere(radius=10.0 * i) for i in (1, 2, 3)}
    layer = viewer.add_meshes("m", meshes, format="multires")
    assert len(calls) == 3
    meshes[2] = trimesh.creation.box(extents=(5, 5, 5))
    live.check_all()
    layer.wait()
    assert layer.generations["mesh"] == 1 and len(calls) == 4
    assert len(served_lod0(viewer, "m", 2).faces) == 12
    assert served_lod0(viewer, "m", 3).area == pytest.approx(meshes[3].area, rel=1e-4)
