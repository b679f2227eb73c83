"""Pixel counting on screenshots: how the tests see that meshes were drawn."""

from __future__ import annotations

import io

import numpy as np


def non_background_fraction(png: bytes, region=None) -> float:
    """Fraction of pixels in ``region`` (x0, y0, x1, y1) that are not near-black."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)
    if region is not None:
        x0, y0, x1, y1 = region
        img = img[y0:y1, x0:x1]
    return float((img.max(axis=2) > 40).mean())


def colour_pixels(png: bytes, channel: int = 0) -> int:
    """How many pixels are strongly one primary colour (0 red, 1 green, 2 blue)."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    others = [c for c in range(3) if c != channel]
    return int(((a[..., channel] > 150) & (a[..., others[0]] < 80)
                & (a[..., others[1]] < 80)).sum())
