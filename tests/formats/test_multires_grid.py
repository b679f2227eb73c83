"""Cutting meshes on a grid: no piece crosses a plane, nothing is lost or flipped."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from nglive.formats.multires_grid import split_on_grid


def areas_and_normals(vertices, faces):
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return np.linalg.norm(cross, axis=1) / 2, cross


@pytest.mark.parametrize("snap", [0.0, 0.01])
def test_big_triangles_are_cut_at_every_plane(snap):
    rng = np.random.default_rng(2)
    vertices = rng.uniform(-10, 10, (30, 3))
    faces = rng.integers(0, 30, (40, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
                  & (faces[:, 0] != faces[:, 2])]
    origin, spacing = np.array([-10.0, -10.0, -10.0]), np.array([1.5, 2.0, 2.5])
    v, f = split_on_grid(vertices, faces, origin, spacing, snap=snap)
    tri = v[f]
    cell_lo = np.floor((tri.min(axis=1) - origin) / spacing + 1e-9)
    cell_hi = np.ceil((tri.max(axis=1) - origin) / spacing - 1e-9)
    assert np.all(cell_hi - cell_lo <= 1), "a piece still crosses a plane"
    area, _ = areas_and_normals(vertices, faces)
    piece_area, _ = areas_and_normals(v, f)
    if snap == 0:
        assert piece_area.sum() == pytest.approx(area.sum(), rel=1e-9)
        assert len(f) > 5 * len(faces)


def test_a_closed_mesh_stays_closed_and_oriented():
    # vertices a rounding error off a plane (y = 3.5000000000000004) are snapped onto
    # it, as the encoder does; cutting there would leave zero-area slivers
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=7.0)
    v, f = split_on_grid(sphere.vertices, sphere.faces, np.full(3, -7.0), np.full(3, 1.75),
                         snap=1.75 * 2**-13)
    cut = trimesh.Trimesh(v, f)  # merges the vertices the cuts share
    assert len(cut.faces) > 2 * len(sphere.faces)
    assert cut.area_faces.min() > 1e-9
    assert cut.is_watertight and cut.is_winding_consistent
    assert cut.volume == pytest.approx(sphere.volume, rel=1e-4)
