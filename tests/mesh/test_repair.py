"""Repair: growing a shape into a valid volume, and filling sealed cavities."""

from __future__ import annotations

import numpy as np
import pytest
from mesh_shapes import BALL_VOLUME, solid_torus, sphere_shell

from nglive.mesh import AlphaShaper, surface_check
from nglive.mesh.repair import fill_cavities, repair_manifold


@pytest.fixture(scope="module")
def shaper():
    return AlphaShaper(solid_torus(3000, seed=5))


def _pair(t, shared: int):
    """Two tetrahedra of the triangulation sharing exactly ``shared`` vertices."""
    tet = t.tetra
    for i in range(len(tet)):
        n = np.isin(tet, tet[i]).sum(axis=1)
        j = np.flatnonzero(n == shared)
        if j.size:
            kept = np.zeros(len(tet), dtype=bool)
            kept[[i, j[0]]] = True
            return kept
    raise AssertionError("no such pair")


@pytest.mark.parametrize(("shared", "defect"), [(1, "pinched"), (2, "edge")])
def test_repair_makes_constructed_defect_a_volume(shaper, shared, defect):
    t = shaper.triangulation
    kept = _pair(t, shared)
    before = surface_check(t.boundary_of(kept))
    if defect == "pinched":
        assert before.watertight and before.pinched_vertices.size == 1
    else:
        assert not before.watertight and len(before.non_manifold_edges) == 1
    fixed, added = repair_manifold(t, kept)
    assert added > 0 and np.all(fixed >= kept)
    assert surface_check(t.boundary_of(fixed)).is_manifold


def test_repair_at_non_manifold_alphas(shaper):
    defective = []
    for alpha in np.geomspace(0.25, 0.8, 16):
        rep = shaper.report(alpha)
        if rep.n_faces and not rep.is_volume:
            defective.append((alpha, rep))
    assert defective, "expected some non-manifold alphas on a 3k-point torus"
    for alpha, raw in defective:
        fixed = shaper.report(alpha, repair=True)
        assert fixed.is_volume, alpha
        assert fixed.volume >= raw.volume and fixed.points_outside <= raw.points_outside
        mesh = shaper.mesh(alpha, repair=True)
        assert mesh.is_volume and mesh.volume == pytest.approx(fixed.volume, rel=1e-9)


def test_fill_cavities_of_a_hollow_shell():
    shaper = AlphaShaper(sphere_shell(6000, 0.6, 1.0, seed=3))
    alpha = shaper.optimal_alpha()
    raw = shaper.report(alpha)
    assert raw.n_solids == 1 and raw.n_components == 2  # outer surface + inner wall
    filled = shaper.report(alpha, fill_cavities=True)
    assert filled.n_components == 1 and filled.is_volume
    cavity = filled.volume - raw.volume
    assert cavity == pytest.approx(BALL_VOLUME * 0.6**3, rel=0.35)
    # only sealed pockets are filled: the result is a subset of the convex hull
    t = shaper.triangulation
    kept = fill_cavities(t, t.kept(alpha))
    assert kept.sum() < len(t.tetra)
    assert filled.volume < shaper.report(t.critical_alphas[-1] * 2).volume
