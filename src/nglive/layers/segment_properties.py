"""Segment properties from a DataFrame, attached live to any segmentation layer."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..encode_worker import run_encoder
from ..formats.colors import hex_colors
from ..formats.segment_properties import segment_properties_json
from ..formats.validation import TableError, as_uint64_ids, require_columns
from .base import Binding, BoundSource, frame_fingerprint

if TYPE_CHECKING:
    from ..widget import Viewer

_LIST_KEYWORDS = ("string_cols", "number_cols", "tag_value_cols", "tag_bool_cols")
_EXPLICIT = {"label_col", "description_col", *_LIST_KEYWORDS}


def default_keywords(df: pd.DataFrame, id_col: str, label_col, keywords: dict,
                     exclude=()) -> dict:
    """Segment-property keywords; without explicit columns, numbers and bool tags by dtype."""
    kw = dict(keywords)
    kw["id_col"] = id_col
    if label_col is not None:
        kw["label_col"] = label_col
    if not (_EXPLICIT & set(keywords)):
        used = {id_col, label_col, *exclude}
        kw["number_cols"] = [
            c for c in df.columns
            if c not in used and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
        ]
        kw["tag_bool_cols"] = [
            c for c in df.columns if c not in used and pd.api.types.is_bool_dtype(df[c])
        ]
    return kw


def bound_columns(kw: dict) -> list[str]:
    """Every column the segment-property keywords read."""
    cols: list[str] = []
    for key in ("id_col", "label_col", "description_col", *_LIST_KEYWORDS):
        val = kw.get(key)
        if isinstance(val, str):
            cols.append(val)
        elif val:
            cols.extend(val)
    fmt = kw.get("label_format_map")
    if fmt:
        cols.extend(f for _, f, _, _ in string.Formatter().parse(fmt) if f)
    return list(dict.fromkeys(cols))


def properties_source(
    get_df: Callable[[], pd.DataFrame], get_kw: Callable[[], dict]
) -> BoundSource:
    """A BoundSource writing a ``neuroglancer_segment_properties`` info from a table."""

    def snapshot():
        df, kw = get_df(), get_kw()
        cols = bound_columns(kw)
        require_columns(df, cols, purpose="segment properties")
        return df[cols].copy(), kw

    def encode(snap):
        df, kw = snap
        # big tables are encoded in a worker process: the kernel keeps serving meanwhile
        return {"info": run_encoder(segment_properties_json, df, rows=len(df), **kw)}

    return BoundSource(
        "properties",
        fingerprint=lambda: frame_fingerprint(get_df(), bound_columns(get_kw())),
        snapshot=snapshot,
        encode=encode,
        fingerprint_snapshot=lambda snap: frame_fingerprint(snap[0], bound_columns(snap[1])),
    )


def display_state(df: pd.DataFrame, id_col: str, color_col: str | None,
                  visible_col: str | None) -> dict:
    """``segmentColors`` and visible ``segments`` of a layer from table columns."""
    ids = as_uint64_ids(df[id_col], column=id_col)
    id_text = ids.astype(str)
    state: dict = {}
    if color_col is not None:
        colors = hex_colors(df[color_col], column=color_col)
        has = pd.notna(colors)
        state["segmentColors"] = dict(zip(id_text[has].tolist(), colors[has].tolist(),
                                          strict=True))
    if visible_col is not None:
        col = df[visible_col]
        if not (pd.api.types.is_bool_dtype(col) or col.isin([True, False, 0, 1]).all()):
            bad = ~col.isin([True, False, 0, 1]).to_numpy()
            pos = int(np.flatnonzero(bad)[0])
            raise TableError("not a boolean", column=visible_col, row=df.index[pos],
                             value=col.iloc[pos], accepted="True/False")
        state["segments"] = id_text[col.fillna(False).astype(bool).to_numpy()].tolist()
    return state


def display_source(get_df: Callable[[], pd.DataFrame], id_col: Callable[[], str],
                   color_col: Callable[[], str | None],
                   visible_col: Callable[[], str | None]) -> BoundSource:
    """A state-only BoundSource: colours and visibility follow their columns live."""

    def columns():
        return [c for c in (id_col(), color_col(), visible_col()) if c is not None]

    def snapshot():
        df = get_df()
        require_columns(df, columns(), purpose="segment colours/visibility")
        return df[columns()].copy()

    return BoundSource(
        "display",
        fingerprint=lambda: frame_fingerprint(get_df(), columns()),
        snapshot=snapshot,
        encode=lambda df: display_state(df, id_col(), color_col(), visible_col()),
        writes_files=False,
        fingerprint_snapshot=lambda snap: frame_fingerprint(snap, columns()),
    )


class PropertiesBinding(Binding):
    """A binding whose table feeds segment properties, colours and visible segments."""

    def bind_properties(self, df: pd.DataFrame, *, id_col: str = "segment_id",
                        label_col: str | None = None, color_col: str | None = None,
                        visible_col: str | None = None, **keywords) -> None:
        """Bind (or re-bind) the properties table and how its columns are used."""
        self.df = df
        self.id_col = id_col
        self.label_col = label_col
        self.color_col = color_col
        self.visible_col = visible_col
        self.property_keywords = keywords
        self.sources["properties"] = properties_source(lambda: self.df, self._keywords)
        self.sources.pop("display", None)
        self.state_parts.pop("display", None)
        if color_col is not None or visible_col is not None:
            self.sources["display"] = display_source(
                lambda: self.df, lambda: self.id_col, lambda: self.color_col,
                lambda: self.visible_col)

    def _keywords(self) -> dict:
        return default_keywords(self.df, self.id_col, self.label_col, self.property_keywords,
                                exclude=(self.color_col, self.visible_col))


class SegmentPropertiesLayer(PropertiesBinding):
    """Segment properties (and optionally colours and visibility) bound to a table,
    attached to a segmentation layer as an extra data source.

    Returned by :meth:`nglive.Viewer.add_segment_properties`.
    """

    layer_kind = "segment_properties"

    def __init__(self, viewer: Viewer, name: str, df: pd.DataFrame, *, source=None,
                 id_col: str = "pt_root_id", label_col: str | None = None,
                 color_col: str | None = None, visible_col: str | None = None,
                 **keywords):
        super().__init__(viewer, name)
        self.external_source = source
        self.bind_properties(df, id_col=id_col, label_col=label_col, color_col=color_col,
                             visible_col=visible_col, **keywords)

    def update(self, df: pd.DataFrame | None = None, *, force: bool = False,
               wait: bool = True):
        """Regenerate from ``df`` (a new table) or the bound table re-read."""
        if df is not None:
            self.df = df
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        own = f"/{self.viewer.server.token}/{self.prefix}/"
        current = self.viewer._layer_json(self.name)
        others = []
        if current is not None:
            for src in _source_list(current.get("source")):
                url = src if isinstance(src, str) else src.get("url", "")
                if own not in url:
                    others.append(src)
        elif self.external_source is not None:
            others = _source_list(self.external_source)
        state = {"type": "segmentation", "source": [*others, urls["properties"]]}
        state.update(self.state_parts.get("display", {}))
        return state


def _source_list(source) -> list:
    if source is None:
        return []
    if isinstance(source, str | dict):
        return [source]
    return list(source)
