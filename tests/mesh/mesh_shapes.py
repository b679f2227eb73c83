"""Point clouds with known volumes, shared by the mesh tests and nothing else."""

from __future__ import annotations

import numpy as np


def solid_torus(n: int, major: float = 3.0, minor: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` points uniform in a solid torus; volume ``2 pi^2 R r^2``."""
    rng = np.random.default_rng(seed)
    out, have = [], 0
    while have < n:
        p = rng.uniform([-major - minor] * 2 + [-minor], [major + minor] * 2 + [minor], (n, 3))
        q = np.hypot(p[:, 0], p[:, 1]) - major
        p = p[q**2 + p[:, 2] ** 2 < minor**2]
        out.append(p)
        have += len(p)
    return np.concatenate(out)[:n]


def ball(n: int, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """``n`` points uniform in a ball; volume ``4/3 pi r^3``."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    return d * radius * rng.random(n)[:, None] ** (1 / 3)


def sphere_shell(n: int, inner: float, outer: float, seed: int = 0) -> np.ndarray:
    """``n`` points uniform in a thick spherical shell."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    r = (inner**3 + rng.random(n) * (outer**3 - inner**3)) ** (1 / 3)
    return d * r[:, None]


TORUS_VOLUME = 2 * np.pi**2 * 3.0 * 1.0**2
BALL_VOLUME = 4 / 3 * np.pi
