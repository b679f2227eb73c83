"""The alpha-independent part of an alpha shape: Delaunay, circumradii, boundary intervals.

Everything here is computed once per point set. A tetrahedron is kept at ``alpha`` when
its circumradius is strictly below ``alpha`` (the rule tracertools uses). A triangle of
the triangulation is then on the boundary exactly when one of its two tetrahedra is kept
and the other is not, i.e. for ``alpha`` in ``(r_low, r_high]`` where ``r_low`` and
``r_high`` are the two radii (``r_high`` is infinite on the convex hull). Sorting the
triangles by ``r_low`` turns the boundary at any alpha into one binary search and one
vectorised comparison; each triangle is stored wound outward from the tetrahedron that
owns it at every alpha of its interval (the one with the smaller radius).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import Delaunay, QhullError

__all__ = ["AlphaShapeInputError", "Triangulation", "as_points"]

#: Relative size of the deterministic jitter applied before triangulating (x bbox diagonal).
JITTER = 1e-8
_JITTER_SEED = 0x6E676C  # fixed: the same points always give the same triangulation

# Faces of a positively oriented tetrahedron (v0..v3), face i opposite vertex i, each wound
# so that its normal points away from vertex i (outward).
_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]], dtype=np.intp)


def _edges(pts: np.ndarray, tet: np.ndarray) -> list[np.ndarray]:
    """Edge vectors v1-v0, v2-v0, v3-v0 of every tetrahedron, as 9 coordinate columns
    (a_x, a_y, a_z, b_x, ...): contiguous 1-D arrays are several times faster here
    than row-wise (n, 3) arithmetic."""
    cols = []
    for k in range(3):
        c = np.ascontiguousarray(pts[:, k])[tet]
        cols.append(c[:, 1:] - c[:, :1])
    return [cols[k][:, j].copy() for j in range(3) for k in range(3)]


def _circumradii(pts: np.ndarray, tet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Circumradius (inf when flat) and orientation determinant of every tetrahedron."""
    ax, ay, az, bx, by, bz, cx, cy, cz = _edges(pts, tet)
    # circumcentre offset = (|a|^2 (b x c) + |b|^2 (c x a) + |c|^2 (a x b)) / (2 det)
    bcx, bcy, bcz = by * cz - bz * cy, bz * cx - bx * cz, bx * cy - by * cx
    det = ax * bcx + ay * bcy + az * bcz
    la = ax * ax + ay * ay + az * az
    lb = bx * bx + by * by + bz * bz
    lc = cx * cx + cy * cy + cz * cz
    nx = la * bcx + lb * (cy * az - cz * ay) + lc * (ay * bz - az * by)
    ny = la * bcy + lb * (cz * ax - cx * az) + lc * (az * bx - ax * bz)
    nz = la * bcz + lb * (cx * ay - cy * ax) + lc * (ax * by - ay * bx)
    with np.errstate(divide="ignore", invalid="ignore"):
        radius = np.sqrt(nx * nx + ny * ny + nz * nz) / (2.0 * np.abs(det))
    radius[~np.isfinite(radius)] = np.inf  # flat tetrahedra are never kept
    return radius, det


def _volumes(pts: np.ndarray, tet: np.ndarray) -> np.ndarray:
    ax, ay, az, bx, by, bz, cx, cy, cz = _edges(pts, tet)
    det = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
    return np.abs(det) / 6.0


class AlphaShapeInputError(ValueError):
    """Points that cannot make a 3-D alpha shape; the message says what is wrong."""


