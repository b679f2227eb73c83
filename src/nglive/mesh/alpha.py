"""AlphaShaper: triangulate a point set once, then mesh it at any alpha in milliseconds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import trimesh

from .checks import check_with_solids
from .repair import fill_cavities, repair_manifold
from .triangulation import Triangulation

__all__ = ["AlphaReport", "AlphaShaper", "alpha_shape"]


@dataclass(frozen=True)
class AlphaReport:
    """What the alpha shape is like at one alpha.

    Attributes
    ----------
    alpha : float
        Tetrahedra with circumradius strictly below ``alpha`` are kept.
    n_faces : int
        Boundary triangles.
    watertight : bool
        Every edge is shared by exactly two faces (trimesh's ``is_watertight``).
    is_volume : bool
        Watertight, no pinched vertex, positive volume: a valid input for a manifold
        boolean. Stricter than trimesh's ``is_volume``, which misses pinched vertices.
    n_components : int
        Pieces of surface connected through vertices (trimesh's ``body_count``, the
        count tracertools tests for "one body"). The surface of each internal cavity
        is a piece of its own.
    n_solids : int
        Solid components: face-connected groups of kept tetrahedra, as CGAL's
        ``Alpha_shape_3::number_of_solid_components`` counts them. Cavities do not
        count: a hollow ball is one solid with two surface components (its outside and
        its cavity's shell). ``fill_cavities=True`` fills sealed cavities, dropping
        their shells from the mesh (then ``n_components`` counts outer surfaces only).
    points_outside : int
        Input points (duplicates counted) not inside the shape.
    merged_duplicates : int
        Input points that repeated another one exactly and were merged before
        triangulating (voxel-grid annotations often have many).
    volume : float
        Volume of the kept tetrahedra, in the input's units cubed.
    area : float
        Surface area.
    non_manifold_edges : int
        Edges shared by four or more faces.
    pinched_vertices : int
        Vertices where two sheets meet (searched only when watertight).
    """

    alpha: float
    n_faces: int
    watertight: bool
    is_volume: bool
    n_components: int
    n_solids: int
    points_outside: int
    volume: float
    area: float
    non_manifold_edges: int
    pinched_vertices: int
    merged_duplicates: int = 0

    def to_dict(self) -> dict:
        """Plain Python values (for JSON, segment properties, a DataFrame row)."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(self).items()}


class AlphaShaper:
    """Alpha shapes of one point set, with the triangulation computed once.

    The Delaunay tetrahedralisation (scipy/Qhull), every circumradius and the alpha
    interval in which each triangle lies on the boundary are computed at construction.
    :meth:`mesh` is then a binary search plus one vectorised comparison; faces come wound
    outward from the tetrahedron they belong to (no ``fix_normals``).

    Parameters
    ----------
    points : array_like or pandas.DataFrame
        ``(n, 3)`` coordinates, at least 4 distinct points not all in one plane. Exactly
        co-spherical or lattice points are fine: the triangulation runs on a copy with a
        deterministic jitter of 1e-8 x the bounding-box diagonal; meshes use the original
        coordinates. Repeated points are merged (the report says how many).
    name : str
        How to name this point set in error messages (e.g. the group).

    Examples
    --------
    >>> import numpy as np
    >>> pts = np.random.default_rng(0).normal(size=(2000, 3))
    >>> shaper = AlphaShaper(pts)
    >>> alpha = shaper.auto_alpha()
    >>> mesh = shaper.mesh(alpha)
    >>> bool(mesh.is_watertight), bool(mesh.volume > 0)
    (True, True)
    >>> shaper.report(alpha).points_outside >= 0
    True
    """

    def __init__(self, points, *, name: str = "points"):
        self.name = name
        self.triangulation = Triangulation(points, what=name)

    # ------------------------------------------------------------------ data
    @property
    def points(self) -> np.ndarray:
        """The distinct input points (mesh vertices are drawn from these)."""
        return self.triangulation.points

    @property
    def critical_alphas(self) -> np.ndarray:
        """Sorted distinct circumradii; the shape changes just above each one."""
        return self.triangulation.critical_alphas

    @property
    def cover_alpha(self) -> float:
        """The smallest alpha at which no input point is left outside."""
        return self.triangulation.cover_alpha

    # ------------------------------------------------------------------ meshing
    def faces(
        self, alpha: float, *, fill_cavities: bool = False, repair: bool = False
    ) -> np.ndarray:
        """Boundary triangles at ``alpha`` as indices into :attr:`points`, wound outward."""
        t = self.triangulation
        alpha = _check_alpha(alpha)
        if not (fill_cavities or repair):
            return t.boundary(alpha)
        return t.boundary_of(self._kept(alpha, fill_cavities, repair))

    def _kept(self, alpha: float, fill: bool, repair: bool) -> np.ndarray:
        t = self.triangulation
        kept = t.kept(alpha)
        if fill:
            kept = fill_cavities(t, kept)
        if repair:
            kept, _ = repair_manifold(t, kept)
        return kept

    def mesh(
        self, alpha: float, *, fill_cavities: bool = False, repair: bool = False
    ) -> trimesh.Trimesh:
        """The alpha shape at ``alpha`` as a ``trimesh.Trimesh``.

        Parameters
        ----------
        alpha : float
            Keep tetrahedra whose circumradius is strictly below ``alpha`` (input units).
        fill_cavities : bool
            Also fill pockets sealed inside the shape (for surface-sampled points).
        repair : bool
            Grow the shape around non-manifold edges and pinched vertices until it is a
            closed 2-manifold (a valid volume). Off by default: the raw shape is what
            :meth:`report` describes and what tuning compares.

        Returns
        -------
        trimesh.Trimesh
            Only the vertices used by faces; ``metadata["alpha"]`` holds ``alpha``.

        Examples
        --------
        >>> import numpy as np
        >>> shaper = AlphaShaper(np.random.default_rng(1).random((500, 3)))
        >>> m = shaper.mesh(0.3)
        >>> bool(m.volume > 0)
        True
        """
        return self._to_trimesh(
            self.faces(alpha, fill_cavities=fill_cavities, repair=repair), alpha
        )

    def _to_trimesh(self, faces: np.ndarray, alpha: float) -> trimesh.Trimesh:
        pts = self.triangulation.points
        used = np.zeros(len(pts), dtype=bool)
        used[faces.reshape(-1)] = True
        remap = np.cumsum(used) - 1
        m = trimesh.Trimesh(vertices=pts[used], faces=remap[faces].astype(np.int64), process=False)
        m.metadata["alpha"] = float(alpha)
        return m

    # ------------------------------------------------------------------ reporting
    def report(
        self, alpha: float, *, fill_cavities: bool = False, repair: bool = False
    ) -> AlphaReport:
        """Watertightness, validity, components, points left outside and volume at ``alpha``.

        Examples
        --------
        >>> import numpy as np
        >>> shaper = AlphaShaper(np.random.default_rng(2).random((400, 3)))
        >>> r = shaper.report(10.0)   # alpha above every radius: the convex hull
        >>> r.watertight, r.is_volume, r.n_components, r.points_outside
        (True, True, 1, 0)
        """
        t = self.triangulation
        alpha = _check_alpha(alpha)
        if fill_cavities or repair:
            kept = self._kept(alpha, fill_cavities, repair)
            faces = t.boundary_of(kept)
            volume = float(t.tet_volume[kept].sum())
            outside = t.points_outside_of(kept)
        else:
            faces = t.boundary(alpha)
            volume = t.volume(alpha)
            outside = t.points_outside(alpha)
        chk, solids = check_with_solids(faces, t.points)
        if solids is not None:  # a closed 2-manifold: its outer surfaces were counted
            pass
        elif fill_cavities or repair:
            solids = t.n_solids_of(kept)
        else:
            solids = int(t.n_solids(alpha))
        area = _area(t.points, faces)
        return AlphaReport(
            alpha=float(alpha),
            n_faces=int(len(faces)),
            watertight=chk.watertight,
            is_volume=chk.is_manifold and volume > 0,
            n_components=chk.n_components,
            n_solids=solids,
            points_outside=outside,
            volume=volume,
            area=area,
            non_manifold_edges=int(len(chk.non_manifold_edges)),
            pinched_vertices=int(len(chk.pinched_vertices)),
            merged_duplicates=int(len(t.input_points) - len(t.points)),
        )

    # ------------------------------------------------------------------ alpha search
    def auto_alpha(self, *, factor: float = 1.5, max_passes: int = 15) -> float:
        """The tracertools alpha; see :func:`nglive.mesh.search.auto_alpha`."""
        from .search import auto_alpha

        return auto_alpha(self, factor=factor, max_passes=max_passes)

    def optimal_alpha(self, n_components: int = 1, *, exhaustive: bool = False) -> float:
        """Smallest alpha giving one valid volume with every point inside.

        See :func:`nglive.mesh.search.optimal_alpha`.
        """
        from .search import optimal_alpha

        return optimal_alpha(self, n_components=n_components, exhaustive=exhaustive)

    def spectrum(self, alphas=None, *, n: int = 48):
        """Critical alphas plus volume/area/watertight/components over a range.

        See :func:`nglive.mesh.spectrum.spectrum`.
        """
        from .spectrum import spectrum

        return spectrum(self, alphas=alphas, n=n)


def _area(points: np.ndarray, faces: np.ndarray) -> float:
    x, y, z = (np.ascontiguousarray(points[:, k])[faces] for k in range(3))
    ux, uy, uz = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0], z[:, 1] - z[:, 0]
    vx, vy, vz = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0], z[:, 2] - z[:, 0]
    cross = np.sqrt((uy * vz - uz * vy) ** 2 + (uz * vx - ux * vz) ** 2 + (ux * vy - uy * vx) ** 2)
    return float(cross.sum()) / 2.0


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}") from exc
    if not a > 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    return a


