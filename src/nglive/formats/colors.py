"""Colour columns to the '#rrggbb' strings Neuroglancer's segmentColors takes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .validation import TableError

_HEX6 = re.compile(r"^#[0-9a-fA-F]{6}$")


def _one_color(value) -> str | None:
    from PIL import ImageColor

    if isinstance(value, str):
        if _HEX6.match(value):
            return value.lower()
        try:
            r, g, b = ImageColor.getrgb(value)[:3]
        except ValueError:
            return None
        if not all(0 <= c <= 255 for c in (r, g, b)):  # 'rgb(300, 0, 0)' parses as is
            return None
        return f"#{r:02x}{g:02x}{b:02x}"
    return None


def _as_text(value):
    """A colour given as an (r, g, b[, a]) sequence of 0-255 integers, as '#rrggbb';
    anything else as its text (parsed, or rejected, with the strings)."""
    if isinstance(value, tuple | list | np.ndarray) and len(value) in (3, 4):
        try:
            channels = [int(c) for c in value[:3]]
        except (TypeError, ValueError):
            return repr(value)
        if all(c == v and 0 <= c <= 255 for c, v in zip(channels, value[:3], strict=True)):
            return "#{:02x}{:02x}{:02x}".format(*channels)
        return repr(value)
    return value if isinstance(value, str) else repr(value)


def hex_colors(series: pd.Series, *, column: str) -> np.ndarray:
    """Each value as '#rrggbb'; missing values (None/NaN/'') become None (no colour).

    Accepts '#rgb', '#rrggbb', CSS colour names ('teal'), 'rgb(…)' and (r, g, b)
    tuples of integers in [0, 255]; channels out of range are an error. Only the
    unique values are parsed, so a million rows of twenty colours cost twenty parses.
    """
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        series = series.map(_as_text, na_action="ignore")  # tuples, numbers: rare
    values = series.to_numpy(dtype=object)
    missing = pd.isna(series).to_numpy() | (values == "")
    uniques, inverse = np.unique(values[~missing].astype(str), return_inverse=True)
    parsed = np.array([_one_color(u) for u in uniques], dtype=object)
    bad = np.flatnonzero(pd.isna(parsed))
    if len(bad):
        value = uniques[bad[0]]
        pos = np.flatnonzero(~missing)[np.flatnonzero(inverse == bad[0])[0]]
        raise TableError("not a colour", column=column, row=series.index[pos], value=value,
                         accepted="'#rrggbb', '#rgb', CSS colour names, 'rgb(r, g, b)' or "
                                  "(r, g, b) with channels in [0, 255]")
    out = np.full(len(values), None, dtype=object)
    out[~missing] = parsed[inverse]
    return out
