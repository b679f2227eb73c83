"""Is a triangle mesh a valid volume? Watertightness, non-manifold edges, pinched vertices.

trimesh's ``is_watertight`` / ``is_volume`` only look at edges, so two sheets meeting at a
single vertex (a pinched vertex) pass them; such a mesh is not a valid volume for a
manifold boolean. :func:`surface_check` finds both kinds of defect, vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

__all__ = [
    "SurfaceCheck",
    "count_components",
    "is_closed_manifold",
    "pinched_vertices",
    "surface_check",
]


@dataclass(frozen=True)
class SurfaceCheck:
    """Topological facts about a triangle mesh.

    Attributes
    ----------
    watertight : bool
        Every edge is used by exactly two faces (trimesh's definition).
    winding_consistent : bool
        Every edge is traversed once in each direction.
    non_manifold_edges : numpy.ndarray
        ``(k, 2)`` vertex pairs of edges used by a number of faces other than two.
    pinched_vertices : numpy.ndarray
        Vertices where separate fans of faces meet (only searched for when watertight).
    n_components : int
        Groups of faces connected through shared vertices (trimesh's ``body_count``).
    """

    watertight: bool
    winding_consistent: bool
    non_manifold_edges: np.ndarray = field(repr=False)
    pinched_vertices: np.ndarray = field(repr=False)
    n_components: int

    @property
    def is_manifold(self) -> bool:
        """Closed 2-manifold: watertight, consistently wound, no pinched vertex."""
        return self.watertight and self.winding_consistent and self.pinched_vertices.size == 0


def _directed_keys(faces: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    tails = faces.reshape(-1).astype(np.int64)
    heads = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    return tails * n + heads, heads * n + tails


def count_components(faces: np.ndarray, n_vertices: int | None = None) -> int:
    """Number of groups of faces connected through shared vertices.

    Examples
    --------
    >>> count_components(np.array([[0, 1, 2], [3, 4, 5]]))
    2
    """
    faces = np.asarray(faces)
    if faces.size == 0:
        return 0
    used, inv = np.unique(faces.reshape(-1), return_inverse=True)
    f = inv.reshape(-1, 3)
    n = used.size
    g = sparse.coo_matrix(
        (np.ones(2 * len(f), dtype=np.int8), (f[:, [0, 1]].ravel(), f[:, [1, 2]].ravel())),
        shape=(n, n),
    )
    return int(csgraph.connected_components(g, directed=False)[0])


def _fans(faces: np.ndarray, key: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    """Pinched vertices, given the directed edge keys and their sort order."""
    tails, heads = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    rev = heads * n + tails
    pos = np.minimum(np.searchsorted(key, rev, sorter=order), len(key) - 1)
    partner = order[pos]
    ok = key[partner] == rev
    # corner 3f+j sits at faces[f, j]; its face's edge j leaves it, and the reverse edge
    # (in the neighbouring face) arrives at the same vertex: link the two corners
    nc = faces.size
    arrive = (partner // 3) * 3 + (partner % 3 + 1) % 3
    src = np.flatnonzero(ok)
    g = sparse.coo_matrix((np.ones(src.size, dtype=np.int8), (src, arrive[ok])), shape=(nc, nc))
    n_fans, label = csgraph.connected_components(g, directed=False)
    fan_vertex = np.zeros(n_fans, dtype=np.int64)
    fan_vertex[label] = tails
    return np.flatnonzero(np.bincount(fan_vertex, minlength=n) > 1)


def pinched_vertices(faces: np.ndarray, n_vertices: int | None = None) -> np.ndarray:
    """Vertices around which the faces form more than one fan.

    Only meaningful for a watertight, consistently wound mesh: around each vertex the
    faces are then chained across shared edges, and a manifold vertex has one chain.

    Examples
    --------
    Two tetrahedra touching at vertex 0:

    >>> t = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
    >>> pinched_vertices(np.concatenate([t, np.where(t == 0, 0, t + 3)])).tolist()
    [0]
    """
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size == 0:
        return np.zeros(0, dtype=np.int64)
    n = int(faces.max()) + 1 if n_vertices is None else n_vertices
    key, _ = _directed_keys(faces, n)
    return _fans(faces, key, np.argsort(key), n)


def is_closed_manifold(faces: np.ndarray, n_vertices: int | None = None) -> bool:
    """Fast yes/no: watertight, consistently wound and without pinched vertices.

    Examples
    --------
    >>> import trimesh
    >>> is_closed_manifold(trimesh.creation.icosphere().faces)
    True
    """
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size == 0:
        return False
    n = int(faces.max()) + 1 if n_vertices is None else n_vertices
    key, rev = _directed_keys(faces, n)
    order = np.argsort(key)
    skey = key[order]
    if np.any(skey[1:] == skey[:-1]):  # an edge twice in one direction
        return False
    pos = np.minimum(np.searchsorted(skey, rev), len(skey) - 1)
    if np.any(skey[pos] != rev):  # an edge without its reverse: a hole
        return False
    return _fans(faces, key, order, n).size == 0


def surface_check(
    faces: np.ndarray, n_vertices: int | None = None, *, components: bool = True
) -> SurfaceCheck:
    """Check a triangle mesh for watertightness, winding and manifoldness.

    Parameters
    ----------
    faces : numpy.ndarray
        ``(k, 3)`` vertex indices.
    n_vertices : int, optional
        Number of vertices (defaults to ``faces.max() + 1``).
    components : bool
        Count connected components (``-1`` when False).

    Returns
    -------
    SurfaceCheck

    Examples
    --------
    >>> import trimesh
    >>> surface_check(trimesh.creation.icosphere().faces).is_manifold
    True
    """
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size == 0:
        empty = np.zeros((0, 2), dtype=np.int64)
        return SurfaceCheck(True, True, empty, np.zeros(0, dtype=np.int64), 0)
    n = int(faces.max()) + 1 if n_vertices is None else n_vertices
    key, rev = _directed_keys(faces, n)
    order = np.argsort(key)
    skey = key[order]
    unique_dir = not bool(np.any(skey[1:] == skey[:-1]))
    pos = np.minimum(np.searchsorted(skey, rev), len(skey) - 1)
    paired = bool(np.all(skey[pos] == rev))
    if unique_dir and paired:  # the common case: every edge once each way
        watertight = winding = True
        non_manifold = np.zeros((0, 2), dtype=np.int64)
    else:
        tails, heads = key // n, key % n
        und = np.minimum(tails, heads) * n + np.maximum(tails, heads)
        uk, ucount = np.unique(und, return_counts=True)
        bad = uk[ucount != 2]
        non_manifold = np.stack([bad // n, bad % n], axis=1)
        watertight = bad.size == 0
        winding = False
    pinched = _fans(faces, key, order, n) if winding else np.zeros(0, dtype=np.int64)
    return SurfaceCheck(
        watertight=watertight,
        winding_consistent=winding,
        non_manifold_edges=non_manifold,
        pinched_vertices=pinched,
        n_components=count_components(faces, n) if components else -1,
    )