def alpha_shape(
    points,
    alpha: float | str = "auto",
    *,
    fill_cavities: bool = False,
    repair: bool = True,
    name: str = "points",
) -> trimesh.Trimesh:
    """Alpha-shape mesh of a point set in one call.

    Parameters
    ----------
    points : array_like or pandas.DataFrame
        ``(n, 3)`` coordinates.
    alpha : float or {"auto", "optimal"}
        A radius threshold in the input's units; ``"auto"`` is the tracertools rule
        (:meth:`AlphaShaper.auto_alpha`), ``"optimal"`` the smallest alpha giving one
        valid volume with every point inside (:meth:`AlphaShaper.optimal_alpha`).
    fill_cavities : bool
        Fill pockets sealed inside the shape.
    repair : bool
        Grow the shape around non-manifold edges and pinched vertices so the result is
        always a valid volume (on by default here, unlike :meth:`AlphaShaper.mesh`).
    name : str
        How to name the points in error messages.

    Returns
    -------
    trimesh.Trimesh
        ``metadata`` holds ``alpha`` and the :class:`AlphaReport` fields of the result.

    Examples
    --------
    >>> import numpy as np
    >>> m = alpha_shape(np.random.default_rng(0).normal(size=(1000, 3)), "auto")
    >>> m.is_volume
    True
    """
    shaper = AlphaShaper(points, name=name)
    a = resolve_alpha(shaper, alpha)
    mesh = shaper.mesh(a, fill_cavities=fill_cavities, repair=repair)
    mesh.metadata.update(shaper.report(a, fill_cavities=fill_cavities, repair=repair).to_dict())
    return mesh


def resolve_alpha(shaper: AlphaShaper, alpha: float | str) -> float:
    """Turn ``"auto"``, ``"optimal"`` or a number into a number for ``shaper``."""
    if isinstance(alpha, str):
        if alpha == "auto":
            return shaper.auto_alpha()
        if alpha == "optimal":
            return shaper.optimal_alpha()
        raise ValueError(f"alpha must be 'auto', 'optimal' or a number, got {alpha!r}")
    return _check_alpha(alpha)
