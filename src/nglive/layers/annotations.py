"""An annotation layer bound to a DataFrame, written as a precomputed annotation source."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..encode_worker import run_encoder
from ..formats.annotations import encode_annotations
from ..formats.annotations.coord_space import as_coord_space, geometry_columns
from .base import Binding, BoundSource, frame_fingerprint

if TYPE_CHECKING:
    from ..widget import Viewer


def default_shader(info: dict) -> str | None:
    """A shader that shows a colour property, if the source has one.

    The first rgb/rgba property drives the annotation colour, so a colour column is
    visible without writing GLSL.
    """
    for prop in info.get("properties", []):
        if prop.get("type") in ("rgb", "rgba"):
            return f"void main() {{\n  setColor(prop_{prop['id']}());\n}}\n"
    return None


class AnnotationLayer(Binding):
    """Annotations from a table, live. Returned by :meth:`nglive.Viewer.add_annotations`."""

    layer_kind = "annotations"

    def __init__(self, viewer: Viewer, name: str, df: pd.DataFrame, annotation_type: str, *,
                 coord_space="xyz", properties=(), relationships=(),
                 linked_segmentation=None, polyline_points=None, shader: str | None = None,
                 **write_keywords):
        super().__init__(viewer, name)
        self.df = df
        self.polyline_points = polyline_points
        self.annotation_type = annotation_type
        self.coord_space = as_coord_space(coord_space)
        geometry_columns(annotation_type, self.coord_space)  # rejects unknown types now
        self.properties = properties
        self.relationships = [relationships] if isinstance(relationships, str) else list(
            relationships)
        self.linked_segmentation = _links(linked_segmentation, self.relationships)
        self.shader = shader
        self.write_keywords = write_keywords
        self.info: dict = {}
        self.sources["annotations"] = BoundSource(
            "annotations",
            fingerprint=self._fingerprint,
            snapshot=self._snapshot,
            encode=self._encode,
        )

    def _fingerprint(self) -> bytes:
        fp = frame_fingerprint(self.df)
        if self.polyline_points is not None:
            fp += frame_fingerprint(self.polyline_points)
        return fp

    def _snapshot(self):
        df = None if self.df is None else self.df.copy()
        pts = None if self.polyline_points is None else self.polyline_points.copy()
        return df, pts

    def _encode(self, snap) -> dict[str, bytes]:
        df, pts = snap
        # Sharded by default at every size: nglive's packer makes a 100k-row source in
        # ~0.1 s against ~0.6 s for 100k one-per-key files, and at 1k rows they are
        # even (benchmarks/results/live_annotations.json).
        keywords = dict(self.write_keywords)
        rows = len(df) if df is not None else len(pts)
        # big tables are encoded in a worker process: the kernel keeps serving meanwhile
        files = run_encoder(
            encode_annotations, df, self.coord_space, self.annotation_type,
            properties=self.properties, relationships=self.relationships,
            polyline_points=pts, rows=rows, **keywords)
        self.info = json.loads(files["info"])
        return files

    def update(self, df: pd.DataFrame | None = None, *, polyline_points=None,
               force: bool = False, wait: bool = True):
        """Regenerate from a new table (or the bound one, re-read)."""
        if df is not None:
            self.df = df
        if polyline_points is not None:
            self.polyline_points = polyline_points
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def view_bounds(self):
        lo = self.info.get("lower_bound")
        hi = self.info.get("upper_bound")
        if lo is None or hi is None or len(lo) != 3:
            return None
        scales = np.asarray(self.coord_space.scales, float)
        # the viewer's default space is nm; annotation spaces usually are too
        if set(self.coord_space.units) != {"nm"}:
            return None
        return np.asarray(lo) * scales, np.asarray(hi) * scales

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state: dict = {"type": "annotation", "source": urls["annotations"]}
        if first:
            shader = self.shader or default_shader(self.info)
            if shader:
                state["shader"] = shader
            if self.linked_segmentation:
                state["linkedSegmentationLayer"] = self.linked_segmentation
                state["filterBySegmentation"] = list(self.linked_segmentation)
        return state


def _links(linked_segmentation, relationships: list) -> dict:
    """``{relationship: segmentation layer}`` from a layer name or a mapping."""
    if linked_segmentation is None:
        return {}
    names = [r if isinstance(r, str) else str(r) for r in relationships]
    if isinstance(linked_segmentation, str):
        if not names:
            raise ValueError("linked_segmentation needs relationships= to link through")
        return {r: linked_segmentation for r in names}
    links = dict(linked_segmentation)
    unknown = set(links) - set(names)
    if unknown:
        raise ValueError(f"linked_segmentation names relationships {sorted(unknown)} that are "
                         f"not in relationships={names}")
    return links
