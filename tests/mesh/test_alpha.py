"""AlphaShaper.mesh / report and alpha_shape against brute force and analytic volumes."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from mesh_shapes import BALL_VOLUME, TORUS_VOLUME, solid_torus
from scipy.spatial import Delaunay

from nglive.mesh import AlphaShaper, alpha_shape


def brute_force_boundary(points: np.ndarray, alpha: float) -> set[tuple[int, int, int]]:
    """Boundary triangles of the tetrahedra with circumradius < alpha, by counting faces.

    Independent of the package: its own Delaunay, radii from a linear solve per tetrahedron
    (|x - p0|^2 = |x - pi|^2), faces as sorted index triples seen exactly once.
    """
    tet = Delaunay(points).simplices
    p = points[tet]
    a = p[:, 1:] - p[:, :1]  # (m, 3, 3)
    rhs = 0.5 * np.einsum("mij,mij->mi", a, a)
    centre = np.linalg.solve(a, rhs[..., None])[..., 0]
    radius = np.linalg.norm(centre, axis=1)
    kept = tet[radius < alpha]
    faces = np.sort(
        np.concatenate(
            [kept[:, [1, 2, 3]], kept[:, [0, 2, 3]], kept[:, [0, 1, 3]], kept[:, [0, 1, 2]]]
        ),
        axis=1,
    )
    uniq, count = np.unique(faces, axis=0, return_counts=True)
    return {tuple(f) for f in uniq[count == 1].tolist()}


def faces_as_input_indices(shaper: AlphaShaper, points: np.ndarray, alpha: float):
    # shaper.points are the distinct input points in lexicographic order
    perm = np.lexsort(points.T[::-1])
    assert np.array_equal(shaper.points, points[perm])
    return {tuple(f) for f in np.sort(perm[shaper.faces(alpha)], axis=1).tolist()}


def test_mesh_matches_brute_force_boundary(small_cloud):
    shaper = AlphaShaper(small_cloud)
    radii = shaper.critical_alphas
    # alphas well away from any radius, so the package's 1e-8 jitter cannot flip a test
    for q in (0.2, 0.45, 0.6, 0.75, 0.9, 0.99):
        alpha = float(np.quantile(radii, q))
        gap = np.abs(radii - alpha).min() / alpha
        if gap < 1e-6:
            alpha = float(radii[np.searchsorted(radii, alpha)] * (1 + 1e-4))
        expected = brute_force_boundary(small_cloud, alpha)
        got = faces_as_input_indices(shaper, small_cloud, alpha)
        assert got == expected, f"boundary differs at alpha={alpha}"
        assert len(expected) > 0


def test_faces_wound_outward_at_every_alpha(small_cloud):
    """Outward winding: the divergence-theorem volume of the surface equals the volume of
    the kept tetrahedra, even where the surface is not a manifold; one flipped face
    would change it."""
    shaper = AlphaShaper(small_cloud)
    for alpha in np.quantile(shaper.critical_alphas, [0.1, 0.3, 0.5, 0.7, 0.95]):
        mesh = shaper.mesh(alpha)
        rep = shaper.report(alpha)
        assert mesh.volume == pytest.approx(rep.volume, rel=1e-9, abs=1e-12)
        assert mesh.volume > 0


def test_mesh_is_compact_trimesh_with_alpha(torus_shaper):
    alpha = torus_shaper.auto_alpha()
    mesh = torus_shaper.mesh(alpha)
    assert isinstance(mesh, trimesh.Trimesh)
    assert mesh.metadata["alpha"] == alpha
    # every vertex is used, and coordinates are input points (not jittered copies)
    assert np.unique(mesh.faces).size == len(mesh.vertices)
    assert np.isin(mesh.vertices.view("f8,f8,f8"), torus_shaper.points.view("f8,f8,f8")).all()


def test_torus_watertight_and_volume_close_to_analytic(torus_shaper):
    alpha = torus_shaper.auto_alpha()
    mesh = torus_shaper.mesh(alpha)
    rep = torus_shaper.report(alpha)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.is_volume
    assert rep.watertight and rep.is_volume and rep.n_components == 1
    assert mesh.volume == pytest.approx(rep.volume, rel=1e-9)
    # interior samples shrink the solid: about -9 % at 20k points
    err = (rep.volume - TORUS_VOLUME) / TORUS_VOLUME
    assert -0.2 < err < 0.0
    # genus 1: Euler characteristic 0
    assert mesh.euler_number == 0


def test_ball_volume_close_to_analytic(ball_points):
    shaper = AlphaShaper(ball_points)
    rep = shaper.report(shaper.auto_alpha())
    assert rep.is_volume and rep.n_components == 1
    err = (rep.volume - BALL_VOLUME) / BALL_VOLUME
    assert -0.15 < err < 0.0


def test_report_on_hull_and_empty(small_cloud):
    shaper = AlphaShaper(small_cloud)
    hull = shaper.report(shaper.critical_alphas[-1] * 2)
    assert hull.watertight and hull.is_volume and hull.points_outside == 0
    assert hull.volume == pytest.approx(trimesh.convex.convex_hull(small_cloud).volume, rel=1e-6)
    empty = shaper.report(shaper.critical_alphas[0] / 2)
    assert empty.n_faces == 0 and empty.volume == 0 and empty.points_outside == len(small_cloud)
    assert not empty.is_volume


def test_points_outside_counts_uncovered_points(small_cloud):
    shaper = AlphaShaper(small_cloud)
    t = shaper.triangulation
    for alpha in np.quantile(shaper.critical_alphas, [0.05, 0.2, 0.4]):
        kept = t.tetra[t.radius < alpha]
        covered = np.zeros(len(t.points), dtype=bool)
        covered[kept.ravel()] = True
        assert shaper.report(alpha).points_outside == int((~covered).sum())
    assert shaper.report(shaper.cover_alpha).points_outside == 0
    assert shaper.report(np.nextafter(shaper.cover_alpha, 0)).points_outside > 0


def test_n_solids_matches_graph_count(small_cloud):
    shaper = AlphaShaper(small_cloud)
    t = shaper.triangulation
    for alpha in np.quantile(shaper.critical_alphas, [0.1, 0.3, 0.5, 0.8]):
        assert t.n_solids(alpha) == t.n_solids_of(t.kept(alpha))


def test_alpha_shape_convenience(small_cloud):
    auto = alpha_shape(small_cloud, "auto")
    assert auto.is_volume and auto.metadata["is_volume"]
    opt = alpha_shape(small_cloud, "optimal")
    assert opt.metadata["points_outside"] == 0 and opt.metadata["is_volume"]
    fixed = alpha_shape(small_cloud, 2.0)
    assert fixed.metadata["alpha"] == 2.0
    with pytest.raises(ValueError, match="'auto', 'optimal' or a number"):
        alpha_shape(small_cloud, "best")
    with pytest.raises(ValueError, match="positive number"):
        alpha_shape(small_cloud, -1.0)


def test_duplicates_are_merged_and_counted():
    pts = solid_torus(800, seed=5)
    dup = np.concatenate([pts, pts[:100]])
    shaper = AlphaShaper(dup)
    assert len(shaper.points) == 800
    rep = shaper.report(np.nextafter(shaper.critical_alphas[0], 0))
    assert rep.points_outside == 900
    assert rep.merged_duplicates == 100
    assert AlphaShaper(pts).report(1.0).merged_duplicates == 0


def test_cavities_count_as_surfaces_not_solids_and_can_be_filled():
    from mesh_shapes import sphere_shell

    # a thick hollow ball: one solid (CGAL's count), two surfaces (outside, cavity shell)
    shaper = AlphaShaper(sphere_shell(6000, 0.6, 1.0, seed=3))
    alpha = shaper.optimal_alpha()
    hollow = shaper.report(alpha)
    assert (hollow.n_solids, hollow.n_components) == (1, 2)
    filled = shaper.report(alpha, fill_cavities=True)
    assert (filled.n_solids, filled.n_components) == (1, 1)
    assert filled.volume > hollow.volume


def test_report_solids_agree_with_tetrahedra_graph(small_cloud):
    from mesh_shapes import sphere_shell

    for pts in (small_cloud, sphere_shell(3000, 0.6, 1.0, seed=2)):
        shaper = AlphaShaper(pts)
        t = shaper.triangulation
        seen = set()
        for alpha in np.quantile(shaper.critical_alphas, np.linspace(0.3, 0.99, 25)):
            rep = shaper.report(alpha)
            assert rep.n_solids == t.n_solids_of(t.kept(alpha)), alpha
            seen.add(rep.is_volume)
        assert seen == {True, False}