def as_points(points, *, what: str = "points") -> np.ndarray:
    """Validate ``points`` as an ``(n, 3)`` float64 array of finite coordinates.

    Parameters
    ----------
    points : array_like or pandas.DataFrame
        ``n`` rows of x, y, z.
    what : str
        How to name the input in error messages (e.g. ``"group 'a'"``).

    Returns
    -------
    numpy.ndarray
        A float64 ``(n, 3)`` array (a copy only when a conversion was needed).

    Raises
    ------
    AlphaShapeInputError
        When the input is not ``(n, 3)``, holds NaN or infinite values, or has fewer than
        4 distinct points.

    Examples
    --------
    >>> as_points([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]).shape
    (4, 3)
    """
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AlphaShapeInputError(
            f"{what}: expected an (n, 3) array of numbers (x, y, z); could not convert: {exc}"
        ) from exc
    if arr.ndim != 2 or arr.shape[1] != 3:
        hint = (
            " (2-D points? an alpha shape here is 3-D: add a z column)"
            if (arr.ndim == 2 and arr.shape[1] == 2)
            else ""
        )
        raise AlphaShapeInputError(
            f"{what}: expected an (n, 3) array of x, y, z coordinates, got shape {arr.shape}{hint}"
        )
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        labels = list(points.index[rows[:5]]) if hasattr(points, "index") else list(rows[:5])
        labels = [x.item() if isinstance(x, np.generic) else x for x in labels]
        raise AlphaShapeInputError(
            f"{what}: {rows.size} point(s) have NaN or infinite coordinates, at rows "
            f"{labels}{' ...' if rows.size > 5 else ''}; drop or fill them first"
        )
    if arr.shape[0] < 4:
        raise AlphaShapeInputError(
            f"{what}: an alpha shape needs at least 4 points not all in one plane, "
            f"got {arr.shape[0]}"
        )
    return arr


