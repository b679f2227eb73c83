"""Annotations in the real client: a sharded source read by byte ranges, points drawn in
their colour, filtered by a linked segment selection through the relationship index,
recoloured live by a table edit (sharded is the default at every size); and an unsharded
source, one file per key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import trimesh

import nglive

from .imaging import colour_pixels
from .waiting import poll


@pytest.fixture
def viewer():
    v = nglive.Viewer(log_requests=True, layout="xy")
    yield v
    v.close()


def test_points_drawn_filtered_and_recoloured(viewer, page):
    rng = np.random.default_rng(0)
    n = 400
    syn = pd.DataFrame({
        "x": rng.uniform(0, 10000, n), "y": rng.uniform(0, 10000, n), "z": np.zeros(n),
        "pre_id": (np.arange(n) % 4 + 1).astype(np.uint64), "color": ["#ff0000"] * n,
    })
    viewer.add_meshes("cells", {i: trimesh.creation.box(extents=(100, 100, 100))
                                for i in range(1, 5)})
    layer = viewer.add_annotations("syn", syn, "point", properties=["color"],
                                   relationships=["pre_id"], linked_segmentation="cells")
    with viewer.txn() as s:
        s.position = [5000, 5000, 0]
        s.cross_section_scale = 25
        s.layers["cells"].segments = set()
    page.goto(viewer.url)
    all_red = poll(lambda: colour_pixels(page.screenshot(), 0), lambda v: v > 3000)
    assert all_red > 3000
    keys = [r.key for r in viewer.server.requests]
    assert "syn/annotations/0/info" in keys
    assert any(k.startswith("syn/annotations/0/by_spatial_level_0/") for k in keys)
    # sharded: the client reads shard files by byte range
    assert any(r.status == 206 and r.key.endswith(".shard") for r in viewer.server.requests)

    # selecting one of four presynaptic cells shows about a quarter of the points
    with viewer.txn() as s:
        s.layers["cells"].segments = {2}
    assert viewer.server.wait_for_request(
        lambda r: r.key.startswith("syn/annotations/0/by_rel_pre_id/"), timeout=30)
    quarter = poll(lambda: colour_pixels(page.screenshot(), 0),
                   lambda v: 0.1 * all_red < v < 0.45 * all_red)
    assert 0.1 * all_red < quarter < 0.45 * all_red

    # recolour in place: the next generation is fetched and the points turn blue
    with viewer.txn() as s:
        s.layers["cells"].segments = set()
    syn["color"] = "#0000ff"
    nglive.live.check_all()
    layer.wait()
    assert viewer.server.wait_for_request(
        lambda r: r.key.startswith("syn/annotations/1/"), timeout=30)
    blue = poll(lambda: colour_pixels(page.screenshot(), 2), lambda v: v > 0.5 * all_red)
    assert blue > 0.5 * all_red
    assert colour_pixels(page.screenshot(), 0) < 0.05 * all_red


def test_unsharded_source_renders(viewer, page):
    rng = np.random.default_rng(1)
    pts = pd.DataFrame({"x": rng.uniform(0, 10000, 300), "y": rng.uniform(0, 10000, 300),
                        "z": np.zeros(300), "color": ["#ff0000"] * 300})
    viewer.add_annotations("pts", pts, "point", properties=["color"], write_sharded=False)
    with viewer.txn() as s:
        s.position = [5000, 5000, 0]
        s.cross_section_scale = 25
    page.goto(viewer.url)
    red = poll(lambda: colour_pixels(page.screenshot(), 0), lambda v: v > 2000)
    assert red > 2000
    keys = [r.key for r in viewer.server.requests]
    assert not any(k.endswith(".shard") for k in keys)
    assert any(k.startswith("pts/annotations/0/by_spatial_level_0/") for k in keys)
