"""How an alpha shape changes with alpha: critical alphas and a sampled table for a plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .search import start_alpha

__all__ = ["Spectrum", "default_alphas", "spectrum"]


@dataclass(frozen=True)
class Spectrum:
    """Critical alphas and per-alpha facts.

    Attributes
    ----------
    critical_alphas : numpy.ndarray
        Sorted distinct circumradii: the shape changes just above each one.
    cover_alpha : float
        Smallest alpha with every point inside.
    table : pandas.DataFrame
        One row per sampled alpha with the :class:`~nglive.mesh.AlphaReport` columns.
    """

    critical_alphas: np.ndarray
    cover_alpha: float
    table: pd.DataFrame


def spectrum(shaper, alphas=None, *, n: int = 48) -> Spectrum:
    """Volume, area, watertightness and components over a range of alphas.

    Parameters
    ----------
    shaper : AlphaShaper
    alphas : array_like, optional
        Alphas to sample. By default ``n`` log-spaced values from half the tracertools
        start alpha to twice the larger of the cover alpha and 1.5**6 x the start alpha,
        capped at the largest finite circumradius.
    n : int
        Number of default samples.

    Returns
    -------
    Spectrum

    Examples
    --------
    >>> import numpy as np
    >>> from nglive.mesh import AlphaShaper
    >>> s = spectrum(AlphaShaper(np.random.default_rng(0).normal(size=(500, 3))), n=8)
    >>> list(s.table.columns[:3]), len(s.table)
    (['alpha', 'n_faces', 'watertight'], 8)
    """
    t = shaper.triangulation
    if alphas is None:
        alphas = default_alphas(shaper, n)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    rows = [shaper.report(float(a)).to_dict() for a in alphas]
    return Spectrum(
        critical_alphas=t.critical_alphas,
        cover_alpha=t.cover_alpha,
        table=pd.DataFrame(rows),
    )


def default_alphas(shaper, n: int = 48) -> np.ndarray:
    """The alphas :func:`spectrum` samples by default (cheap: no surface is built).

    ``n`` log-spaced values from half the tracertools start alpha to twice the larger
    of the cover alpha and 1.5**6 x the start alpha, capped at the largest finite
    circumradius.
    """
    t = shaper.triangulation
    a0 = start_alpha(t.points)
    crit = t.critical_alphas
    top = float(crit[-1]) * 1.0001 if crit.size else a0 * 100
    lo = a0 / 2 if a0 > 0 else float(crit[0])
    hi = min(2 * max(t.cover_alpha, a0 * 1.5**6), top)
    return np.geomspace(lo, max(hi, lo * 1.01), n)
