"""One alpha-shape mesh per group of points in a DataFrame: union, smoothing, decimation, OBJ."""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from ..formats.validation import TableError, first_bad_row, require_columns
from .alpha import AlphaShaper, resolve_alpha
from .checks import surface_check

__all__ = [
    "GroupMeshError",
    "decimate",
    "mesh_from_groups",
    "smooth",
    "union_meshes",
]


class GroupMeshError(ValueError):
    """Some groups could not be meshed; ``errors`` maps each group to its exception and
    ``meshes`` holds the groups that did mesh."""

    def __init__(self, errors: dict, meshes: dict):
        self.errors = errors
        self.meshes = meshes
        lines = "; ".join(str(e) for e in errors.values())
        ok = f" ({len(meshes)} other group(s) meshed fine)" if meshes else ""
        super().__init__(f"{len(errors)} group(s) failed{ok}: {lines}")


def smooth(mesh: trimesh.Trimesh, iterations: int = 10) -> trimesh.Trimesh:
    """Taubin smoothing (shrink-free Laplacian), returning a new mesh.

    Examples
    --------
    >>> import trimesh
    >>> m = smooth(trimesh.creation.icosphere(), iterations=5)
    >>> m.is_volume
    True
    """
    out = mesh.copy()
    if iterations > 0 and len(out.faces):
        trimesh.smoothing.filter_taubin(out, lamb=0.5, nu=0.53, iterations=iterations)
    return out


def _drop_back_to_back(faces: np.ndarray) -> np.ndarray:
    key = np.sort(faces, axis=1)
    _, inv, count = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return faces[count[inv.reshape(-1)] == 1]


def decimate(mesh: trimesh.Trimesh, reduction: float) -> trimesh.Trimesh:
    """Quadric decimation (fast-simplification) that never returns an invalid volume.

    The result is checked with :func:`~nglive.mesh.surface_check`. Quadric collapses can
    leave back-to-back duplicate faces; those pairs are dropped and the result checked
    again. If it still is not a closed 2-manifold with positive volume, a warning is
    issued and the input mesh is returned unchanged (``metadata["decimated"]`` is False).

    Parameters
    ----------
    mesh : trimesh.Trimesh
    reduction : float
        Fraction of faces to remove, in ``[0, 1)``.

    Examples
    --------
    >>> import trimesh
    >>> m = decimate(trimesh.creation.icosphere(subdivisions=3), 0.5)
    >>> len(m.faces) < 1280, m.is_volume
    (True, True)
    """
    import fast_simplification

    if not 0 <= reduction < 1:
        raise ValueError(f"reduction must be in [0, 1), got {reduction!r}")
    if reduction == 0 or len(mesh.faces) == 0:
        return mesh.copy()
    centre = mesh.bounds.mean(axis=0)  # keep float precision for large coordinates
    v, f = fast_simplification.simplify(
        np.ascontiguousarray(mesh.vertices - centre),
        np.ascontiguousarray(mesh.faces, dtype=np.int64),
        target_reduction=float(reduction),
    )
    for attempt in (f, _drop_back_to_back(f)):
        if len(attempt) and surface_check(attempt, len(v)).is_manifold:
            out = trimesh.Trimesh(v + centre, attempt, process=False)
            out.remove_unreferenced_vertices()
            if out.volume > 0:
                out.metadata.update(mesh.metadata, decimated=True)
                return out
    warnings.warn(
        f"decimation by {reduction:.0%} did not give a valid volume; keeping the "
        f"{len(mesh.faces)}-face mesh",
        stacklevel=2,
    )
    out = mesh.copy()
    out.metadata["decimated"] = False
    return out


def union_meshes(meshes: Mapping[Hashable, trimesh.Trimesh] | Sequence[trimesh.Trimesh]):
    """Boolean union of valid volumes with manifold3d.

    manifold3d accepts non-manifold input without complaint, so every input is checked
    first and a ``ValueError`` names the ones that are not closed 2-manifolds.

    Examples
    --------
    >>> import trimesh
    >>> a = trimesh.creation.box()
    >>> b = trimesh.creation.box().apply_translation([0.5, 0, 0])
    >>> round(float(union_meshes([a, b]).volume), 6)
    1.5
    """
    import manifold3d as m3d

    items = dict(meshes) if isinstance(meshes, Mapping) else dict(enumerate(meshes))
    bad = [k for k, m in items.items() if not surface_check(m.faces, len(m.vertices)).is_manifold]
    if bad:
        raise ValueError(
            f"cannot union: the meshes of {bad} are not closed 2-manifolds (mesh them with "
            "repair=True)"
        )
    if not items:
        return trimesh.Trimesh()
    centre = np.mean([m.bounds.mean(axis=0) for m in items.values()], axis=0)
    # manifold3d >= 3 has float64 meshes; before that, float32 around a common centre
    wide = hasattr(m3d, "Mesh64")
    mesh_cls, real, index = (
        (m3d.Mesh64, np.float64, np.uint64) if wide else (m3d.Mesh, np.float32, np.uint32)
    )
    parts = []
    for key, m in items.items():
        man = m3d.Manifold(
            mesh_cls(
                vert_properties=np.ascontiguousarray(m.vertices - centre, dtype=real),
                tri_verts=np.ascontiguousarray(m.faces, dtype=index),
            )
        )
        if man.status() != m3d.Error.NoError:
            raise ValueError(f"manifold3d rejected the mesh of {key!r}: {man.status()}")
        parts.append(man)
    merged = m3d.Manifold.batch_boolean(parts, m3d.OpType.Add)
    out = merged.to_mesh64() if wide else merged.to_mesh()
    return trimesh.Trimesh(
        np.asarray(out.vert_properties, dtype=np.float64)[:, :3] + centre,
        np.asarray(out.tri_verts, dtype=np.int64),
        process=False,
    )


