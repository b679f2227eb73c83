"""End to end in JupyterLab: a bound mesh layer in a notebook follows an in-place table edit.

The notebook displays ``nglive.Viewer`` with the demo meshes and their table; once the
Neuroglancer client in the widget lists the labels, a later cell renames a segment in
the DataFrame in place, with no ``update()`` call. The IPython post-cell check must
notice, write a new properties generation and switch the viewer to it: the kernel's
server then gets a request for that generation and the Seg. tab shows the new label.
"""

from __future__ import annotations

import time

from .jupyter_fixtures import (
    REQUEST_LOG_CELL,
    cell_errors,
    open_notebook,
    read_request_log,
    run_cells,
    segment_labels,
    wait_for_logged,
    wait_until,
)

VIEWER_CELL = """\
import nglive
from nglive.demo_data import demo_meshes, demo_table

viewer = nglive.Viewer(log_requests=True, height="500px")
viewer.server.on_request = _log_request
meshes = demo_meshes()
table = demo_table(meshes)
layer = viewer.add_meshes("shapes", meshes, table, label_col="name")
with viewer.txn() as s:
    s.layout = "3d"
    s.position = [3000, 1500, 0]
    s.projection_scale = 12000
    s.selected_layer.layer = "shapes"
    s.selected_layer.visible = True
"""

EDIT_CELL = 'table.loc[0, "name"] = "renamed-sphere"\n'


def test_in_place_edit_reaches_the_viewer_in_jupyterlab(jupyter_lab, page):
    t0 = time.monotonic()
    lab = jupyter_lab()
    log_path = lab.root_dir / "requests.jsonl"
    lab.write_notebook("live.ipynb", [
        ("code", REQUEST_LOG_CELL.format(path=str(log_path))),
        ("code", VIEWER_CELL),
        ("code", "viewer"),
        ("code", EDIT_CELL),
    ])
    page.set_viewport_size({"width": 1280, "height": 1000})
    open_notebook(page, lab, "live.ipynb")

    # Run everything but the edit; the widget renders the Neuroglancer client.
    run_cells(page, 0, 3)
    frame_el = page.locator("iframe.nglive-frame")
    frame_el.wait_for(state="attached", timeout=30000)
    frame_el.scroll_into_view_if_needed()
    assert not cell_errors(page), cell_errors(page)
    src = frame_el.get_attribute("src") or ""
    # the page is on 127.0.0.1, so auto mode reaches the kernel's server directly
    assert src.startswith("http://127.0.0.1:") and "/v/" in src, src
    frame = page.frame_locator("iframe.nglive-frame")
    # (a) the Neuroglancer client rendered: its layer side panel with the Seg. tab
    frame.get_by_text("Seg.", exact=True).click(timeout=40000)
    wait_until(lambda: "sphere" in segment_labels(frame), 30,
               lambda: f"the Seg. tab lists {segment_labels(frame)}, not 'sphere'")
    wait_for_logged(log_path, lambda r: r["key"] == "shapes/properties/0/info"
                    and r["status"] == 200, 10, "the first properties generation")
    assert not any(r["key"].startswith("shapes/properties/1/") for r in
                   read_request_log(log_path)), "generation 1 requested before the edit"

    # The in-place edit; only the post_run_cell hook can notice it.
    run_cells(page, 3)
    # (b) the kernel's server is asked for the new properties generation
    wait_for_logged(log_path, lambda r: r["key"] == "shapes/properties/1/info"
                    and r["status"] == 200, 30, "shapes/properties/1/info after the edit")
    # (c) the Seg. tab shows the new label, and the old one is gone
    expected = {"renamed-sphere", "cube", "cylinder", "torus", "capsule", "cone"}
    wait_until(lambda: segment_labels(frame) == expected, 30,
               lambda: f"the Seg. tab lists {segment_labels(frame)}, expected {expected}")
    # the meshes were not regenerated: only the properties changed
    assert not any(r["key"].startswith("shapes/mesh/1/") for r in read_request_log(log_path))
    assert not cell_errors(page), cell_errors(page)
    assert time.monotonic() - t0 < 120
