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
        return f"#{r:02x}{g:02x}{b:02x}"
    return None


def hex_colors(series: pd.Series, *, column: str) -> np.ndarray:
    """Each value as '#rrggbb'; missing values (None/NaN/'') become None (no colour).

    Accepts '#rgb', '#rrggbb', CSS colour names ('teal') and 'rgb(…)'. Only the unique
    values are parsed, so a million rows of twenty colours cost twenty parses.
    """
    values = series.to_numpy(dtype=object)
    missing = pd.isna(series).to_numpy() | (values == "")
    uniques, inverse = np.unique(values[~missing].astype(str), return_inverse=True)
    parsed = np.array([_one_color(u) for u in uniques], dtype=object)
    bad = np.flatnonzero(pd.isna(parsed))
    if len(bad):
        value = uniques[bad[0]]
        pos = np.flatnonzero(~missing)[np.flatnonzero(inverse == bad[0])[0]]
        raise TableError("not a colour", column=column, row=series.index[pos], value=value,
                         accepted="'#rrggbb', '#rgb', CSS colour names, 'rgb(r, g, b)'")
    out = np.full(len(values), None, dtype=object)
    out[~missing] = parsed[inverse]
    return out
