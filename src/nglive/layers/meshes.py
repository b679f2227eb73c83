"""A segmentation layer of legacy meshes, with segment properties from a DataFrame."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from ..formats.legacy_mesh import encode_legacy_meshes
from ..formats.validation import TableError, as_uint64_ids, require_columns
from .base import Binding, BoundSource, frame_fingerprint

if TYPE_CHECKING:
    from ..widget import Viewer


def _mesh_fingerprint(meshes: Mapping) -> bytes:
    # trimesh caches a content hash per mesh, so this costs little after the first call
    h = hashlib.blake2b(digest_size=16)
    for sid, mesh in meshes.items():
        h.update(repr(sid).encode())
        if hasattr(mesh, "identifier_hash"):
            h.update(str(mesh.identifier_hash).encode())
        elif hasattr(mesh, "__hash__") and hasattr(mesh, "vertices"):
            h.update(str(hash(mesh)).encode())
        else:
            h.update(repr(mesh).encode())
    return h.digest()


def properties_keywords(df: pd.DataFrame, id_col: str, label_col, keywords: dict) -> dict:
    """Default segment-property keywords: a label and every numeric column as numbers."""
    kw = dict(keywords)
    kw["id_col"] = id_col
    if label_col is not None:
        kw["label_col"] = label_col
    explicit = {"label_col", "description_col", "string_cols", "number_cols",
                "tag_value_cols", "tag_bool_cols"}
    if not (explicit & set(keywords)):
        used = {id_col, label_col}
        kw["number_cols"] = [
            c for c in df.columns
            if c not in used
            and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
        ]
        kw["tag_bool_cols"] = [
            c for c in df.columns if c not in used and pd.api.types.is_bool_dtype(df[c])
        ]
    return kw


def bound_columns(kw: dict) -> list[str]:
    """Every column the segment-property keywords read."""
    cols: list[str] = []
    for key in ("id_col", "label_col", "description_col"):
        val = kw.get(key)
        if isinstance(val, str):
            cols.append(val)
        elif val:
            cols.extend(val)
    for key in ("string_cols", "number_cols", "tag_value_cols", "tag_bool_cols"):
        val = kw.get(key)
        if isinstance(val, str):
            cols.append(val)
        elif val:
            cols.extend(val)
    fmt = kw.get("label_format_map")
    if fmt:
        import string

        cols.extend(f for _, f, _, _ in string.Formatter().parse(fmt) if f)
    return list(dict.fromkeys(cols))


def encode_properties(df: pd.DataFrame, kw: dict) -> dict[str, bytes]:
    """The ``info`` file of a segment-properties source, as strict JSON."""
    from ..formats.segment_properties import segment_properties

    info = segment_properties(df, **kw)
    return {"info": json.dumps(info, allow_nan=False, separators=(",", ":")).encode()}


class MeshLayer(Binding):
    """A segmentation layer showing ``{segment id: mesh}`` with properties from a table.

    Returned by :meth:`nglive.Viewer.add_meshes`. Edit ``layer.df`` in place (the
    viewer regenerates after the cell) or call :meth:`update`.
    """

    layer_kind = "meshes"

    def __init__(
        self,
        viewer: Viewer,
        name: str,
        meshes: Mapping,
        properties: pd.DataFrame | None = None,
        *,
        id_col: str = "segment_id",
        label_col: str | None = None,
        **property_keywords,
    ):
        super().__init__(viewer, name)
        self.meshes = meshes
        self.df = properties
        self.id_col = id_col
        self.label_col = label_col
        self.property_keywords = property_keywords
        self.sources["mesh"] = BoundSource(
            "mesh",
            fingerprint=lambda: _mesh_fingerprint(self.meshes),
            snapshot=lambda: dict(self.meshes),
            encode=encode_legacy_meshes,
        )
        if properties is not None:
            self._add_properties_source()
        self._segments: list[str] = []

    def _keywords(self) -> dict:
        return properties_keywords(self.df, self.id_col, self.label_col, self.property_keywords)

    def _add_properties_source(self) -> None:
        def snapshot():
            kw = self._keywords()
            cols = bound_columns(kw)
            require_columns(self.df, cols, purpose="segment properties")
            return self.df[cols].copy(), kw

        self.sources["properties"] = BoundSource(
            "properties",
            fingerprint=lambda: frame_fingerprint(self.df, bound_columns(self._keywords())),
            snapshot=snapshot,
            encode=lambda snap: encode_properties(*snap),
        )

    def update(self, df: pd.DataFrame | None = None, *, meshes: Mapping | None = None,
               wait: bool = True):
        """Regenerate from new or edited data.

        Parameters
        ----------
        df : DataFrame, optional
            A new properties table (else the bound one, re-read).
        meshes : mapping, optional
            New ``{segment id: mesh}`` (else the bound ones, re-read).
        wait : bool
            Block until the viewer has the new data and re-raise any error.
        """
        if df is not None:
            self.df = df
            if "properties" not in self.sources:
                self._add_properties_source()
        if meshes is not None:
            self.meshes = meshes
        return self.refresh(force=df is None and meshes is None, wait=wait)

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state = {"type": "segmentation", "source": [urls["mesh"]]}
        if "properties" in urls:
            state["source"].append(urls["properties"])
        if first:
            ids = as_uint64_ids(pd.Series(list(self.meshes), dtype=object), column="segment id")
            state["segments"] = [str(i) for i in ids.tolist()]
        return state


def check_mesh_ids_in_table(meshes: Mapping, df: pd.DataFrame, id_col: str) -> None:
    """Raise if the properties table lacks an id column (a common first mistake)."""
    if df is not None and id_col not in df.columns:
        raise TableError(
            f"the properties table has no id column; pass id_col= one of {list(df.columns)}",
            column=id_col,
        )
