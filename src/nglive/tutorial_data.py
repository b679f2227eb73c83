"""Real neurons for the tutorials: navis's bundled hemibrain data as nglive-ready tables.

`navis <https://navis-org.github.io/navis/>`_ ships a small piece of the janelia
hemibrain connectome in its wheel: five DA1 projection neurons (skeletons with synapse
tables, and meshes) and neuropil meshes such as the lateral horn. These functions turn
it into what the tutorials bind to a :class:`nglive.Viewer`, offline.

Units, stated once for the whole module:

- **Meshes are in nanometres** (``neuron_meshes``, ``lateral_horn_mesh``): the
  viewer's model space, what :meth:`nglive.Viewer.add_meshes` expects.
- **Point tables are in hemibrain voxels of 8 nm** (``synapse_table``,
  ``lateral_horn_points``), the dataset's own coordinates. Pass
  ``coord_space=VOXELS`` when binding them (``add_annotations``, ``add_alpha_mesh``,
  ``add_local_annotations``) and nglive scales them; nothing is rescaled silently.

navis labels the lateral horn volume "1 nanometer", but its coordinates are 8 nm voxels
like the neurons' (every synapse navis tags ``LH(R)`` lies inside it only in voxel
coordinates; the tests check this), so it is scaled by 8 like the neurons.

navis is imported only when a function is called; install it with ``pip install navis``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import trimesh

#: Nanometres per hemibrain voxel.
VOXEL_NM = 8.0

#: The hemibrain's voxel space, for ``coord_space=`` of tables in voxels.
VOXELS = {"x": [VOXEL_NM, "nm"], "y": [VOXEL_NM, "nm"], "z": [VOXEL_NM, "nm"]}

#: One colour per example neuron (in the order navis lists them).
NEURON_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4")

#: Colours of the synapse types.
SYNAPSE_COLORS = {"pre": "#ff4040", "post": "#40a0ff"}


def _navis():
    try:
        import navis
    except ImportError as e:
        raise ImportError(
            "nglive.tutorial_data needs navis for its bundled hemibrain neurons: "
            "pip install navis") from e
    return navis


@functools.lru_cache(maxsize=1)
def _skeletons():
    return _navis().example_neurons(kind="skeleton")


@functools.lru_cache(maxsize=1)
def _mesh_neurons():
    return _navis().example_neurons(kind="mesh")


@functools.lru_cache(maxsize=1)
def _lh_volume():
    return _navis().example_volume("LH")


def _ids(neurons) -> np.ndarray:
    return np.array([str(n.id) for n in neurons], dtype=np.uint64)  # never via float


def neuron_meshes() -> dict[int, trimesh.Trimesh]:
    """The five example neurons as meshes, in nanometres.

    Returns
    -------
    dict[int, trimesh.Trimesh]
        ``{segment id: mesh}``; hemibrain body ids as Python ints, vertices in nm
        (navis's 8 nm voxels times 8).

    Examples
    --------
    >>> from nglive.tutorial_data import neuron_meshes
    >>> meshes = neuron_meshes()
    >>> sorted(meshes)[:2]
    [722817260, 754534424]
    >>> bool(meshes[722817260].vertices.max() > 1e5)  # nm, not voxels
    True
    """
    import trimesh

    neurons = _mesh_neurons()
    return {int(i): trimesh.Trimesh(np.asarray(n.vertices, np.float64) * VOXEL_NM,
                                    np.asarray(n.faces, np.int64), process=False)
            for i, n in zip(_ids(neurons), neurons, strict=True)}


def synapse_table() -> pd.DataFrame:
    """Every synapse (connector) of the five example neurons, one row each, in voxels.

    Returns
    -------
    DataFrame
        Indexed by ``annotation_id`` (0 … n-1, unique across neurons). Columns:

        - ``x, y, z`` (float32): position in **8 nm voxels** (bind with
          ``coord_space=VOXELS``);
        - ``type`` (Categorical ``["pre", "post"]``): presynapse (output) or
          postsynapse (input) of the neuron;
        - ``neuron_id`` (uint64): the neuron the synapse belongs to, for a
          relationship (``relationships=["neuron_id"]``);
        - ``roi`` (Categorical): the neuropil navis assigns, ``"none"`` where it has none;
        - ``confidence`` (float32): the detection confidence;
        - ``connector_id`` (int64): navis's connector id (unique per neuron only).

    Examples
    --------
    >>> from nglive.tutorial_data import synapse_table
    >>> syn = synapse_table()
    >>> syn["type"].cat.categories.tolist(), str(syn["neuron_id"].dtype)
    (['pre', 'post'], 'uint64')
    >>> syn.groupby("type", observed=True).size().to_dict()
    {'pre': 3316, 'post': 11520}
    """
    neurons = _skeletons()
    tables = [n.connectors for n in neurons]
    lengths = np.array([len(t) for t in tables])
    con = pd.concat(tables, ignore_index=True)
    roi = con["roi"].astype("string").fillna("none")
    out = pd.DataFrame({
        "x": con["x"].to_numpy(np.float32),
        "y": con["y"].to_numpy(np.float32),
        "z": con["z"].to_numpy(np.float32),
        "type": pd.Categorical(con["type"].to_numpy(str), categories=["pre", "post"]),
        "neuron_id": np.repeat(_ids(neurons), lengths),
        "roi": pd.Categorical(roi.to_numpy(str)),
        "confidence": con["confidence"].to_numpy(np.float32),
        "connector_id": con["connector_id"].to_numpy(np.int64),
    })
    out.index = pd.RangeIndex(len(out), name="annotation_id")
    if out["type"].isna().any():
        unknown = sorted(set(con["type"].astype(str)) - {"pre", "post"})
        raise ValueError(f"navis connector types {unknown} are not 'pre' or 'post'")
    return out


def neuron_table(synapses: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per example neuron: id, name, type, colour, cable length, synapse counts.

    Parameters
    ----------
    synapses : DataFrame, optional
        A :func:`synapse_table` to count from (read from navis when omitted).

    Returns
    -------
    DataFrame
        ``segment_id`` (uint64), ``name`` (navis's name, ``"DA1_lPN_R"``), ``type``
        (Categorical cell type, ``"DA1_lPN"``), ``color`` ('#rrggbb'),
        ``cable_length_um`` (float32, µm), ``n_pre`` and ``n_post`` (int32 synapse
        counts) and ``has_soma`` (bool).

    Examples
    --------
    >>> from nglive.tutorial_data import neuron_table
    >>> table = neuron_table()
    >>> table[["segment_id", "n_pre", "n_post"]].head(2)
       segment_id  n_pre  n_post
    0  1734350788    621    2084
    1  1734350908    725    2317
    >>> round(float(table["cable_length_um"].iloc[0]))  # 266,477 voxels of 8 nm
    2132
    """
    neurons = _skeletons()
    ids = _ids(neurons)
    syn = synapse_table() if synapses is None else synapses
    row = pd.Index(ids).get_indexer(syn["neuron_id"].to_numpy(np.uint64))
    kind = syn["type"].astype(str).to_numpy()
    counts = {t: np.bincount(row[(kind == t) & (row >= 0)], minlength=len(ids))
              for t in ("pre", "post")}
    names = [str(n.name) for n in neurons]
    return pd.DataFrame({
        "segment_id": ids,
        "name": names,
        "type": pd.Categorical([nm.rsplit("_", 1)[0] for nm in names]),
        "color": list(NEURON_COLORS[: len(ids)]),
        "cable_length_um": (np.asarray(neurons.cable_length, np.float64)
                            * VOXEL_NM / 1e3).astype(np.float32),
        "n_pre": counts["pre"].astype(np.int32),
        "n_post": counts["post"].astype(np.int32),
        "has_soma": np.array([n.soma is not None for n in neurons]),
    })


def lateral_horn_mesh() -> trimesh.Trimesh:
    """The lateral horn neuropil (right hemisphere) as a mesh, in nanometres.

    Returns
    -------
    trimesh.Trimesh
        Watertight; vertices in nm (navis's coordinates, 8 nm voxels, times 8).

    Examples
    --------
    >>> from nglive.tutorial_data import lateral_horn_mesh
    >>> lh = lateral_horn_mesh()
    >>> lh.is_watertight, round(lh.volume / 1e9)  # µm³
    (True, 252118)
    """
    import trimesh

    v = _lh_volume()
    return trimesh.Trimesh(np.asarray(v.vertices, np.float64) * VOXEL_NM,
                           np.asarray(v.faces, np.int64), process=False)


def winding_number(points, vertices, faces, *, chunk: int = 256) -> np.ndarray:
    """The generalised winding number of a closed triangle mesh at each point.

    About 1 inside, 0 outside, for any orientation-consistent closed mesh (the sign
    follows the faces' orientation). Exact solid angles (Van Oosterom & Strackee),
    vectorised over points x faces in chunks; no ray casting, no spatial index.

    Parameters
    ----------
    points : (N, 3) array
    vertices : (V, 3) array
    faces : (F, 3) int array
    chunk : int
        Points per chunk (memory is about ``chunk * F * 200`` bytes).

    Returns
    -------
    (N,) float64 array

    Examples
    --------
    >>> import trimesh
    >>> box = trimesh.creation.box()
    >>> winding_number([[0, 0, 0], [2, 0, 0]], box.vertices, box.faces).round(6)
    array([1., 0.])
    """
    p = np.atleast_2d(np.asarray(points, np.float64))
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]  # (F, 3 corners, 3)
    corners = [np.ascontiguousarray(tri[:, k].T)[:, None, :] for k in range(3)]  # (3, 1, F)
    out = np.empty(len(p))
    for start in range(0, len(p), chunk):  # chunks of points, not rows of a table
        q = p[start:start + chunk].T[:, :, None]  # (3, n, 1)
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = (k - q for k in corners)  # (n, F) each
        la = np.sqrt(ax * ax + ay * ay + az * az)
        lb = np.sqrt(bx * bx + by * by + bz * bz)
        lc = np.sqrt(cx * cx + cy * cy + cz * cz)
        det = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
        den = (la * lb * lc + (ax * bx + ay * by + az * bz) * lc
               + (ax * cx + ay * cy + az * cz) * lb + (bx * cx + by * cy + bz * cz) * la)
        out[start:start + chunk] = np.arctan2(det, den).sum(axis=1) / (2 * np.pi)
    return out


