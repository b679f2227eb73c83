"""A segmentation layer of meshes (legacy or multi-resolution), with segment properties
from a DataFrame."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..formats.legacy_mesh import encode_legacy_meshes
from ..formats.multires_mesh import encode_multires_meshes
from ..formats.units import nm_per_coordinate
from ..formats.validation import as_uint64_ids
from .base import BoundSource
from .segment_properties import PropertiesBinding

if TYPE_CHECKING:
    from ..widget import Viewer

MESH_FORMATS = ("legacy", "multires")


def _mesh_fingerprint(meshes: Mapping) -> bytes:
    # Content hashes of vertices and faces. trimesh's arrays cache theirs until they
    # change, so this costs little after the first call. (Not ``identifier_hash``: it is
    # blind to rigid moves and overflows for large coordinates, e.g. a neuropil in nm.)
    h = hashlib.blake2b(digest_size=16)
    for sid, mesh in meshes.items():
        h.update(repr(sid).encode())
        parts = (mesh.vertices, mesh.faces) if hasattr(mesh, "vertices") else mesh
        for part in parts:
            if hasattr(part, "_dirty_hash"):  # a trimesh TrackedArray
                h.update(f"{part.shape}{part.dtype}{hash(part)}".encode())
            else:
                arr = np.ascontiguousarray(part)
                h.update(f"{arr.shape}{arr.dtype}".encode())
                h.update(arr.view(np.uint8).tobytes() if arr.dtype != object
                         else repr(arr.tolist()).encode())
    return h.digest()


class MeshLayer(PropertiesBinding):
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
        color_col: str | None = None,
        visible_col: str | None = None,
        coord_space="xyz",
        format: str = "legacy",
        **property_keywords,
    ):
        if format not in MESH_FORMATS:
            raise ValueError(f"format must be one of {MESH_FORMATS}, not {format!r}")
        super().__init__(viewer, name)
        self.format = format
        self._multires_cache: dict = {}
        self.meshes = meshes
        self.nm_per_coordinate = nm_per_coordinate(coord_space)
        self.df = None
        # segment ids (text) of the meshes last encoded, and of those before: new ids
        # become visible, ids the user hid stay hidden
        self._mesh_ids: list[str] = []
        self.sources["mesh"] = BoundSource(
            "mesh",
            fingerprint=lambda: _mesh_fingerprint(self.meshes),
            snapshot=lambda: dict(self.meshes),
            encode=self._encode_meshes,
        )
        if properties is not None:
            self.bind_properties(properties, id_col=id_col, label_col=label_col,
                                 color_col=color_col, visible_col=visible_col,
                                 **property_keywords)

    def _encode_meshes(self, meshes: Mapping) -> dict[str, bytes]:
        if self.format == "multires":  # the cache: only edited meshes are re-encoded
            files = encode_multires_meshes(self._in_nm(meshes), cache=self._multires_cache)
        else:
            files = encode_legacy_meshes(self._in_nm(meshes))
        ids = as_uint64_ids(pd.Series(list(meshes), dtype=object), column="segment id")
        self._mesh_ids = [str(i) for i in ids.tolist()]
        return files

    def _in_nm(self, meshes: Mapping) -> Mapping:
        scale = self.nm_per_coordinate
        if np.all(scale == 1.0):
            return meshes
        out = {}
        for sid, mesh in meshes.items():
            vertices, faces = (mesh.vertices, mesh.faces) if hasattr(mesh, "vertices") else mesh
            out[sid] = (np.asarray(vertices, dtype=np.float64) * scale, faces)
        return out

    def update(self, df: pd.DataFrame | None = None, *, meshes: Mapping | None = None,
               force: bool = False, wait: bool = True):
        """Regenerate from new or edited data.

        Parameters
        ----------
        df : DataFrame, optional
            A new properties table (else the bound one, re-read).
        meshes : mapping, optional
            New ``{segment id: mesh}`` (else the bound ones, re-read).
        force : bool
            Regenerate every source, changed or not (by default only what changed).
        wait : bool
            Block until the viewer has the new data and re-raise any error.
        """
        if df is not None:
            if "properties" in self.sources:
                self.df = df
            else:
                self.bind_properties(df)
        if meshes is not None:
            self.meshes = meshes
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def view_bounds(self):
        los, his = [], []
        for mesh in self.meshes.values():
            vertices = np.asarray(mesh.vertices if hasattr(mesh, "vertices") else mesh[0])
            if len(vertices):
                los.append(vertices.min(axis=0) * self.nm_per_coordinate)
                his.append(vertices.max(axis=0) * self.nm_per_coordinate)
        if not los:
            return None
        return np.min(los, axis=0), np.max(his, axis=0)

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state = {"type": "segmentation", "source": [urls["mesh"]]}
        if "properties" in urls:
            state["source"].append(urls["properties"])
        segments = self._visible_segments(self._mesh_ids, first)
        if segments is not None:
            state["segments"] = segments
        state.update(self.state_parts.get("display", {}))
        return state
