"""Alpha-shape meshes of point groups, live: one segment per group, re-meshed on edits.

Each group keeps its :class:`~nglive.mesh.AlphaShaper` (triangulation and circumradii),
so a new alpha is a threshold, and an edit of the points re-triangulates only the
groups whose points changed.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import trimesh

from ..formats.annotations.coord_space import as_coord_space
from ..formats.legacy_mesh import encode_legacy_meshes
from ..formats.multires_mesh import encode_multires_meshes
from ..formats.segment_properties import segment_properties_json
from ..formats.units import nm_per_coordinate
from ..formats.validation import TableError, require_columns
from ..mesh import AlphaShaper
from ..mesh.alpha import resolve_alpha
from .base import Binding, BoundSource, frame_fingerprint
from .meshes import MESH_FORMATS

if TYPE_CHECKING:
    from ..widget import Viewer


@dataclass
class GroupMesh:
    """The cached state of one group: its shaper, chosen alpha and current mesh."""

    label: object
    segment_id: int
    points_hash: bytes = b""
    n_points: int = 0
    shaper: AlphaShaper | None = None
    alpha_setting: float | str = "auto"
    alpha: float | None = None
    resolved_setting: object = None  # the alpha_setting that ``alpha`` was resolved from
    mesh: trimesh.Trimesh | None = None
    report: dict = field(default_factory=dict)
    error: str | None = None


class AlphaMeshLayer(Binding):
    """Alpha-shape meshes of ``points_df``, one segment per group, with properties.

    Returned by :meth:`nglive.Viewer.add_alpha_mesh`. Edit the points table (in code,
    or through a linked local annotation layer) and the changed groups are re-meshed;
    :meth:`set_alpha` re-meshes one group from its cached triangulation;
    :meth:`tuner` gives sliders and a best/test comparison.
    """

    layer_kind = "alpha_meshes"

    def __init__(self, viewer: Viewer, name: str, points_df: pd.DataFrame, *,
                 group_col: str | None = None, alpha="auto", coord_space="xyz",
                 fill_cavities: bool = False, repair: bool = True, format: str = "legacy"):
        if format not in MESH_FORMATS:
            raise ValueError(f"format must be one of {MESH_FORMATS}, not {format!r}")
        super().__init__(viewer, name)
        self.format = format
        self._multires_cache: dict = {}
        self.df = points_df
        self.group_col = group_col
        self.coord_space = as_coord_space(coord_space)
        if self.coord_space.rank != 3:
            raise ValueError(f"alpha meshes need 3-D points; coord_space has "
                             f"{self.coord_space.rank} dimensions")
        # mesh vertices are written in nm, the viewer's model space
        self.nm_per_coordinate = nm_per_coordinate(self.coord_space)
        self.columns = list(self.coord_space.names)
        require_columns(points_df, self.columns + ([group_col] if group_col else []),
                        purpose="alpha-mesh points")
        self.default_alpha = alpha
        self.fill_cavities = fill_cavities
        self.repair = repair
        self.groups: dict[object, GroupMesh] = {}
        self.last_remeshed: list = []
        self.group_errors: dict[object, str] = {}
        self._cache_lock = threading.Lock()
        self._known_segments: set[str] = set()
        self.sources["mesh"] = BoundSource(
            "mesh", fingerprint=self._fingerprint, snapshot=self._snapshot,
            encode=self._encode_meshes)
        self.sources["properties"] = BoundSource(
            "properties", fingerprint=self._fingerprint, snapshot=lambda: None,
            encode=lambda _snap: {"info": self._properties_json()})

    # -- inputs --------------------------------------------------------------------------

    def _bound_columns(self) -> list[str]:
        return self.columns + ([self.group_col] if self.group_col else [])

    def _fingerprint(self) -> bytes:
        alphas = repr(sorted((repr(g.label), repr(g.alpha_setting))
                             for g in self.groups.values())).encode()
        return frame_fingerprint(self.df, self._bound_columns()) + alphas

    def _snapshot(self):
        require_columns(self.df, self._bound_columns(), purpose="alpha-mesh points")
        return self.df[self._bound_columns()].copy()

    def _split(self, df: pd.DataFrame) -> dict:
        if self.group_col is None:
            return {self.name: df[self.columns].to_numpy(dtype=np.float64)}
        groups = {}
        for label, part in df.groupby(self.group_col, sort=False, dropna=True):
            groups[label] = part[self.columns].to_numpy(dtype=np.float64)
        return groups

    # -- meshing (worker thread) -------------------------------------------------------

    def _encode_meshes(self, df: pd.DataFrame) -> dict[str, bytes]:
        coords = df[self.columns].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(coords)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise TableError("coordinate is not finite", column=self.columns[c],
                             row=df.index[r], value=coords[r, c])
        parts = self._split(df)
        remeshed = []
        with self._cache_lock:
            for label in list(self.groups):
                if label not in parts:  # a group whose points were all deleted
                    del self.groups[label]
            for label, pts in parts.items():
                g = self.groups.get(label)
                if g is None:
                    g = self.groups[label] = GroupMesh(
                        label, self._next_segment_id(),
                        alpha_setting=self._initial_alpha(label))
                digest = hashlib.blake2b(np.ascontiguousarray(pts).tobytes(),
                                         digest_size=16).digest()
                if digest != g.points_hash or g.mesh is None and g.error is None:
                    g.points_hash, g.n_points = digest, len(pts)
                    self._triangulate(g, pts)
                    remeshed.append(label)
                elif g.shaper is not None and g.resolved_setting != g.alpha_setting:
                    self._remesh(g)
                    remeshed.append(label)
            self.last_remeshed = remeshed
            self.group_errors = {g.label: g.error for g in self.groups.values() if g.error}
            meshes = {g.segment_id: self._scaled(g.mesh) for g in self.groups.values()
                      if g.mesh is not None}
        if self.format == "multires":  # the cache: only re-meshed groups are re-encoded
            return encode_multires_meshes(meshes, cache=self._multires_cache)
        return encode_legacy_meshes(meshes)

    def _initial_alpha(self, label):
        if isinstance(self.default_alpha, dict):
            return self.default_alpha.get(label, "auto")
        return self.default_alpha

    def _next_segment_id(self) -> int:
        return max((g.segment_id for g in self.groups.values()), default=0) + 1

    def _resolve(self, g: GroupMesh) -> float:
        return resolve_alpha(g.shaper, g.alpha_setting)

    def _triangulate(self, g: GroupMesh, pts: np.ndarray) -> None:
        try:
            g.shaper = AlphaShaper(pts, name=f"group {g.label!r}")
        except Exception as e:  # noqa: BLE001 — one bad group must not stop the others
            g.shaper, g.mesh, g.alpha, g.report = None, None, None, {}
            g.error = _group_message(g.label, e)
            return
        self._remesh(g)

    def _remesh(self, g: GroupMesh) -> None:
        try:
            g.alpha = self._resolve(g)
            g.resolved_setting = g.alpha_setting
            g.mesh = g.shaper.mesh(g.alpha, fill_cavities=self.fill_cavities,
                                   repair=self.repair)
            g.report = g.shaper.report(g.alpha, fill_cavities=self.fill_cavities,
                                       repair=self.repair).to_dict()
            g.error = None
        except Exception as e:  # noqa: BLE001
            g.mesh = None
            g.error = _group_message(g.label, e)

    def _scaled(self, mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        if np.all(self.nm_per_coordinate == 1.0):
            return mesh
        return trimesh.Trimesh(mesh.vertices * self.nm_per_coordinate, mesh.faces,
                               process=False)

    def _properties_json(self) -> bytes:
        with self._cache_lock:
            rows = [g for g in self.groups.values() if g.mesh is not None]
            table = pd.DataFrame({
                "segment_id": np.array([g.segment_id for g in rows], dtype=np.uint64),
                "group": [str(g.label) for g in rows],
                "alpha": np.array([g.alpha for g in rows], dtype=np.float32),
                "volume": np.array([g.report.get("volume", np.nan) for g in rows],
                                   dtype=np.float32),
                "points": np.array([g.n_points for g in rows], dtype=np.uint32),
                "watertight": np.array([bool(g.report.get("watertight")) for g in rows]),
                "valid_volume": np.array([bool(g.report.get("is_volume")) for g in rows]),
            })
        return segment_properties_json(
            table, id_col="segment_id", label_col="group",
            number_cols=["alpha", "volume", "points"],
            tag_bool_cols=["watertight", "valid_volume"])

    # -- public --------------------------------------------------------------------------

    def update(self, df: pd.DataFrame | None = None, *, force: bool = False,
               wait: bool = True):
        """Re-mesh from a new points table (or the bound one, re-read)."""
        if df is not None:
            self.df = df
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def set_alpha(self, group=None, alpha="auto", *, wait: bool = True):
        """Set one group's alpha (a number, "auto" or "optimal") and re-mesh it.

        Only the threshold changes: the group's cached triangulation is reused.
        """
        g = self._group(group)
        g.alpha_setting = alpha if isinstance(alpha, str) else float(alpha)
        return self.refresh(wait=wait)

    def _group(self, group) -> GroupMesh:
        if group is None:
            if len(self.groups) != 1:
                raise ValueError(f"name the group: this layer has {list(self.groups)}")
            return next(iter(self.groups.values()))
        if group not in self.groups:
            raise KeyError(f"no group {group!r}; groups are {list(self.groups)}")
        return self.groups[group]

    def shaper(self, group=None) -> AlphaShaper:
        """The cached :class:`~nglive.mesh.AlphaShaper` of a group."""
        g = self._group(group)
        if g.shaper is None:
            raise ValueError(g.error or f"group {g.label!r} has no triangulation")
        return g.shaper

    def reports(self) -> pd.DataFrame:
        """One row per group: segment id, alpha, watertight, volume, points, error.

        ``n_solids`` counts solid components (cavities do not count, as in CGAL);
        ``n_components`` counts surfaces, a sealed cavity's shell included (mesh with
        ``fill_cavities=True`` to drop them); ``merged_duplicates`` counts repeated
        points merged before meshing.
        """
        rows = []
        for g in self.groups.values():
            rows.append({"group": g.label, "segment_id": g.segment_id, "alpha": g.alpha,
                         "points": g.n_points, **{k: g.report.get(k) for k in (
                             "watertight", "is_volume", "n_components", "n_solids",
                             "points_outside", "merged_duplicates", "volume")},
                         "error": g.error})
        return pd.DataFrame(rows)

    def meshes(self) -> dict:
        """``{group: trimesh.Trimesh}`` of the current meshes, in the points' units."""
        return {g.label: g.mesh for g in self.groups.values() if g.mesh is not None}

    def pin(self, name: str | None = None, color: str = "#ffa500", opacity: float = 0.4):
        """Keep a copy of the current meshes as a fixed, semi-transparent layer.

        The tracertools best/test comparison without a bucket: pin the "best" meshes,
        keep tuning the live "test" layer, and compare both in the viewer.
        """
        name = name or f"{self.name} (best)"
        meshes = {g.segment_id: self._scaled(g.mesh.copy()) for g in self.groups.values()
                  if g.mesh is not None}
        if name in self.viewer.layers:
            self.viewer.remove_layer(name)
        pinned = self.viewer.add_meshes(name, meshes)
        with self.viewer.txn() as s:
            layer = s.layers[name]
            layer.segment_colors = {sid: color for sid in meshes}
            layer.object_alpha = opacity
        return pinned

    def tuner(self):
        """An ipywidgets panel to tune each group's alpha; see :mod:`nglive.layers.tuner`.

        The panel appears at once; each group's plot of volume against alpha fills in
        when its spectrum has been computed in a background thread (about 1-2 s per
        group at 100k points; ``panel.groups[label].spectrum`` is its future).
        """
        from .tuner import AlphaTuner

        return AlphaTuner(self)

    def view_bounds(self):
        with self._cache_lock:
            meshes = [self._scaled(g.mesh) for g in self.groups.values() if g.mesh is not None]
        if not meshes:
            return None
        lo = np.min([m.bounds[0] for m in meshes], axis=0)
        hi = np.max([m.bounds[1] for m in meshes], axis=0)
        return lo, hi

    def problems(self) -> list[str]:
        return super().problems() + list(self.group_errors.values())

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state = {"type": "segmentation", "source": [urls["mesh"], urls["properties"]]}
        # newly meshed groups become visible; groups the user hid stay hidden
        visible = [str(g.segment_id) for g in self.groups.values() if g.mesh is not None]
        if first:
            state["segments"] = visible
        else:
            current = self.viewer._layer_json(self.name) or {}
            shown = set(current.get("segments", []))
            known = self._known_segments
            state["segments"] = sorted(shown | {s for s in visible if s not in known})
        self._known_segments = set(visible)
        return state


def _group_message(label, error: Exception) -> str:
    text = str(error)
    return text if repr(label) in text else f"group {label!r}: {text}"
