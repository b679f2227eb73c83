"""Alpha meshes in the real client: the mesh appears, and changes after an alpha change."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd

import nglive

from .imaging import non_background_fraction


def png_array(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def test_alpha_mesh_appears_and_follows_alpha(page):
    rng = np.random.default_rng(3)
    # a solid torus in nm: small alphas leave it hollow and ragged, large ones fill the hole
    n = 4000
    theta, phi = rng.uniform(0, 2 * np.pi, (2, n))
    r = 300 * np.sqrt(rng.random(n))
    pts = np.c_[(1000 + r * np.cos(phi)) * np.cos(theta), (1000 + r * np.cos(phi)) *
                np.sin(theta), r * np.sin(phi)]
    df = pd.DataFrame(pts, columns=list("xyz"))
    viewer = nglive.Viewer(layout="3d", log_requests=True)
    try:
        layer = viewer.add_alpha_mesh("torus", df, alpha="auto")
        assert layer.groups["torus"].report["watertight"]
        page.goto(viewer.url)
        assert viewer.server.wait_for_request(
            lambda rec: rec.key.startswith("torus/mesh/0/fragment/"), timeout=60)
        deadline = time.monotonic() + 30
        before = page.screenshot()
        while non_background_fraction(before) < 0.05 and time.monotonic() < deadline:
            time.sleep(0.5)
            before = page.screenshot()
        assert non_background_fraction(before) > 0.05, "the alpha mesh was not drawn"

        layer.set_alpha(None, 5000.0)  # the convex hull: the torus hole fills in
        assert viewer.server.wait_for_request(
            lambda rec: rec.key.startswith("torus/mesh/1/fragment/"), timeout=60)
        deadline = time.monotonic() + 30
        after = page.screenshot()
        changed = 0.0
        while time.monotonic() < deadline:
            after = page.screenshot()
            changed = float((np.abs(png_array(after) - png_array(before)).max(axis=2) > 40)
                            .mean())
            if changed > 0.01:
                break
            time.sleep(0.5)
        assert changed > 0.01, "the mesh did not change on screen after the alpha change"
        assert non_background_fraction(after) > non_background_fraction(before)
    finally:
        viewer.close()
