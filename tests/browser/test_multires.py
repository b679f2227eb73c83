"""A multi-resolution mesh in the real client: zoomed out it fetches only the coarse
level of detail (server log of byte ranges), zoomed in onto its surface the finest, and
it is drawn."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

import nglive

from .imaging import non_background_fraction

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from multires_spec_decoder import decode_manifest  # noqa: E402

SHOT = os.environ.get("NGLIVE_MULTIRES_SHOT")  # save the zoomed-in frame to look at


def lod_of_ranges(viewer, key, lod_ends) -> list[int]:
    """The LOD of every byte range of ``key`` the client asked for so far."""
    lods = []
    for rec in list(viewer.server.requests):
        if rec.key == key and rec.range:
            start = int(rec.range.removeprefix("bytes=").split("-")[0])
            lods.append(int(np.searchsorted(lod_ends, start, side="right")))
    return lods


def drawn(page, timeout=30.0) -> float:
    deadline = time.monotonic() + timeout
    frac = non_background_fraction(page.screenshot())
    while frac < 0.02 and time.monotonic() < deadline:
        time.sleep(0.5)
        frac = non_background_fraction(page.screenshot())
    return frac


def test_multires_mesh_coarse_when_zoomed_out_fine_when_zoomed_in(page):
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=5000.0)  # 81,920 faces
    viewer = nglive.Viewer(layout="3d", log_requests=True)
    try:
        layer = viewer.add_meshes("ball", {7: sphere}, format="multires")
        key = f"{layer.prefix}/mesh/0/7"
        manifest = decode_manifest(viewer.server.store.read(key + ".index"))
        assert len(manifest["sizes"]) == 3
        lod_ends = np.cumsum([int(s.sum()) for s in manifest["sizes"]])
        with viewer.txn() as s:  # the ball spans a few pixels
            s.projection_scale = 5e6
        page.goto(viewer.url)
        assert viewer.server.wait_for_request(lambda r: r.key == key and r.range, timeout=60)
        time.sleep(3)  # let it ask for everything it wants at this zoom
        far = lod_of_ranges(viewer, key, lod_ends)
        assert far and set(far) == {2}, f"zoomed out, the client fetched LODs {far}"

        with viewer.txn() as s:  # close to its surface: pixels far finer than LOD 1's error
            s.position = [0, 0, 5000]
            s.projection_scale = 300
        assert viewer.server.wait_for_request(
            lambda r: r.key == key and r.range and int(
                r.range.removeprefix("bytes=").split("-")[0]) < lod_ends[0], timeout=60)
        assert drawn(page) > 0.1, "the multires mesh was not drawn"
        if SHOT:
            page.screenshot(path=SHOT)
        assert set(lod_of_ranges(viewer, key, lod_ends)) == {0, 1, 2}
    finally:
        viewer.close()