def _safe_name(label) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("._") or "group"


def mesh_from_groups(
    df: pd.DataFrame,
    group_col: str,
    alphas: float | str | Mapping | None = None,
    union: bool = False,
    *,
    columns: Sequence[str] = ("x", "y", "z"),
    fill_cavities: bool = False,
    repair: bool = True,
    smoothing: int = 0,
    reduction: float = 0.0,
    obj_dir: str | Path | None = None,
    on_error: str = "raise",
):
    """One alpha-shape mesh per group of points (a point layer, a label, ...).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per point, with coordinate ``columns`` and ``group_col``.
    group_col : str
        Column whose values name the groups.
    alphas : float, "auto", "optimal", or mapping, optional
        One spec for every group, or ``{group: spec}`` (missing groups use ``"auto"``).
        Default ``"auto"`` (the tracertools rule).
    union : bool
        Also merge all groups into one mesh with a manifold3d boolean union.
    columns : sequence of str
        The x, y, z columns.
    fill_cavities, repair : bool
        As in :meth:`AlphaShaper.mesh`; ``repair`` (default on) makes every group a
        valid volume, which the union needs.
    smoothing : int
        Taubin smoothing iterations per mesh (0: none).
    reduction : float
        Quadric decimation: fraction of faces to remove (0: none); see :func:`decimate`.
    obj_dir : str or Path, optional
        Write ``<group>.obj`` per group (and ``union.obj``) into this directory.
    on_error : {"raise", "warn"}
        A group that cannot be meshed (too few points, NaN, flat) never stops the
        others. ``"raise"`` then raises :class:`GroupMeshError` naming every failed
        group (the meshes that worked are on the exception); ``"warn"`` warns and
        leaves them out.

    Returns
    -------
    dict or trimesh.Trimesh
        ``{group: mesh}`` in order of first appearance, each mesh's ``metadata`` holding
        the group, point count and :class:`AlphaReport` fields; with ``union=True``, the
        single merged mesh (``metadata["groups"]`` lists the groups).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(500, 3)), rng.normal(size=(500, 3)) + [6, 0, 0]
    >>> df = pd.DataFrame(np.r_[a, b], columns=list("xyz")).assign(layer=["a"] * 500 + ["b"] * 500)
    >>> meshes = mesh_from_groups(df, "layer")
    >>> sorted(meshes), all(m.is_volume for m in meshes.values())
    (['a', 'b'], True)
    """
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    columns = list(columns)
    require_columns(df, [group_col, *columns], purpose="mesh_from_groups")
    missing = df[group_col].isna().to_numpy()
    if missing.any():
        raise TableError(
            "no group label", column=group_col, row=first_bad_row(df, missing), value=None
        )
    specs = alphas if isinstance(alphas, Mapping) else None
    meshes: dict = {}
    errors: dict = {}
    for label, part in df.groupby(group_col, sort=False):
        name = f"group {label!r}"
        try:
            shaper = AlphaShaper(part[columns], name=name)
            spec = specs.get(label, "auto") if specs is not None else alphas
            spec = "auto" if spec is None else spec
            a = resolve_alpha(shaper, spec)
            mesh = shaper.mesh(a, fill_cavities=fill_cavities, repair=repair)
            meta = shaper.report(a, fill_cavities=fill_cavities, repair=repair).to_dict()
        except ValueError as exc:
            errors[label] = exc
            continue
        if smoothing:
            mesh = smooth(mesh, smoothing)
        if reduction:
            mesh = decimate(mesh, reduction)
        mesh.metadata.update(meta, group=label, n_points=len(part))
        meshes[label] = mesh
    if errors and on_error == "raise":
        raise GroupMeshError(errors, meshes)
    if errors:
        warnings.warn(str(GroupMeshError(errors, meshes)), stacklevel=2)
    if obj_dir is not None:
        out = Path(obj_dir)
        out.mkdir(parents=True, exist_ok=True)
        for label, mesh in meshes.items():
            mesh.export(out / f"{_safe_name(label)}.obj", file_type="obj")
    if not union:
        return meshes
    merged = union_meshes(meshes)
    merged.metadata["groups"] = list(meshes)
    if obj_dir is not None:
        merged.export(Path(obj_dir) / "union.obj", file_type="obj")
    return merged
