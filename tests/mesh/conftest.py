"""Fixtures for the mesh tests: point clouds with known volumes, shared triangulations."""

from __future__ import annotations

import numpy as np
import pytest
from mesh_shapes import ball, solid_torus


@pytest.fixture(scope="session")
def torus_points() -> np.ndarray:
    return solid_torus(20_000)


@pytest.fixture(scope="session")
def ball_points() -> np.ndarray:
    return ball(20_000)


@pytest.fixture(scope="session")
def torus_shaper(torus_points):
    from nglive.mesh import AlphaShaper

    return AlphaShaper(torus_points)


@pytest.fixture(scope="session")
def small_cloud() -> np.ndarray:
    return solid_torus(1500, seed=3)
