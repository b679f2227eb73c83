"""A point placed with the mouse in the real client becomes a row of the bound DataFrame."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

import nglive


def test_ctrl_click_adds_a_row(page):
    viewer = nglive.Viewer(layout="xy")
    try:
        points = pd.DataFrame({"x": [100.0], "y": [100.0], "z": [0.0]}, index=[1])
        layer = viewer.add_local_annotations("pts", points)
        with viewer.txn() as s:
            s.position = [100, 100, 0]
            s.cross_section_scale = 1
            s.selected_layer.layer = "pts"
            s.selected_layer.visible = True
        page.goto(viewer.url)
        page.wait_for_selector(".neuroglancer-layer-panel", timeout=30000)
        page.wait_for_timeout(1500)  # the panel must have drawn once to take clicks
        deadline = time.monotonic() + 30
        while len(points) < 2 and time.monotonic() < deadline:
            # the annotatePoint tool places a point on Ctrl+click
            page.keyboard.down("Control")
            page.mouse.click(250, 300)
            page.keyboard.up("Control")
            settle = time.monotonic() + 8
            while len(points) < 2 and time.monotonic() < settle:
                page.wait_for_timeout(200)
        assert len(points) == 2, "the click did not reach the table"
        new = points.loc[2, ["x", "y", "z"]].to_numpy(dtype=float)
        assert np.isfinite(new).all() and new[2] == 0.0
        assert layer.edits_from_viewer >= 1
        # and the viewer now carries the table's id for it
        viewer.wait()
        ids = {a["id"] for a in viewer.state.layers["pts"].layer.to_json()["annotations"]}
        assert ids == {"1", "2"}
    finally:
        viewer.close()