def lateral_horn_points(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Points sampled uniformly inside the lateral horn, in 8 nm voxels.

    Rejection sampling in the bounding box. Inside is decided by ncollpyde (installed
    with navis; what ``navis.in_volume`` uses), or by :func:`winding_number` without it.

    Parameters
    ----------
    n : int
        Number of points.
    seed : int
        Seed of the random generator (same seed, same points).

    Returns
    -------
    DataFrame
        ``x, y, z`` (float64) in **8 nm voxels** (bind with ``coord_space=VOXELS``),
        indexed ``0 … n-1`` (``annotation_id``).

    Examples
    --------
    >>> from nglive.tutorial_data import lateral_horn_points
    >>> pts = lateral_horn_points(500, seed=1)
    >>> pts.shape, pts.index.name
    ((500, 3), 'annotation_id')
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    v = _lh_volume()
    vertices = np.asarray(v.vertices, np.float64)  # voxels
    faces = np.asarray(v.faces, np.int64)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    contains = _inside_test(vertices, faces)
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    total = 0
    while total < n:  # ~3 candidates per point (the LH fills a third of its box)
        cand = rng.uniform(lo, hi, size=(max(64, int((n - total) * 3.5)), 3))
        inside = cand[contains(cand)]
        kept.append(inside)
        total += len(inside)
    pts = np.concatenate(kept)[:n] if kept else np.empty((0, 3))
    return pd.DataFrame(pts, columns=["x", "y", "z"],
                        index=pd.RangeIndex(n, name="annotation_id"))


def _inside_test(vertices: np.ndarray, faces: np.ndarray):
    """A function telling which points lie inside a closed mesh."""
    try:
        import ncollpyde
    except ImportError:
        tri = vertices[faces]  # outward faces enclose a positive signed volume
        signed = np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()
        sign = 1.0 if signed > 0 else -1.0
        return lambda pts: sign * winding_number(pts, vertices, faces) > 0.5
    volume = ncollpyde.Volume(vertices, faces.astype(np.uint32))
    return lambda pts: volume.contains(pts)
