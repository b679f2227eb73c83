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


def test_sharded_multires_mesh_is_drawn(page):
    import neuroglancer

    from nglive.formats.multires_mesh import encode_multires_meshes

    meshes = {7: trimesh.creation.icosphere(subdivisions=5, radius=5000.0),
              9: trimesh.creation.box(extents=(4000, 4000, 4000)).apply_translation(
                  (9000, 0, 0))}
    files = encode_multires_meshes(meshes, num_lods=3, sharding=True)
    viewer = nglive.Viewer(layout="3d", log_requests=True)
    try:
        gen = viewer.store.write_generation("sharded/mesh", files)
        url = viewer.server.url_for(f"sharded/mesh/{gen.number}")
        with viewer.txn() as s:
            s.layers["sh"] = neuroglancer.SegmentationLayer(source="precomputed://" + url,
                                                            segments=[7, 9])
            s.position = [4500, 0, 0]
            s.projection_scale = 30000
        page.goto(viewer.url)
        assert viewer.server.wait_for_request(
            lambda r: r.key.endswith(".shard") and r.status == 206, timeout=60)
        frac = drawn(page)
        png = page.screenshot()
        if SHOT:
            page.screenshot(path=SHOT.replace(".png", "_sharded.png"))
        assert frac > 0.02, "the sharded multires meshes were not drawn"
        # both meshes: pixels on the left (the ball) and on the right (the box) half
        assert non_background_fraction(png, (0, 100, 500, 800)) > 0.1
        assert non_background_fraction(png, (540, 100, 1000, 800)) > 0.02
        assert not [r for r in viewer.server.requests if r.status >= 400]
    finally:
        viewer.close()
