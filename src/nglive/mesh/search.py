"""Choosing alpha: the tracertools rule (auto) and the smallest valid alpha (optimal)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial import cKDTree

from .checks import check_with_solids, count_components, pinched_among

__all__ = ["AlphaSearchWarning", "auto_alpha", "optimal_alpha", "start_alpha"]


#: Relative gap under which consecutive circumradii count as one critical alpha.
TIE_RTOL = 1e-6


class AlphaSearchWarning(UserWarning):
    """The tracertools rule found no watertight single-body alpha in its passes."""


def start_alpha(points: np.ndarray) -> float:
    """1.5 x the median distance from each point to its nearest neighbour (tracertools).

    Examples
    --------
    >>> import numpy as np
    >>> start_alpha(np.arange(12.0).reshape(4, 3))  # neighbours sqrt(27) apart
    7.794228634059948
    """
    d, _ = cKDTree(points).query(points, k=2, workers=-1)
    return 1.5 * float(np.median(d[:, 1]))


def _watertight(faces: np.ndarray, n: int) -> bool:
    """Every edge in exactly two faces (trimesh's ``is_watertight``)."""
    if faces.size == 0:
        return True
    f = faces.astype(np.int64)
    a, b = f.reshape(-1), f[:, [1, 2, 0]].reshape(-1)
    und = np.sort(np.minimum(a, b) * n + np.maximum(a, b))
    # counts of runs of equal keys must all be 2: pairs equal, neighbours of pairs differ
    if und.size % 2:
        return False
    return bool(np.all(und[0::2] == und[1::2]) and np.all(und[1:-1:2] != und[2::2]))


def auto_alpha(shaper, *, factor: float = 1.5, max_passes: int = 15) -> float:
    """The alpha tracertools' ``make_mesh_from_points`` settles on, on the cached triangulation.

    Starts at 1.5 x the median nearest-neighbour distance of the distinct input points
    (tracertools queries the raw points, where a repeated point's neighbour is at distance
    0: with many repeats it would start at 0) and multiplies alpha by ``factor`` after
    every pass whose mesh is not both watertight (every edge in two faces) and one body
    (one vertex-connected piece), for at most ``max_passes`` passes.

    When no pass succeeds, tracertools silently uses the first single-body alpha it met.
    This function does the same but warns (:class:`AlphaSearchWarning`); if no pass gave
    a single body either, it returns the last alpha tried. Either way the mesh at that
    alpha is not a valid volume: mesh it with ``repair=True`` or use :func:`optimal_alpha`.

    Parameters
    ----------
    shaper : AlphaShaper
    factor : float
        Growth per pass (tracertools: 1.5).
    max_passes : int
        Number of alphas tried (tracertools: 15).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from nglive.mesh import AlphaShaper
    >>> s = AlphaShaper(np.random.default_rng(0).normal(size=(1000, 3)))
    >>> a = auto_alpha(s)
    >>> s.report(a).watertight
    True
    """
    t = shaper.triangulation
    n = len(t.points)
    # Over the distinct points: with repeated points (voxel-grid annotations) the median
    # distance to the nearest neighbour, tracertools' start, would be 0.
    alpha = start_alpha(t.points)
    first_single = None
    tried = []
    for _ in range(max_passes):
        faces = t.boundary(alpha)
        tried.append(alpha)
        single = count_components(faces) == 1
        if single and _watertight(faces, n):
            return float(alpha)
        if single and first_single is None:
            first_single = alpha
        alpha *= factor
    chosen = first_single if first_single is not None else tried[-1]
    warnings.warn(
        f"{shaper.name}: no watertight single-body mesh in {max_passes} passes "
        f"(alpha {tried[0]:.4g} to {tried[-1]:.4g}); using alpha {chosen:.4g} like "
        "tracertools does, which is NOT a valid volume. Use optimal_alpha() or mesh with "
        "repair=True.",
        AlphaSearchWarning,
        stacklevel=3,
    )
    return float(chosen)


def _edge_manifold(t, ends: np.ndarray) -> np.ndarray:
    """For each candidate alpha ``nextafter(ends[i])``: is every edge in 0 or 2 faces?

    A triangle is on the boundary for the candidates ``[i_lo, i_hi)`` with ``ends[i_lo]
    >= r_low`` and ``ends[i_hi] >= r_high``. Per edge, summing +1/-1 at those indices
    gives its face count over the whole candidate range; the index ranges where some edge
    has 4 or more faces are marked bad.
    """
    m = ends.size
    i_lo = _count_below(ends, t.face_low)
    # face_high is the radius of one tetrahedron (or inf on the hull): count per
    # tetrahedron in sorted order, then look it up, instead of a search per face
    per_tet = np.empty(len(t.radius_sorted), dtype=np.int64)
    per_tet[t.radius_order] = _count_below(ends, t.radius_sorted)
    i_hi = np.where(t.face_high_tet >= 0, per_tet[np.maximum(t.face_high_tet, 0)], m)
    act = np.flatnonzero(i_lo < i_hi)  # on the boundary for at least one candidate
    if act.size == 0:
        return np.ones(m, dtype=bool)
    tri = t.face_tri[act].astype(np.int64)
    n = len(t.points)
    u, v = tri, tri[:, [1, 2, 0]]
    edge = (np.minimum(u, v) * n + np.maximum(u, v)).reshape(-1)  # 3 per triangle
    lo, hi = np.repeat(i_lo[act], 3), np.repeat(i_hi[act], 3)
    e, at, delta = _sorted_events(edge, lo, hi, m)
    # every +1 has its -1 on the same edge (at ``hi``, which may be ``m``), so each
    # edge's events sum to zero and the running sum restarts at zero on every edge
    count = np.cumsum(delta)
    # the count after the last event at an (edge, index) holds until that edge's next one
    last = np.r_[(e[1:] != e[:-1]) | (at[1:] != at[:-1]), True]
    e, at, count = e[last], at[last], count[last]
    nxt = np.where(np.r_[e[1:] == e[:-1], False], np.r_[at[1:], m], m)
    bad = count >= 4
    diff = np.bincount(at[bad], minlength=m + 1) - np.bincount(nxt[bad], minlength=m + 1)
    return np.cumsum(diff[:m]) == 0


def _count_below(ends: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``searchsorted(ends, values, "left")`` for sorted ``values``, by merging.

    The number of ends below ``values[f]`` is the number of ends whose own insertion
    point in ``values`` is at most ``f``: a bincount and a cumulative sum, several times
    faster than one binary search per value.
    """
    q = np.searchsorted(values, ends, "right")
    return np.cumsum(np.bincount(q, minlength=values.size + 1))[: values.size]


def _sorted_events(edge: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: int):
    """Events (edge, index, +1 at ``lo`` / -1 at ``hi``) sorted by edge, then index."""
    e_bits = int(edge.max()).bit_length()
    at_bits = int(m).bit_length()
    if e_bits + at_bits + 1 <= 63:
        # packed into one int64 and sorted by value: several times faster than an
        # argsort or a lexsort of the separate columns
        key = np.concatenate([(edge << at_bits | lo) << 1 | 1, (edge << at_bits | hi) << 1])
        key.sort()
        delta = (key & 1).astype(np.int32) * 2 - 1
        key >>= 1
        return key >> at_bits, key & ((1 << at_bits) - 1), delta
    e = np.concatenate([edge, edge])
    at = np.concatenate([lo, hi])
    delta = np.concatenate([np.ones(lo.size, np.int32), -np.ones(hi.size, np.int32)])
    order = np.lexsort((at, e))
    return e[order], at[order], delta[order]


def optimal_alpha(shaper, n_components: int = 1, *, exhaustive: bool = False) -> float:
    """The smallest alpha at which the shape is a valid volume containing every point.

    "Valid volume": at most ``n_components`` solids (face-connected groups of kept
    tetrahedra; a hollow shell is one solid), every input point inside or on the
    surface, watertight, consistently wound and without pinched vertices (solids are
    counted as the surface pieces of positive signed volume). Candidates are
    the critical alphas (just above each distinct circumradius; radii closer than
    ``TIE_RTOL`` = 1e-6 relative count as one, so an alpha never splits a class of
    equal radii such as the cubes of lattice input) from the one that covers every point
    upward. Coverage and edge-manifoldness (no edge in four or more faces) are known for
    all candidates at once from the cached triangulation (one sort over the boundary
    intervals); the remaining checks (pinched vertices, solid count) run only on probed
    candidates.

    Validity is not monotone in alpha, so by default the search gallops upward
    (1, 2, 4, ... candidates) to the first valid one, then bisects back to a candidate
    whose predecessor is invalid: the result is valid and the next smaller critical
    alpha (the previous step) is not. A smaller valid alpha between two probes can be missed;
    ``exhaustive=True`` checks every candidate in order and returns the global minimum
    (slow on large inputs).

    Parameters
    ----------
    shaper : AlphaShaper
    n_components : int
        Largest acceptable number of solids.
    exhaustive : bool
        Check every candidate instead of galloping.

    Returns
    -------
    float
        ``numpy.nextafter(r, inf)`` for a circumradius ``r``: the smallest float that
        keeps the tetrahedra of radius ``r`` (they are kept when strictly below alpha).

    Raises
    ------
    ValueError
        If some point lies only in flat tetrahedra, or (in principle; the convex hull
        is always one valid solid) no candidate qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> from nglive.mesh import AlphaShaper
    >>> s = AlphaShaper(np.random.default_rng(0).normal(size=(1000, 3)))
    >>> a = optimal_alpha(s)
    >>> r = s.report(a)
    >>> r.is_volume, r.points_outside
    (True, 0)
    """
    if n_components < 1:
        raise ValueError(f"n_components must be at least 1, got {n_components}")
    t = shaper.triangulation
    need = float(t.vertex_min_radius.max())
    if not np.isfinite(need):
        raise ValueError(f"{shaper.name}: some points belong only to flat tetrahedra")
    crit = t.critical_alphas
    # radii closer than TIE_RTOL are one step: the jitter alone moves radii by ~1e-8, and
    # on lattice input whole classes of equal radii would otherwise be split at random
    ends = crit[np.r_[crit[1:] > crit[:-1] * (1 + TIE_RTOL), True]]
    ends = ends[np.searchsorted(ends, need, "left") :]
    cand = np.nextafter(ends, np.inf)
    # drop every candidate with an edge in four or more faces (the usual reason a shape
    # is not watertight), found for all candidates at once; what is left is nearly
    # monotone, so the search below rarely stops above the true minimum
    cand = cand[_edge_manifold(t, ends)]
    memo: dict[int, bool] = {}
    # pinched vertices found by a failed probe tend to stay pinched at nearby alphas:
    # checking just those first rejects most candidates without a full surface check
    suspects = np.zeros(0, dtype=np.int64)
    n = len(t.points)

    def valid(i: int) -> bool:
        nonlocal suspects
        if i not in memo:
            faces = t.boundary(cand[i])
            if suspects.size and pinched_among(faces, suspects, n).size:
                memo[i] = False
                return False
            chk, solids = check_with_solids(faces, t.points, components=False)
            if chk.pinched_vertices.size:
                suspects = chk.pinched_vertices[:64]
            memo[i] = solids is not None and 1 <= solids <= n_components
        return memo[i]

    if cand.size == 0:
        raise ValueError(f"{shaper.name}: no alpha covers every point")
    if exhaustive:
        for i in range(cand.size):
            if valid(i):
                return float(cand[i])
        raise ValueError(f"{shaper.name}: no alpha gives a valid volume")
    lo, hi, step = -1, 0, 1
    while not valid(hi):
        lo = hi
        if hi == cand.size - 1:
            raise ValueError(f"{shaper.name}: no alpha gives a valid volume")
        hi = min(hi + step, cand.size - 1)
        step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if valid(mid):
            hi = mid
        else:
            lo = mid
    return float(cand[hi])
