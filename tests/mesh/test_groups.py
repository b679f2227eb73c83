"""mesh_from_groups: per-group meshes, union, smoothing, decimation, OBJ, bad groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import trimesh
from mesh_shapes import ball, solid_torus

from nglive.formats.validation import TableError
from nglive.mesh import (
    AlphaShaper,
    GroupMeshError,
    decimate,
    mesh_from_groups,
    smooth,
    surface_check,
    union_meshes,
)


def frame(**groups) -> pd.DataFrame:
    parts = [
        pd.DataFrame(p, columns=["x", "y", "z"]).assign(layer=name) for name, p in groups.items()
    ]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def three():
    # a torus, a ball overlapping it, and a separate ball
    return frame(
        torus=solid_torus(4000, seed=1),
        blob=ball(2000, radius=1.2, seed=2) + [3.0, 0, 0],
        far=ball(1500, seed=3) + [0, 0, 8.0],
    )


def test_one_mesh_per_group_matches_shaper(three):
    meshes = mesh_from_groups(three, "layer")
    assert list(meshes) == ["torus", "blob", "far"]
    for name, mesh in meshes.items():
        pts = three.loc[three.layer == name, ["x", "y", "z"]].to_numpy()
        shaper = AlphaShaper(pts)
        alpha = shaper.auto_alpha()
        assert mesh.metadata["alpha"] == alpha and mesh.metadata["group"] == name
        assert mesh.metadata["n_points"] == len(pts)
        assert mesh.is_volume and surface_check(mesh.faces).is_manifold
        assert mesh.volume == pytest.approx(shaper.report(alpha, repair=True).volume, rel=1e-9)


def test_alphas_per_group(three):
    meshes = mesh_from_groups(three, "layer", alphas={"blob": "optimal", "far": 5.0})
    assert meshes["far"].metadata["alpha"] == 5.0
    blob = AlphaShaper(three.loc[three.layer == "blob", ["x", "y", "z"]])
    assert meshes["blob"].metadata["alpha"] == blob.optimal_alpha()


def test_union_of_groups(three):
    meshes = mesh_from_groups(three, "layer")
    merged = mesh_from_groups(three, "layer", union=True)
    assert merged.metadata["groups"] == ["torus", "blob", "far"]
    assert surface_check(merged.faces).is_manifold and merged.is_volume
    total = sum(m.volume for m in meshes.values())
    # torus and blob overlap: union smaller than the sum, bigger than any part
    assert max(m.volume for m in meshes.values()) < merged.volume < total
    far_alone = meshes["far"].volume
    both = union_meshes([meshes["torus"], meshes["blob"]]).volume
    assert merged.volume == pytest.approx(both + far_alone, rel=1e-6)
    assert len(merged.split(only_watertight=False)) == 2


def test_union_refuses_invalid_volume():
    t = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    pinched = trimesh.Trimesh(
        np.random.default_rng(0).random((7, 3)),
        np.concatenate([t, np.where(t == 0, 0, t + 3)]),
        process=False,
    )
    with pytest.raises(ValueError, match=r"\['bad'\] are not closed 2-manifolds"):
        union_meshes({"good": trimesh.creation.box(), "bad": pinched})


def test_smoothing_and_decimation_keep_a_volume(three):
    plain = mesh_from_groups(three, "layer")["torus"]
    done = mesh_from_groups(three, "layer", smoothing=10, reduction=0.5)["torus"]
    assert done.is_volume and surface_check(done.faces).is_manifold
    assert len(done.faces) <= 0.55 * len(plain.faces)
    assert done.volume == pytest.approx(plain.volume, rel=0.1)
    assert done.metadata["decimated"] is True


def test_decimate_falls_back_when_result_is_invalid(monkeypatch):
    import fast_simplification

    box = trimesh.creation.icosphere(subdivisions=2)

    def broken(points, faces, target_reduction):  # leaves an open surface
        return points, faces[: len(faces) // 2]

    monkeypatch.setattr(fast_simplification, "simplify", broken)
    with pytest.warns(UserWarning, match="did not give a valid volume"):
        out = decimate(box, 0.5)
    assert len(out.faces) == len(box.faces) and out.metadata["decimated"] is False


def test_smooth_keeps_topology():
    mesh = AlphaShaper(solid_torus(2000, seed=4)).mesh(0.6, repair=True)
    out = smooth(mesh, 10)
    assert np.array_equal(out.faces, mesh.faces) and out.is_volume


def test_obj_export(three, tmp_path):
    mesh_from_groups(three, "layer", union=True, obj_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blob.obj",
        "far.obj",
        "torus.obj",
        "union.obj",
    ]
    back = trimesh.load(tmp_path / "torus.obj", force="mesh")
    assert back.is_volume


def test_bad_groups_are_named_and_others_still_mesh(three):
    bad = pd.concat(
        [
            three,
            frame(tiny=np.zeros((3, 3))),
            frame(flat=np.c_[np.random.default_rng(0).random((30, 2)), np.zeros(30)]),
        ],
        ignore_index=True,
    )
    bad.loc[bad.index[bad.layer == "far"][3], "x"] = np.nan
    with pytest.raises(GroupMeshError) as info:
        mesh_from_groups(bad, "layer")
    err = info.value
    assert sorted(err.errors) == ["far", "flat", "tiny"]
    assert sorted(err.meshes) == ["blob", "torus"]
    msg = str(err)
    assert "group 'tiny': an alpha shape needs at least 4 points" in msg
    assert "group 'flat'" in msg and "one plane" in msg
    assert "group 'far'" in msg and "NaN" in msg
    with pytest.warns(UserWarning, match="3 group"):
        ok = mesh_from_groups(bad, "layer", on_error="warn")
    assert sorted(ok) == ["blob", "torus"]


def test_missing_columns_and_labels(three):
    with pytest.raises(TableError, match="'z'"):
        mesh_from_groups(three.drop(columns="z"), "layer")
    unlabelled = three.copy()
    unlabelled.loc[5, "layer"] = None
    with pytest.raises(TableError, match="row 5"):
        mesh_from_groups(unlabelled, "layer")
