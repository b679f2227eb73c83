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
    "check_with_solids",
    "count_solids",
    "is_closed_manifold",
    "pinched_among",
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


def _closed_partner(faces: np.ndarray, n: int) -> np.ndarray | None:
    """For each edge ``3f+j`` (``faces[f, j]`` to ``faces[f, j+1]``), the index of the
    same edge in the neighbouring face; None unless every edge is in exactly two faces,
    traversed once each way (watertight with consistent winding)."""
    tails = faces.reshape(-1)
    heads = faces[:, [1, 2, 0]].reshape(-1)
    und = np.minimum(tails, heads) * n + np.maximum(tails, heads)
    s, order = _sort_with_order(und)
    if s.size % 2 or np.any(s[0::2] != s[1::2]) or np.any(s[1:-1:2] == s[2::2]):
        return None
    a, b = order[0::2], order[1::2]
    if np.any(tails[a] == tails[b]):  # same direction twice: inconsistent winding
        return None
    partner = np.empty_like(order)
    partner[a], partner[b] = b, a
    return partner


def _sort_with_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sorted keys, argsort)`` of non-negative int64 keys.

    When key and position fit in 63 bits together they are packed into one integer and
    sorted by value, which numpy does several times faster than an argsort.
    """
    pos_bits = max(1, int(keys.size - 1).bit_length())
    if keys.size == 0 or int(keys.max()).bit_length() + pos_bits > 63:
        order = np.argsort(keys)
        return keys[order], order
    packed = keys << pos_bits | np.arange(keys.size)
    packed.sort()
    return packed >> pos_bits, packed & ((1 << pos_bits) - 1)


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
    nf = len(faces)
    n = int(faces.max()) + 1 if n_vertices is None else n_vertices
    idx = np.int32 if nf + n < 2**31 else np.int64
    # faces and vertices as the nodes of one graph, each face linked to its three
    # vertices: already CSR (no sort), and unused vertices are lone nodes to subtract
    g = sparse.csr_matrix(
        (np.ones(3 * nf), (faces.reshape(-1) + nf).astype(idx),
         np.r_[np.arange(0, 3 * nf + 1, 3), np.full(n, 3 * nf)].astype(idx)),
        shape=(nf + n, nf + n),
    )
    total = csgraph.connected_components(g, directed=True, connection="weak")[0]
    unused = n - np.count_nonzero(np.bincount(faces.reshape(-1), minlength=n))
    return int(total - unused)


_TO_NEXT_CORNER = np.array([1, 1, -2])  # corner 3f+j -> 3f+(j+1)%3


def _fans(faces: np.ndarray, partner: np.ndarray, n: int) -> np.ndarray:
    """Pinched vertices of a closed, consistently wound mesh (``partner`` from above).

    Corner ``3f+j`` sits at vertex ``faces[f, j]``; edge ``j`` of face ``f`` leaves it and
    the same edge in the neighbouring face arrives at that vertex, at the next corner
    around it. This is a permutation whose cycles are the fans; a vertex with two cycles
    is pinched. Cycles are labelled by pointer jumping (log2 of the largest valence
    steps, all vectorised; several times faster here than scipy's csgraph).
    """
    tails = faces.reshape(-1)
    idx = np.int32 if tails.size < 2**31 else np.int64  # narrower gathers are faster
    partner = partner.astype(idx, copy=False)
    return _pinched_by_cycles(tails, partner + _TO_NEXT_CORNER.astype(idx)[partner % 3], n)


def _pinched_by_cycles(vertex: np.ndarray, nxt: np.ndarray, n: int) -> np.ndarray:
    """Vertices with more than one cycle of the corner permutation ``nxt``.

    ``vertex[c]`` is the vertex of corner ``c`` and ``nxt[c]`` the next corner around
    it. Cycles are labelled by their smallest corner through pointer jumping: after k
    steps a label is the minimum over the next 2**k corners, so log2 of the largest
    valence steps cover every cycle.
    """
    start = np.arange(nxt.size, dtype=nxt.dtype)
    label = start.copy()
    valence = int(np.bincount(vertex).max()) if vertex.size else 0
    span = 1
    while span < valence:
        np.minimum(label, label[nxt], out=label)
        span *= 2
        if span < valence:  # the last step needs no further jump
            nxt = nxt[nxt]
    reps = vertex[label == start]  # one corner per fan: its smallest
    return np.flatnonzero(np.bincount(reps, minlength=n) > 1)


def pinched_among(faces: np.ndarray, vertices: np.ndarray, n: int) -> np.ndarray:
    """Which of ``vertices`` are pinched, looking only at the faces around them.

    ``faces`` must be a closed surface in which every edge is in exactly two faces,
    wound consistently (an alpha-shape boundary without non-manifold edges is). Much
    cheaper than :func:`pinched_vertices` when ``vertices`` is small: every edge at one
    of them has both its faces among the faces at that vertex, so the fans there can be
    followed without pairing the edges of the whole surface.
    """
    faces = np.asarray(faces, dtype=np.int64)
    at = np.zeros(n, dtype=bool)
    at[vertices] = True
    sub = faces[at[faces].any(axis=1)]
    if sub.size == 0:
        return np.zeros(0, dtype=np.int64)
    tails = sub.reshape(-1)
    heads = sub[:, [1, 2, 0]].reshape(-1)
    slots = np.flatnonzero(at[tails] | at[heads])  # edges with an end at a vertex asked
    und = np.minimum(tails[slots], heads[slots]) * n + np.maximum(tails[slots], heads[slots])
    order = np.argsort(und, kind="stable")
    if order.size % 2 or np.any(und[order[0::2]] != und[order[1::2]]):
        raise ValueError("pinched_among needs every edge in exactly two faces")
    partner = np.full(tails.size, -1, dtype=np.int64)
    a, b = slots[order[0::2]], slots[order[1::2]]
    partner[a], partner[b] = b, a
    corners = np.flatnonzero(at[tails])  # corners at the vertices asked about
    nxt_global = partner[corners] + _TO_NEXT_CORNER[partner[corners] % 3]
    index = np.full(tails.size, -1, dtype=np.int64)
    index[corners] = np.arange(corners.size)
    # the next corner around the same vertex, numbered among the corners asked about
    return _pinched_by_cycles(tails[corners], index[nxt_global], n)


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
    partner = _closed_partner(faces, n)
    if partner is None:
        raise ValueError("pinched vertices are defined for watertight, consistently wound meshes")
    return _fans(faces, partner, n)


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
    partner = _closed_partner(faces, n)
    return partner is not None and _fans(faces, partner, n).size == 0


def count_solids(faces: np.ndarray, points: np.ndarray) -> int | None:
    """Number of solids bounded by a closed 2-manifold mesh, or None if it is not one.

    Each solid has exactly one boundary surface of positive signed volume (its outside);
    the surfaces of cavities, wound outward from the solid, have negative volume. So the
    solids are the connected surfaces with positive volume.

    Examples
    --------
    >>> import trimesh
    >>> outer = trimesh.creation.icosphere()
    >>> inner = trimesh.creation.icosphere(radius=0.5)
    >>> faces = np.concatenate([outer.faces, inner.faces[:, ::-1] + len(outer.vertices)])
    >>> count_solids(faces, np.concatenate([outer.vertices, inner.vertices]))
    1
    """
    return check_with_solids(faces, points, components=False)[1]


def _face_components(partner: np.ndarray) -> tuple[int, np.ndarray]:
    """Components of the faces of a closed mesh joined across shared edges."""
    nf = len(partner) // 3
    idx = np.int32 if 3 * nf < 2**31 else np.int64
    # every face has exactly three neighbours: the adjacency is CSR as it stands. It is
    # symmetric, so its strong components are its connected components; asking for those
    # skips the transpose scipy makes for undirected graphs (float64 data: no conversion)
    g = sparse.csr_matrix(
        (np.ones(3 * nf), (partner // 3).astype(idx), np.arange(0, 3 * nf + 1, 3, dtype=idx)),
        shape=(nf, nf),
    )
    return csgraph.connected_components(g, directed=True, connection="strong")


def _positive_surfaces(faces: np.ndarray, points: np.ndarray, label: np.ndarray) -> int:
    return int(np.count_nonzero(np.bincount(label, weights=_signed_volumes(faces, points)) > 0))


def _signed_volumes(faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Six times the signed volume of the tetrahedron (origin, face), per face."""
    ref = points[faces[0, 0]]  # near the surface: less cancellation
    x, y, z = (np.ascontiguousarray(points[:, k])[faces] - ref[k] for k in range(3))
    return (
        x[:, 0] * (y[:, 1] * z[:, 2] - y[:, 2] * z[:, 1])
        + y[:, 0] * (z[:, 1] * x[:, 2] - z[:, 2] * x[:, 1])
        + z[:, 0] * (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1])
    )


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
    return _check(np.asarray(faces, dtype=np.int64), n_vertices, components=components)[0]


