"""Input validation and degenerate input (co-spherical, lattice) for the triangulation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from mesh_shapes import solid_torus
from scipy.spatial import ConvexHull

from nglive.mesh import AlphaShapeInputError, AlphaShaper

# 12k points exactly on a sphere (a sampled sphere surface): scipy's Qhull on these took
# 7.6 s at 4k points on the development machine and grows faster than n^2; with the
# package's jitter the same input triangulates in well under a second.
COSPHERICAL = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(7)
    p = rng.normal(size=(12_000, 3))
    p /= np.linalg.norm(p, axis=1)[:, None]
    """
)


def run_python(code: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


def test_cospherical_points_do_not_hang_qhull():
    # the time bound is the subprocess timeout; the control run shows the input is one
    # that plain Qhull cannot handle within a much larger share of that bound
    with pytest.raises(subprocess.TimeoutExpired):
        run_python(COSPHERICAL + "from scipy.spatial import Delaunay; Delaunay(p)", timeout=5)
    code = COSPHERICAL + textwrap.dedent(
        """
        from nglive.mesh import AlphaShaper
        s = AlphaShaper(p)
        r = s.report(10.0)
        assert r.is_volume and r.points_outside == 0, r
        assert np.isin(s.points.view('f8,f8,f8'), p.view('f8,f8,f8')).all()
        print('ok', len(s.triangulation.tetra))
        """
    )
    out = run_python(code, timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


def lattice_ball(radius: int) -> np.ndarray:
    g = np.mgrid[-radius : radius + 1, -radius : radius + 1, -radius : radius + 1]
    g = g.reshape(3, -1).T.astype(float)
    return g[np.linalg.norm(g, axis=1) <= radius]


def test_lattice_points_give_watertight_volume_with_original_coordinates():
    pts = lattice_ball(7)  # integer voxel coordinates: every cube is co-spherical
    shaper = AlphaShaper(pts)
    alpha = shaper.auto_alpha()
    rep = shaper.report(alpha)
    assert rep.watertight and rep.n_components == 1
    mesh = shaper.mesh(alpha)
    assert np.array_equal(mesh.vertices, np.round(mesh.vertices))  # not jittered
    hull = ConvexHull(pts).volume
    assert rep.volume == pytest.approx(hull, rel=0.1)
    assert rep.volume <= hull * (1 + 1e-9)


def test_lattice_cube_is_its_convex_hull():
    g = np.mgrid[0:6, 0:6, 0:6].reshape(3, -1).T.astype(float)
    shaper = AlphaShaper(g)
    alpha = shaper.optimal_alpha()
    rep = shaper.report(alpha)
    assert rep.is_volume and rep.points_outside == 0
    # the shape of a filled lattice is the box itself at alpha just above sqrt(3)/2
    assert rep.volume == pytest.approx(125.0, rel=1e-9)
    assert alpha == pytest.approx(np.sqrt(3) / 2, rel=1e-6)


def test_jitter_is_deterministic():
    pts = solid_torus(2000, seed=4)
    a, b = AlphaShaper(pts), AlphaShaper(pts.copy())
    assert np.array_equal(a.triangulation.tetra, b.triangulation.tetra)
    assert np.array_equal(a.triangulation.radius, b.triangulation.radius)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.zeros((3, 3)), "at least 4 points"),
        (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]]), "at least 4 distinct points"),
        (np.random.default_rng(0).random((10, 2)), r"\(n, 3\).*shape \(10, 2\).*add a z column"),
        (np.random.default_rng(0).random(30), r"\(n, 3\).*shape \(30,\)"),
        (np.c_[np.random.default_rng(0).random((20, 2)), np.zeros(20)], "lie in one plane"),
        ([["a", "b", "c"]] * 5, "array of numbers"),
    ],
)
def test_bad_input_is_named(points, message):
    with pytest.raises(AlphaShapeInputError, match=message):
        AlphaShaper(points, name="group 'b'")
    with pytest.raises(ValueError, match="group 'b'"):
        AlphaShaper(points, name="group 'b'")


def test_nan_rows_are_named_by_index_label():
    df = pd.DataFrame(solid_torus(50, seed=1), columns=list("xyz"), index=range(100, 150))
    df.loc[107, "y"] = np.nan
    df.loc[120, "z"] = np.inf
    with pytest.raises(AlphaShapeInputError, match=r"2 point\(s\).*rows \[107, 120\]"):
        AlphaShaper(df)
