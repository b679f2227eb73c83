"""surface_check: watertightness, non-manifold edges, pinched vertices, components."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from mesh_shapes import solid_torus, sphere_shell

from nglive.mesh import AlphaShaper, surface_check
from nglive.mesh.checks import count_components, is_closed_manifold

TET = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])


def test_closed_manifold():
    ico = trimesh.creation.icosphere(subdivisions=2)
    chk = surface_check(ico.faces)
    assert chk.watertight and chk.winding_consistent and chk.is_manifold
    assert chk.n_components == 1
    assert chk.non_manifold_edges.shape == (0, 2)


def test_two_tetrahedra_sharing_a_vertex_are_pinched():
    faces = np.concatenate([TET, np.where(TET == 0, 0, TET + 3)])
    mesh = trimesh.Trimesh(np.random.default_rng(0).random((7, 3)), faces, process=False)
    assert mesh.is_watertight  # trimesh does not see the pinch
    chk = surface_check(faces)
    assert chk.watertight and not chk.is_manifold
    assert chk.pinched_vertices.tolist() == [0]
    assert chk.n_components == 1  # joined through the vertex, as trimesh's body_count


def test_two_tetrahedra_sharing_an_edge_are_not_watertight():
    other = np.choose(TET, [0, 1, 4, 5])  # vertices 0 and 1 shared
    faces = np.concatenate([TET, other])
    chk = surface_check(faces)
    assert not chk.watertight and not chk.is_manifold
    assert chk.non_manifold_edges.tolist() == [[0, 1]]


def test_open_surface_and_flipped_face():
    chk = surface_check(TET[:3])
    assert not chk.watertight
    assert len(chk.non_manifold_edges) == 3  # the open rim
    flipped = TET.copy()
    flipped[0] = flipped[0, [0, 2, 1]]
    chk = surface_check(flipped)
    assert chk.watertight and not chk.winding_consistent and not chk.is_manifold


def test_empty():
    chk = surface_check(np.zeros((0, 3), dtype=int))
    assert chk.n_components == 0


def test_components_match_trimesh_body_count():
    shaper = AlphaShaper(solid_torus(1500, seed=9))
    for alpha in np.quantile(shaper.critical_alphas, [0.05, 0.2, 0.4, 0.7]):
        mesh = shaper.mesh(alpha)
        ref = trimesh.Trimesh(mesh.vertices, mesh.faces)  # processed like tracertools
        assert count_components(mesh.faces) == ref.body_count
        assert surface_check(mesh.faces).watertight == ref.is_watertight


def pinched_by_brute_force(faces: np.ndarray) -> list[int]:
    """Vertices whose link (the edges opposite them) falls apart into several loops.

    A plain per-vertex walk, independent of nglive's vectorised check: on a watertight
    surface a vertex is a manifold point exactly when its link is one connected loop.
    """
    link: dict[int, list[tuple[int, int]]] = {}
    for a, b, c in faces.tolist():
        link.setdefault(a, []).append((b, c))
        link.setdefault(b, []).append((c, a))
        link.setdefault(c, []).append((a, b))
    pinched = []
    for v, edges in link.items():
        parent: dict[int, int] = {}
        for x, y in edges:
            parent[_root(parent, x)] = _root(parent, y)
        if len({_root(parent, x) for e in edges for x in e}) > 1:
            pinched.append(v)
    return sorted(pinched)


def _root(parent: dict[int, int], x: int) -> int:
    while parent.setdefault(x, x) != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def test_pinched_vertices_agree_with_brute_force():
    shaper = AlphaShaper(solid_torus(3000, seed=8))
    checked = 0
    for alpha in np.geomspace(0.2, 0.6, 25):
        mesh = shaper.mesh(alpha)
        chk = surface_check(mesh.faces)
        if not chk.watertight or len(mesh.faces) == 0:
            continue
        assert sorted(chk.pinched_vertices.tolist()) == pinched_by_brute_force(mesh.faces), alpha
        checked += 1
    assert checked > 0
    faces = np.concatenate([TET, np.where(TET == 0, 0, TET + 3)])  # two tets, one vertex
    assert pinched_by_brute_force(faces) == [0]
    assert surface_check(faces).pinched_vertices.tolist() == [0]


def test_fast_yes_no_agrees_with_full_check():
    shaper = AlphaShaper(solid_torus(3000, seed=8))
    answers = set()
    for alpha in np.geomspace(0.2, 2.0, 40):
        faces = shaper.faces(alpha)
        full = surface_check(faces).is_manifold and len(faces) > 0
        assert is_closed_manifold(faces) == full, alpha
        answers.add(full)
    assert answers == {True, False}
    faces = np.concatenate([TET, np.where(TET == 0, 0, TET + 3)])
    assert not is_closed_manifold(faces) and not is_closed_manifold(TET[:3])


def test_report_components_area_and_solids_agree_with_trimesh_and_count_solids():
    from nglive.mesh.checks import check_with_solids, count_solids

    shaper = AlphaShaper(solid_torus(1500, seed=9))
    t = shaper.triangulation
    for alpha in np.quantile(shaper.critical_alphas, [0.05, 0.2, 0.4, 0.7, 0.95]):
        mesh = shaper.mesh(alpha)
        ref = trimesh.Trimesh(mesh.vertices, mesh.faces)
        rep = shaper.report(alpha)
        assert rep.n_components == ref.body_count
        assert rep.area == pytest.approx(mesh.area, rel=1e-9)
        faces = t.boundary(alpha)
        chk, solids = check_with_solids(faces, t.points)
        assert solids == count_solids(faces, t.points)
        assert chk.n_components == count_components(faces)


def test_pinched_among_agrees_with_the_whole_surface_check():
    from nglive.mesh.checks import pinched_among

    faces = np.concatenate([TET, np.where(TET == 0, 0, TET + 3)])  # pinched at 0
    assert pinched_among(faces, np.array([0]), 7).tolist() == [0]
    assert pinched_among(faces, np.array([1, 4]), 7).tolist() == []
    rng = np.random.default_rng(0)
    seen = 0
    for pts in (sphere_shell(3000, 0.8, 1.0, seed=1), sphere_shell(5000, 0.9, 1.0, seed=2)):
        shaper = AlphaShaper(pts)
        n = len(shaper.triangulation.points)
        crit = shaper.critical_alphas[np.isfinite(shaper.critical_alphas)]
        for alpha in np.quantile(crit, np.linspace(0.3, 0.99, 60)):
            faces = shaper.triangulation.boundary(alpha)
            chk = surface_check(faces, n, components=False)
            if not chk.watertight or len(faces) == 0:
                continue
            pinched = chk.pinched_vertices
            asked = np.unique(np.concatenate([pinched, rng.choice(np.unique(faces), 30)]))
            assert sorted(pinched_among(faces, asked, n).tolist()) == sorted(pinched.tolist())
            seen += pinched.size
    assert seen > 0  # the sweep did meet pinched vertices