def check_with_solids(
    faces: np.ndarray, points: np.ndarray, *, components: bool = True
) -> tuple[SurfaceCheck, int | None]:
    """:func:`surface_check` and, for a closed 2-manifold, :func:`count_solids` (else
    None), sharing the edge pairing and the components between them. With
    ``components=False`` the components of a surface that is not a closed 2-manifold
    are not counted (``n_components`` is then -1)."""
    return _check(np.asarray(faces, dtype=np.int64), len(points), components=components,
                  points=points)


def _check(faces, n_vertices, *, components=True, points=None):
    if faces.size == 0:
        empty = np.zeros((0, 2), dtype=np.int64)
        return SurfaceCheck(True, True, empty, np.zeros(0, dtype=np.int64), 0), None
    n = int(faces.max()) + 1 if n_vertices is None else n_vertices
    partner = _closed_partner(faces, n)
    solids = None
    n_components = -1
    if partner is not None:  # the common case: every edge once each way
        watertight = winding = True
        non_manifold = np.zeros((0, 2), dtype=np.int64)
        pinched = _fans(faces, partner, n)
        if pinched.size == 0 and (components or points is not None):
            # without pinches, faces meeting at a vertex also meet along an edge: the
            # edge-connected components are trimesh's vertex-connected bodies
            n_components, label = _face_components(partner)
            if points is not None:
                solids = _positive_surfaces(faces, points, label)
    else:
        tails, heads = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
        und = np.minimum(tails, heads) * n + np.maximum(tails, heads)
        uk, ucount = np.unique(und, return_counts=True)
        bad = uk[ucount != 2]
        non_manifold = np.stack([bad // n, bad % n], axis=1)
        watertight = bad.size == 0
        winding = False
        pinched = np.zeros(0, dtype=np.int64)
    if components and n_components < 0:
        n_components = count_components(faces, n)
    chk = SurfaceCheck(
        watertight=watertight,
        winding_consistent=winding,
        non_manifold_edges=non_manifold,
        pinched_vertices=pinched,
        n_components=int(n_components),
    )
    return chk, solids