def _dedupe(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows (lexicographic order) and, per input row, its index among them."""
    order = np.lexsort(points.T[::-1])
    srt = points[order]
    new = np.ones(len(srt), dtype=bool)
    new[1:] = np.any(srt[1:] != srt[:-1], axis=1)
    inverse = np.empty(len(points), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return srt[new], inverse


class Triangulation:
    """Delaunay tetrahedralisation of a point set with every alpha-independent quantity.

    Duplicate points are merged; the triangulation is computed on the points shifted to
    their bounding-box centre plus a deterministic jitter of ``JITTER`` x the bounding-box
    diagonal, which keeps Qhull fast and exact-enough on co-spherical and lattice input.
    Output coordinates (``points``) are the original ones.

    Parameters
    ----------
    points : array_like
        ``(n, 3)`` coordinates, validated with :func:`as_points`.
    what : str
        How to name the input in error messages.

    Examples
    --------
    >>> import numpy as np
    >>> t = Triangulation(np.random.default_rng(0).random((50, 3)))
    >>> t.tetra.shape[1], bool(np.all(np.diff(t.face_low) >= 0))
    (4, True)
    """

    def __init__(self, points, *, what: str = "points"):
        inp = as_points(points, what=what)
        uniq, inverse = _dedupe(inp)
        if uniq.shape[0] < 4:
            raise AlphaShapeInputError(
                f"{what}: an alpha shape needs at least 4 distinct points, got "
                f"{uniq.shape[0]} distinct among {inp.shape[0]}"
            )
        lo, hi = uniq.min(axis=0), uniq.max(axis=0)
        centre = (lo + hi) / 2
        diag = float(np.linalg.norm(hi - lo))
        local = uniq - centre
        # flat input has no volume whatever the alpha; say so instead of a Qhull traceback
        sv = np.linalg.svd(local - local.mean(axis=0), compute_uv=False)
        if sv[-1] <= 1e-12 * sv[0]:
            raise AlphaShapeInputError(
                f"{what}: all {uniq.shape[0]} distinct points lie in one plane (or on one "
                "line); a 3-D alpha shape needs points spanning a volume"
            )
        rng = np.random.default_rng(_JITTER_SEED)
        jittered = local + rng.uniform(-1.0, 1.0, local.shape) * (JITTER * diag)
        try:
            dt = Delaunay(jittered)
        except QhullError as exc:  # pragma: no cover - guarded by the checks above
            raise AlphaShapeInputError(f"{what}: Qhull could not triangulate: {exc}") from exc

        self.input_points = inp
        self.points = uniq
        self.inverse = inverse
        self.centre = centre
        self.diagonal = diag

        tet = dt.simplices.astype(np.int32, copy=True)
        nbr = dt.neighbors.astype(np.int32, copy=True)
        coplanar = dt.coplanar[:, [0, 2]].astype(np.int64)
        del dt  # its float arrays are as large as ours: free them before the next step
        radius, det = _circumradii(jittered, tet)
        # orient every tetrahedron positively so one face table serves all
        neg = det < 0
        del det
        tet[neg, 0], tet[neg, 1] = tet[neg, 1], tet[neg, 0].copy()
        nbr[neg, 0], nbr[neg, 1] = nbr[neg, 1], nbr[neg, 0].copy()
        vol = _volumes(local, tet)  # original coordinates: exactly 0 when flat

        self.tetra = tet
        self.neighbors = nbr
        self.radius = radius

        # every triangle once: from the lower-numbered side, or the only side on the hull
        t_idx, f_idx = np.nonzero((nbr < 0) | (np.arange(len(tet))[:, None] < nbr))
        other = nbr[t_idx, f_idx]
        tri = tet[t_idx[:, None], _FACES[f_idx]]  # wound outward from t_idx
        self.tri_all = tri
        self.tri_side = t_idx.astype(np.int32)
        self.tri_other = other.astype(np.int32)

        r_t = radius[t_idx]
        r_o = np.where(other >= 0, radius[np.maximum(other, 0)], np.inf)
        swap = r_o < r_t  # the other side owns the triangle: flip its winding
        low = np.where(swap, r_o, r_t)
        high = np.where(swap, r_t, r_o)
        high_tet = np.where(swap, t_idx, other)  # -1: on the hull, never leaves the boundary
        owned = tri.copy()
        owned[swap, 1], owned[swap, 2] = tri[swap, 2], tri[swap, 1]
        live = np.flatnonzero(low < high)  # equal radii: never on the boundary
        pick = live[np.argsort(low[live])]
        self.face_low = low[pick]
        self.face_high = high[pick]
        self.face_tri = owned[pick]
        self.face_high_tet = high_tet[pick].astype(np.int32)

        r_order = np.argsort(radius)
        self.radius_sorted = radius[r_order]
        self.radius_order = r_order.astype(np.int32)
        self.volume_cumsum = np.concatenate([[0.0], np.cumsum(vol[r_order])])
        self.tet_volume = vol

        # the smallest radius of a tetrahedron at each point: a point is inside the shape
        # exactly when alpha exceeds it (points are only ever vertices of tetrahedra)
        vmin = np.full(len(uniq), np.inf)
        np.minimum.at(vmin, tet.reshape(-1), np.repeat(radius, 4))
        # points Qhull left out (numerically on a facet): they go with their nearest vertex
        self._coplanar = coplanar
        vmin[self._coplanar[:, 0]] = vmin[self._coplanar[:, 1]]
        self.vertex_min_radius = vmin

    # ------------------------------------------------------------------ per-alpha queries
    def boundary(self, alpha: float) -> np.ndarray:
        """Boundary triangles ``(k, 3)`` (indices into ``points``) at ``alpha``, outward."""
        k = int(np.searchsorted(self.face_low, alpha, side="left"))
        sel = np.flatnonzero(self.face_high[:k] >= alpha)
        return self.face_tri[sel]

    def boundary_of(self, kept: np.ndarray) -> np.ndarray:
        """Boundary triangles of an arbitrary set of kept tetrahedra, wound outward."""
        ks = kept[self.tri_side]
        ko = np.where(self.tri_other >= 0, kept[np.maximum(self.tri_other, 0)], False)
        out = self.tri_all[ks & ~ko]
        inn = self.tri_all[ko & ~ks][:, [0, 2, 1]]
        return np.concatenate([out, inn])

    def kept(self, alpha: float) -> np.ndarray:
        """Boolean mask of the tetrahedra kept at ``alpha`` (radius strictly below it)."""
        return self.radius < alpha

    def volume(self, alpha: float) -> float:
        """Volume of the union of kept tetrahedra (original coordinates)."""
        return float(self.volume_cumsum[np.searchsorted(self.radius_sorted, alpha, "left")])

    def points_outside(self, alpha: float) -> int:
        """How many input points (duplicates counted) are in no kept tetrahedron."""
        return int(np.count_nonzero(self.vertex_min_radius[self.inverse] >= alpha))

    def points_outside_of(self, kept: np.ndarray) -> int:
        covered = np.zeros(len(self.points), dtype=bool)
        covered[self.tetra[kept].reshape(-1)] = True
        covered[self._coplanar[:, 0]] = covered[self._coplanar[:, 1]]
        return int(np.count_nonzero(~covered[self.inverse]))

    @property
    def cover_alpha(self) -> float:
        """The smallest alpha at which every input point is inside the shape."""
        return float(np.nextafter(self.vertex_min_radius.max(), np.inf))

    @cached_property
    def critical_alphas(self) -> np.ndarray:
        """Sorted distinct finite circumradii: the shape changes just above each of them."""
        r = self.radius_sorted
        return np.unique(r[np.isfinite(r)])

    def _solid_forest(self, base: float) -> tuple[int, np.ndarray]:
        """Joins at ``base`` and sorted weights of a spanning forest for alphas above it.

        Two tetrahedra sharing a triangle are joined once alpha exceeds the larger radius,
        so the number of solids (face-connected groups of kept tetrahedra) at alpha is the
        number of kept tetrahedra minus the edges of a minimum spanning forest lighter
        than alpha. Everything joined below ``base`` is contracted first (one connected-
        components pass), which leaves a small graph for the spanning forest when
        ``base`` is high, as it is for :func:`~nglive.mesh.search.optimal_alpha`.
        The forest for the lowest base asked for so far is cached.
        """
        cached = getattr(self, "_forest_cache", None)
        if cached is not None and cached[0] <= base:
            return cached[1], cached[2]
        inner = self.tri_other >= 0
        a, b = self.tri_side[inner], self.tri_other[inner]
        w = np.maximum(self.radius[a], self.radius[b])
        m = len(self.tetra)
        low = w < base
        g = sparse.coo_matrix(
            (np.ones(int(low.sum()), dtype=np.int8), (a[low], b[low])), shape=(m, m)
        )
        n_comp, label = csgraph.connected_components(g, directed=False)
        kept = self.radius < base
        joins = int(kept.sum()) - int(np.unique(label[kept]).size)
        hi = ~low & np.isfinite(w)
        la, lb, wh = label[a[hi]], label[b[hi]], w[hi]
        real = la != lb
        la, lb, wh = np.minimum(la[real], lb[real]), np.maximum(la[real], lb[real]), wh[real]
        order = np.argsort(wh, kind="stable")  # keep the lightest of parallel edges
        _, first = np.unique((la.astype(np.int64) * n_comp + lb)[order], return_index=True)
        pick = order[first]
        g = sparse.coo_matrix((wh[pick], (la[pick], lb[pick])), shape=(n_comp, n_comp))
        weights = np.sort(csgraph.minimum_spanning_tree(g.tocsr()).data)
        self._forest_cache = (base, joins, weights)
        return joins, weights

    def n_solids(self, alpha) -> np.ndarray | int:
        """Face-connected groups of kept tetrahedra at ``alpha`` (vectorised over alphas)."""
        base_joins, weights = self._solid_forest(float(np.min(alpha)))
        kept = np.searchsorted(self.radius_sorted, alpha, "left")
        return kept - base_joins - np.searchsorted(weights, alpha, "left")

    def n_solids_of(self, kept: np.ndarray) -> int:
        inner = self.tri_other >= 0
        a, b = self.tri_side[inner], self.tri_other[inner]
        both = kept[a] & kept[b]
        m = len(self.tetra)
        g = sparse.coo_matrix(
            (np.ones(int(both.sum()), dtype=np.int8), (a[both], b[both])), shape=(m, m)
        )
        _, labels = csgraph.connected_components(g, directed=False)
        return int(np.unique(labels[kept]).size)

    @cached_property
    def vertex_tetra(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR (indptr, tetra ids) of the tetrahedra around each point."""
        flat = self.tetra.reshape(-1)
        order = np.argsort(flat, kind="stable")
        indptr = np.zeros(len(self.points) + 1, dtype=np.int64)
        np.cumsum(np.bincount(flat, minlength=len(self.points)), out=indptr[1:])
        return indptr, (order // 4).astype(np.int32)
