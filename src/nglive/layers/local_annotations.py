"""Editable annotations kept in the viewer state, synced both ways with a DataFrame.

Rows become annotations of a ``local://annotations`` layer, so a user can add, move
and delete them in Neuroglancer; those edits are written back into the same DataFrame
(rows added, updated, removed; ids kept), and DataFrame edits flow into the viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from typing import TYPE_CHECKING

import neuroglancer
import numpy as np
import pandas as pd

from ..formats.annotations.coord_space import as_coord_space, geometry_columns
from ..formats.validation import TableError, require_columns
from .base import Binding, BoundSource, frame_fingerprint

if TYPE_CHECKING:
    from ..widget import Viewer

# Neuroglancer's JSON members holding each type's geometry, in geometry_columns order.
_GEOMETRY_KEYS = {
    "point": ("point",),
    "line": ("pointA", "pointB"),
    "axis_aligned_bounding_box": ("pointA", "pointB"),
    "ellipsoid": ("center", "radii"),
}
_JSON_TYPE = {"point": "point", "line": "line",
              "axis_aligned_bounding_box": "axis_aligned_bounding_box",
              "ellipsoid": "ellipsoid"}


def rows_to_annotations(df: pd.DataFrame, annotation_type: str, columns: list[str]) -> list:
    """Annotation JSON for every row (vectorised down to one dict per row)."""
    values = df[columns].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad_row, bad_col = np.argwhere(~np.isfinite(values))[0]
        raise TableError("coordinate is not finite", column=columns[bad_col],
                         row=df.index[bad_row], value=values[bad_row, bad_col])
    keys = _GEOMETRY_KEYS[annotation_type]
    rank = len(columns) // len(keys)
    parts = [values[:, i * rank:(i + 1) * rank].tolist() for i in range(len(keys))]
    ids = [str(i) for i in df.index]
    kind = _JSON_TYPE[annotation_type]
    return [
        {"type": kind, "id": ids[r], **{k: parts[j][r] for j, k in enumerate(keys)}}
        for r in range(len(ids))
    ]


class LocalAnnotationLayer(Binding):
    """A DataFrame mirrored as editable annotations in the viewer.

    Returned by :meth:`nglive.Viewer.add_local_annotations`. Points placed in the
    viewer appear as new rows (new integer ids); moved points update their row;
    deleted points remove their row. Other columns of new rows take ``defaults``
    (e.g. ``{"region": "LH"}`` so a click joins a group) or are left missing; integer
    and boolean columns then become pandas' nullable types, so ids stay exact.
    """

    layer_kind = "local_annotations"

    def __init__(self, viewer: Viewer, name: str, df: pd.DataFrame,
                 annotation_type: str = "point", *, coord_space="xyz",
                 defaults: dict | None = None):
        super().__init__(viewer, name)
        self.defaults = dict(defaults or {})
        unknown = [c for c in self.defaults if c not in df.columns]
        if unknown:
            raise TableError(f"defaults name columns the table lacks: {unknown}",
                             column=unknown[0])
        if annotation_type not in _GEOMETRY_KEYS:
            raise ValueError(f"annotation_type must be one of {sorted(_GEOMETRY_KEYS)}, "
                             f"not {annotation_type!r}")
        self.df = df
        self.annotation_type = annotation_type
        self.coord_space = as_coord_space(coord_space)
        self.columns = geometry_columns(annotation_type, self.coord_space)
        require_columns(df, self.columns, purpose=f"{annotation_type} annotations")
        if df.index.has_duplicates:
            dup = df.index[df.index.duplicated()][0]
            raise TableError("duplicate annotation id", column="index", row=dup, value=dup)
        self._sync_lock = threading.Lock()
        self._kernel_loop = _kernel_loop()
        self.sources["annotations"] = BoundSource(
            "annotations",
            fingerprint=lambda: frame_fingerprint(self.df, self.columns),
            snapshot=lambda: self.df[self.columns].copy(),
            encode=lambda snap: {"annotations": rows_to_annotations(
                snap, self.annotation_type, self.columns)},
            writes_files=False,
        )
        self.edits_from_viewer = 0
        self._last_seen: list | None = None
        self._next_new_id = 0
        viewer.ng.shared_state.add_changed_callback(self._on_viewer_state_changed)

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state = {
            "type": "annotation",
            "source": {
                "url": "local://annotations",
                "transform": {"outputDimensions": neuroglancer.CoordinateSpace(
                    names=list(self.coord_space.names), units=list(self.coord_space.units),
                    scales=list(self.coord_space.scales)).to_json()},
            },
            "annotations": self.state_parts.get("annotations", {}).get("annotations", []),
        }
        if first:
            state["tool"] = "annotatePoint" if self.annotation_type == "point" else None
            if state["tool"] is None:
                del state["tool"]
        return state

    def _prepare_for_new_rows(self, df: pd.DataFrame) -> None:
        """Give columns that new rows leave empty a dtype that can hold a missing value.

        pandas would turn an int column into float64 for the gap, and a uint64 id
        column would lose its low digits; nullable integers (and booleans) keep them.
        """
        for col in df.columns:
            if col in self.columns or col in self.defaults:
                continue
            dtype = df[col].dtype
            if dtype.kind in "iu":
                df[col] = df[col].astype(_NULLABLE[dtype.kind][dtype.itemsize])
            elif dtype.kind == "b":
                df[col] = df[col].astype("boolean")

    def update(self, df: pd.DataFrame | None = None, *, force: bool = False,
               wait: bool = True):
        """Push the (new or edited) table to the viewer."""
        if df is not None:
            self.df = df
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def close(self, *, delete: bool = True) -> None:
        # neuroglancer's state outlives the layer (an open event stream holds it): stop
        # listening, so it keeps neither this layer nor its viewer alive
        with contextlib.suppress(ValueError):  # already removed
            self.viewer.ng.shared_state.remove_changed_callback(self._on_viewer_state_changed)
        super().close(delete=delete)

    # -- viewer -> DataFrame ------------------------------------------------------------

    def _on_viewer_state_changed(self) -> None:
        # Called on neuroglancer's server thread; edit the table on the kernel's thread
        # (between cells) when there is one, so user code never sees it change mid-cell.
        loop = self._kernel_loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.pull_from_viewer)
        else:
            self.pull_from_viewer()

    def pull_from_viewer(self) -> bool:
        """Apply annotations added, moved or deleted in the viewer to the DataFrame.

        Returns whether the table changed. Runs by itself on every viewer state change.
        """
        with self._sync_lock:
            if self.viewer.layers.get(self.name) is not self:
                return False
            raw = self.viewer.ng.shared_state.raw_state or {}
            layer = next((la for la in raw.get("layers", []) if la.get("name") == self.name),
                         None)
            if layer is None:
                return False
            anns = layer.get("annotations", [])
            if anns == self._last_seen:  # most state changes are navigation: skip fast
                return False
            changed = self._apply(anns)
            self._last_seen = [dict(a) for a in anns]
        if changed:
            self.edits_from_viewer += 1
            # Let layers bound to the same table (e.g. alpha meshes) follow at once.
            self.viewer._check_layers()
        return changed

    def _apply(self, anns: list) -> bool:
        df = self.df
        keys = _GEOMETRY_KEYS[self.annotation_type]
        kind = _JSON_TYPE[self.annotation_type]
        anns = [a for a in anns if a.get("type") == kind]
        ids = [a["id"] for a in anns]
        coords = np.array([np.concatenate([a[k] for k in keys]) for a in anns],
                          dtype=np.float64).reshape(len(anns), len(self.columns))
        current = {str(i): i for i in df.index}
        known = [i for i in ids if i in current]
        new = [j for j, i in enumerate(ids) if i not in current]
        removed = [current[i] for i in set(current) - set(ids)]
        changed = False
        # ids are never reused, not even those of rows just deleted
        start = max(_next_id(df.index), self._next_new_id)
        if removed:
            with warnings.catch_warnings():
                # pandas 3.1 deprecates inplace=; the user's own DataFrame object must
                # change (they hold a reference to it), so there is no copy to return.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
                if hasattr(pd.errors, "Pandas4Warning"):
                    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
                df.drop(index=removed, inplace=True)
            changed = True
        if known:
            rows = [current[i] for i in known]
            pos = [j for j, i in enumerate(ids) if i in current]
            old = df.loc[rows, self.columns].to_numpy(dtype=np.float64)
            moved = ~np.isclose(old, coords[pos], rtol=1e-6, atol=1e-6).all(axis=1)
            if moved.any():
                idx = np.flatnonzero(moved)
                df.loc[[rows[k] for k in idx], self.columns] = coords[[pos[k] for k in idx]]
                changed = True
        if new:
            self._next_new_id = start + len(new)
            self._prepare_for_new_rows(df)
            cast = df.index.dtype.type if df.index.dtype.kind in "iu" else int
            for k, j in enumerate(new):  # a handful of clicks, not a table-sized loop
                row = {**self.defaults, **dict(zip(self.columns, coords[j], strict=True))}
                df.loc[cast(start + k), list(row)] = list(row.values())
            changed = True
        if changed:
            # re-render so viewer-made ids become the table's integer ids
            self.refresh(force=True, wait=False)
        return changed


_NULLABLE = {"i": {1: "Int8", 2: "Int16", 4: "Int32", 8: "Int64"},
             "u": {1: "UInt8", 2: "UInt16", 4: "UInt32", 8: "UInt64"}}


def _next_id(index: pd.Index) -> int:
    if len(index) == 0:
        return 1
    try:
        return int(np.max(index.to_numpy().astype(np.int64))) + 1
    except (TypeError, ValueError):
        raise TableError("cannot add rows from the viewer: the table's index is not integer",
                         column="index", accepted="integer annotation ids") from None


def _kernel_loop():
    """The Jupyter kernel's event loop, when called from a kernel's cell; else None.

    Only a kernel's loop is used: another running loop in the thread (Playwright's,
    say) may not run between cells, and edits would wait for it forever.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
