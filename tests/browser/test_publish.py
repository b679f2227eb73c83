"""A publication opened in a Neuroglancer client with no kernel behind it (another process,
without nglive) shows the same meshes, labels and annotations as the live viewer, with
every file served by ``nglive serve`` from the published directory."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time

import neuroglancer
import numpy as np
import pandas as pd
import pytest
import trimesh

import nglive

COLOURS = {"red": (0, "#ff0000"), "green": (1, "#00ff00"), "blue": (2, "#0000ff")}


def colour_pixels(png: bytes, channel: int, region=(0, 40, 640, 760)) -> int:
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    x0, y0, x1, y1 = region
    a = a[y0:y1, x0:x1]
    others = [c for c in range(3) if c != channel]
    return int(((a[..., channel] > 120) & (a[..., others[0]] < 90)
                & (a[..., others[1]] < 90)).sum())


def settle(page, channels, timeout=45.0):
    """Screenshots until the colour counts stop changing (all visible data drawn)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        time.sleep(1.5)
        png = page.screenshot()
        counts = [colour_pixels(png, c) for c in channels]
        if last is not None and counts == last and min(counts) > 0:
            return png, counts
        last = counts
    return png, last


# A Neuroglancer client in a process with no nglive in it: neuroglancer's own Python
# server, given the state the publication holds (read over HTTP from its state.json).
CLIENT_SCRIPT = """
import json, sys, urllib.request
import neuroglancer
neuroglancer.set_server_bind_address("127.0.0.1")
state = json.loads(urllib.request.urlopen(sys.argv[1] + "/state.json", timeout=30).read())
viewer = neuroglancer.Viewer()
viewer.set_state(neuroglancer.ViewerState(state))
print(viewer.get_viewer_url(), flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def start_client(publication_url: str):
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, publication_url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("http://127.0.0.1:"), line
    return proc, line


@pytest.fixture
def served_publication(tmp_path):
    """``nglive serve`` (the console command) on a directory; yields (dir, url, log)."""
    root = tmp_path / "published"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "nglive.cli", "serve", str(root),
                             "--port", "0", "--log-requests"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline:
        m = re.match(r"^(http://127\.0\.0\.1:\d+)$", proc.stdout.readline().strip())
        url = m.group(1) if m else None
    assert url, "nglive serve printed no URL"
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")),
                     daemon=True).start()
    yield root, url, log
    proc.terminate()
    proc.wait(10)


def test_published_state_shows_what_the_live_viewer_showed(page, browser,
                                                           served_publication):
    root, served_url, served_log = served_publication
    viewer = nglive.Viewer(layout="3d", log_requests=True)
    cells = pd.DataFrame({"segment_id": np.array([1, 2], np.uint64),
                          "name": ["red-cube", "blue-ball"], "colour": ["#ff0000", "#0000ff"]})
    meshes = {1: trimesh.creation.box(extents=(300, 300, 300)).apply_translation((-300, 0, 0)),
              2: trimesh.creation.icosphere(radius=170).apply_translation((300, 0, 0))}
    viewer.add_meshes("cells", meshes, cells, label_col="name", color_col="colour")
    rng = np.random.default_rng(3)
    n = 400
    pts = pd.DataFrame({"x": rng.uniform(-500, 500, n), "y": rng.uniform(-600, -400, n),
                        "z": rng.uniform(-100, 100, n), "colour": ["#00ff00"] * n})
    viewer.add_annotations("marks", pts, "point", properties=["colour"], write_sharded=True)
    with viewer.txn() as s:
        s.selected_layer.layer = "cells"
        s.selected_layer.visible = True
        s.position = [0, -150, 0]
        s.projection_scale = 2500
    try:
        page.goto(viewer.url)
        live_png, live = settle(page, [0, 2, 1])
        page.get_by_text("Seg.", exact=True).click()
        page.wait_for_selector(".neuroglancer-segment-list-entry-name >> text=red-cube",
                               timeout=30000)
        live_labels = page.locator(".neuroglancer-segment-list").first.inner_text()

        pub = viewer.publish(root, url=served_url)
    finally:
        kernel_requests = len(viewer.server.requests)
        viewer.close()  # nothing of this viewer is served by the kernel any more
    assert all(v > 200 for v in live), live

    assert neuroglancer.parse_url(pub.url()).to_json() == neuroglancer.ViewerState(
        pub.state).to_json()  # the link carries exactly the published state
    client, client_url = start_client(pub.base_url)
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    published = context.new_page()
    try:
        published.goto(client_url)
        pub_png, counts = settle(published, [0, 2, 1])
        # the same layers drawn in the same colours, about as large
        for name, a, b in zip(["red mesh", "blue mesh", "green points"], live, counts,
                              strict=True):
            assert 0.7 * a <= b <= 1.3 * a, (name, live, counts)
        published.get_by_text("Seg.", exact=True).click()
        published.wait_for_selector(
            ".neuroglancer-segment-list-entry-name >> text=red-cube", timeout=30000)
        labels = published.locator(".neuroglancer-segment-list").first.inner_text()
        assert "red-cube" in labels and "blue-ball" in labels
        assert ("red-cube" in live_labels) and ("blue-ball" in live_labels)
    finally:
        context.close()
        client.stdin.close()
        client.wait(10)
    served = "\n".join(served_log)
    assert "200 GET /cells/mesh/info" in served
    assert re.search(r"200 GET /cells/mesh/fragment/1\.[0-9a-f]{16}", served)
    assert "200 GET /cells/properties/info" in served
    assert "200 GET /marks/annotations/info" in served
    # the annotation shards are read by byte range from the static server
    assert re.search(r"206 GET /marks/annotations/by_spatial_level_0\.[0-9a-f]+/0\.shard",
                     served), served
    assert len(viewer.server.requests) == kernel_requests  # the kernel served none of it
