"""Viewers and layers release what they hold: store data, threads, server registrations."""

from __future__ import annotations

import gc
import weakref

import neuroglancer
import pytest

import nglive

from .conftest import (
    collected,
    http_status,
    nglive_threads,
    no_new_threads,
    points_table,
    wait_for,
)


def viewer_page(viewer) -> str:
    return f"{viewer.server.server_url}/v/{viewer.ng.token}/"


def data_url(viewer, name) -> str:
    return viewer.state.layers[name].source[0].url.removeprefix("precomputed://") + "/info"


@pytest.mark.parametrize("close_first", [True, False], ids=["closed", "dropped"])
def test_viewer_is_freed_with_its_store_threads_and_pages(close_first):
    threads_before = nglive_threads()
    v = nglive.Viewer()
    v.add_annotations("pts", points_table(5000), properties=["score"])
    page, data = viewer_page(v), data_url(v, "pts")
    assert http_status(page) == 200 and http_status(data) == 200
    refs = [weakref.ref(v), weakref.ref(v.store), weakref.ref(v.ng), weakref.ref(v.server)]
    if close_first:
        v.close()
    del v
    assert all(collected(r) for r in refs), [r() for r in refs]
    assert http_status(page) == 404  # neuroglancer no longer serves the viewer
    assert http_status(data) in (403, 404)
    assert wait_for(lambda: no_new_threads(threads_before)), nglive_threads()


def test_closed_viewer_drops_neuroglancer_registration_even_if_referenced():
    v = nglive.Viewer()
    v.add_annotations("pts", points_table(100))
    page, data, token = viewer_page(v), data_url(v, "pts"), v.ng.token
    v.close()
    assert http_status(page) == 404
    assert http_status(data) in (403, 404)
    assert token not in neuroglancer.server.global_server.viewers
    assert v.store.list() == []  # the viewer's own in-memory store is emptied
    v.close()  # closing twice is harmless


def test_recreating_viewers_does_not_accumulate():
    refs = []
    for _ in range(5):
        v = nglive.Viewer()
        v.add_annotations("pts", points_table(2000))
        refs.append(weakref.ref(v))
    del v
    gc.collect()
    assert all(collected(r) for r in refs)


def test_remove_layer_deletes_its_data(viewer_factory=None):
    v = nglive.Viewer()
    try:
        layer = v.add_annotations("pts", points_table(2000))
        layer.update(points_table(2000, seed=1))
        url = data_url(v, "pts")
        assert http_status(url) == 200
        v.remove_layer("pts")
        assert http_status(url) == 404
        assert v.store.list(layer.prefix + "/") == []
        assert v.store.prefixes() == []
    finally:
        v.close()


def test_remove_layer_during_update_stays_removed():
    v = nglive.Viewer()
    try:
        df = points_table(50_000)
        layer = v.add_annotations("pts", df)
        df.loc[0, "x"] = 1.0
        fut = layer.update(wait=False)
        v.remove_layer("pts")
        try:
            fut.result(30)
        except Exception:  # noqa: BLE001 — a cancelled update may say so
            pass
        v.wait()
        assert "pts" not in v.state.layers
        assert v.store.list(layer.prefix + "/") == []
        again = v.add_annotations("pts", points_table(10))
        sources = [s.url for s in v.state.layers["pts"].source]
        assert len(sources) == 1 and f"/{again.prefix}/" in sources[0]
        assert http_status(data_url(v, "pts")) == 200
    finally:
        v.close()


def test_remove_segment_properties_during_update_keeps_no_stale_source():
    import numpy as np
    import pandas as pd

    v = nglive.Viewer()
    try:
        remote = "precomputed://gs://example-bucket/seg"
        with v.txn() as s:
            s.layers["seg"] = neuroglancer.SegmentationLayer(source=remote)
        df = pd.DataFrame({"pt_root_id": np.arange(1, 200_001, dtype=np.uint64),
                           "n": np.arange(200_000)})
        layer = v.add_segment_properties("seg", df, number_cols=["n"])
        df.loc[0, "n"] = -1
        layer.update(wait=False)
        v.remove_layer("seg")
        v.wait()
        assert "seg" not in v.state.layers
        with v.txn() as s:
            s.layers["seg"] = neuroglancer.SegmentationLayer(source=remote)
        v.add_segment_properties("seg", df, number_cols=["n"])
        urls = [s.url for s in v.state.layers["seg"].source]
        assert len(urls) == 2 and urls[0] == remote, urls
    finally:
        v.close()


# An IPython shell in a child process (so this one's get_ipython() stays None), driving a
# Viewer as a notebook does: display it as a cell's result, render a view, re-run the cell.
NOTEBOOK_SESSION = r'''
import gc, sys, time, weakref
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()

def run(code):
    result = shell.run_cell(code, store_history=True)
    if not result.success:
        result.raise_error()

def view_message(ref, view, is_open):
    # what the widget's front-end sends over the comm when a view is rendered / removed
    ref()._handle_msg({"content": {"data": {"method": "custom", "content": {
        "nglive_view": view, "open": is_open}}}, "buffers": []})

def collected(ref, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gc.collect()
        if ref() is None:
            return True
        time.sleep(0.1)
    return False

run("import nglive, pandas as pd")
run("df = pd.DataFrame({'x': [1.0, 2, 3], 'y': [1.0, 2, 3], 'z': [1.0, 2, 3]})")
cell = "viewer = nglive.Viewer()\nviewer.add_annotations('pts', df)\nviewer"
run(cell)
first = weakref.ref(shell.user_ns["viewer"])
view_message(first, "view-1", True)
run(cell)  # re-running the cell: the output (and view) of the first viewer goes away
assert first() is not None and first() in shell.user_ns["Out"].values()
view_message(first, "view-1", False)
assert collected(first), "the first viewer was not released"
assert all(v is not first() for v in shell.user_ns["Out"].values())

# a viewer the user still refers to stays, undisplayed; the history is left as it was
second = weakref.ref(shell.user_ns["viewer"])
view_message(second, "view-2", True)
run("keep = viewer")
run(cell)
view_message(second, "view-2", False)
from nglive.lifecycle import UNDISPLAYED
time.sleep(max(UNDISPLAYED.retries) + 0.5)  # the checks (threads here) have all run
gc.collect()
assert second() is not None and not second().closed, "a referenced viewer was closed"
assert any(v is second() for v in shell.user_ns["Out"].values()), "Out was not restored"
run("del keep")
assert not collected(second, timeout=1), "Out[n] still refers to it: it must stay"
print("ok")
'''


def test_rerun_cell_releases_the_undisplayed_viewer():
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).parents[2] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", NOTEBOOK_SESSION], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        proc.stdout[-2000:] + proc.stderr[-4000:])
