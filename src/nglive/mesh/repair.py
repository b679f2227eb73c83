"""Turn an alpha shape into a valid volume: fill cavities, fill around non-manifold spots.

Both work on the set of kept tetrahedra, never on the surface, so the result is always
the boundary of a union of Delaunay tetrahedra: consistently wound, and containing every
point the unrepaired shape contained.

- Cavities (empty pockets sealed inside the shape, typical of surface-sampled layers) are
  the unkept tetrahedra not reachable from outside the convex hull through unkept ones.
- A non-manifold edge (four or more faces) or a pinched vertex (two sheets meeting at a
  point) is made interior by keeping every tetrahedron around it, repeated until the
  surface is a closed 2-manifold. This only grows the shape and always ends: at worst
  at the convex hull, which is a valid volume.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .checks import surface_check
from .triangulation import Triangulation

__all__ = ["RepairError", "fill_cavities", "repair_manifold"]


class RepairError(RuntimeError):
    """The shape could not be made a valid volume within the allowed rounds."""


def fill_cavities(t: Triangulation, kept: np.ndarray) -> np.ndarray:
    """Keep also every unkept tetrahedron that is sealed off from the outside.

    Parameters
    ----------
    t : Triangulation
    kept : numpy.ndarray
        Boolean mask over ``t.tetra``.

    Returns
    -------
    numpy.ndarray
        A new mask, a superset of ``kept``.

    Examples
    --------
    >>> import numpy as np
    >>> from nglive.mesh.triangulation import Triangulation
    >>> t = Triangulation(np.random.default_rng(0).random((200, 3)))
    >>> kept = t.kept(0.2)
    >>> bool(np.all(fill_cavities(t, kept) >= kept))
    True
    """
    m = len(t.tetra)
    out = m  # one extra node for "outside the convex hull"
    free = ~kept
    hull = t.tri_other < 0
    side_free = free[t.tri_side]
    other = np.maximum(t.tri_other, 0)
    inner = ~hull & side_free & free[other]
    to_out = hull & side_free
    a = np.concatenate([t.tri_side[inner], t.tri_side[to_out]])
    b = np.concatenate([t.tri_other[inner], np.full(int(to_out.sum()), out, dtype=np.int32)])
    g = sparse.coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(m + 1, m + 1))
    _, label = csgraph.connected_components(g, directed=False)
    sealed = free & (label[:m] != label[out])
    return kept | sealed


def _tetra_around_vertices(t: Triangulation, verts: np.ndarray) -> np.ndarray:
    indptr, tets = t.vertex_tetra
    starts, stops = indptr[verts], indptr[verts + 1]
    lengths = stops - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    # concatenated ranges [start, stop) without a Python loop
    offs = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return tets[np.arange(lengths.sum()) + offs]


def _tetra_around_edges(t: Triangulation, edges: np.ndarray) -> np.ndarray:
    indptr, tets = t.vertex_tetra
    u, w = edges[:, 0], edges[:, 1]
    lengths = indptr[u + 1] - indptr[u]
    cand = _tetra_around_vertices(t, u)
    other = np.repeat(w, lengths)
    hit = (t.tetra[cand] == other[:, None]).any(axis=1)
    return cand[hit]


def repair_manifold(
    t: Triangulation, kept: np.ndarray, *, max_rounds: int = 200
) -> tuple[np.ndarray, int]:
    """Grow ``kept`` until its boundary is a closed 2-manifold.

    Parameters
    ----------
    t : Triangulation
    kept : numpy.ndarray
        Boolean mask over ``t.tetra``.
    max_rounds : int
        Give up (``RepairError``) after this many rounds of growth.

    Returns
    -------
    (numpy.ndarray, int)
        The grown mask and the number of tetrahedra added.

    Examples
    --------
    >>> import numpy as np
    >>> from nglive.mesh.triangulation import Triangulation
    >>> t = Triangulation(np.random.default_rng(0).random((300, 3)))
    >>> fixed, added = repair_manifold(t, t.kept(0.12))
    >>> from nglive.mesh.checks import surface_check
    >>> surface_check(t.boundary_of(fixed)).is_manifold
    True
    """
    kept = kept.copy()
    start = int(kept.sum())
    if start == 0:
        return kept, 0
    n = len(t.points)
    for _ in range(max_rounds):
        faces = t.boundary_of(kept)
        chk = surface_check(faces, n, components=False)
        if chk.is_manifold:
            return kept, int(kept.sum()) - start
        grow = []
        if chk.non_manifold_edges.size:
            grow.append(_tetra_around_edges(t, chk.non_manifold_edges))
        if chk.pinched_vertices.size:
            grow.append(_tetra_around_vertices(t, chk.pinched_vertices))
        add = np.concatenate(grow) if grow else np.zeros(0, dtype=np.int64)
        # flat tetrahedra (infinite radius) may be kept here: they add no volume
        if add.size == 0 or kept[add].all():
            break
        kept[add] = True
    raise RepairError(
        f"the alpha shape could not be made a closed 2-manifold in {max_rounds} rounds"
    )
