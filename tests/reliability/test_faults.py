"""Faults while regenerating: encoder exceptions, store write failures, interrupts, closing
mid-update. The viewer keeps serving the last good data and recovers on the next good edit.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import threading
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

import nglive
from nglive import encode_worker, live

from .conftest import http_status, nglive_threads, no_new_threads, wait_for


def table(n: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"segment_id": np.arange(1, n + 1, dtype=np.uint64),
                         "name": [f"cell {i}" for i in range(n)],
                         "size": np.arange(n, dtype=np.float32)})


def info_url(viewer, name) -> str:
    (own,) = [s.url for s in viewer.state.layers[name].source if "/nglive/" in s.url]
    return own.removeprefix("precomputed://") + "/info"


def served_labels(viewer, name) -> list:
    info = json.loads(urllib.request.urlopen(info_url(viewer, name), timeout=10).read())
    return next(p["values"] for p in info["inline"]["properties"] if p["type"] == "label")


@pytest.fixture
def bound():
    viewer = nglive.Viewer()
    df = table()
    layer = viewer.add_segment_properties("cells", df, source="precomputed://gs://x/seg",
                                          id_col="segment_id", label_col="name")
    yield viewer, df, layer
    viewer.close()


def assert_recovers(viewer, df, layer, good_url):
    """The last good data is still served; the next good edit replaces it."""
    assert info_url(viewer, "cells") == good_url and http_status(good_url) == 200
    assert viewer.status["error"]
    df.loc[1, "name"] = "after the fault"
    live.check_all()
    layer.wait()
    assert info_url(viewer, "cells") != good_url
    assert served_labels(viewer, "cells")[1] == "after the fault"
    assert layer.error is None and viewer.status["error"] is None


def test_encoder_exception_keeps_last_good_data(bound, monkeypatch):
    viewer, df, layer = bound
    good = info_url(viewer, "cells")
    source = layer.sources["properties"]
    encode = source.encode

    def explode(snap):
        raise RuntimeError("encoder bug")

    monkeypatch.setattr(source, "encode", explode)
    df.loc[0, "name"] = "lost?"
    live.check_all()
    with pytest.raises(RuntimeError, match="encoder bug"):
        layer.wait()
    assert "encoder bug" in viewer.status["error"]
    monkeypatch.setattr(source, "encode", encode)
    assert_recovers(viewer, df, layer, good)
    assert served_labels(viewer, "cells")[0] == "lost?"  # the edit was not lost


def test_store_write_failure_leaves_no_partial_generation(bound, monkeypatch):
    viewer, df, layer = bound
    good = info_url(viewer, "cells")
    keys = viewer.store.list()
    store = viewer.store

    def disk_full(prefix, files):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write_generation", disk_full)
    df.loc[0, "name"] = "x"
    with pytest.raises(OSError):
        layer.update()
    assert store.list() == keys
    monkeypatch.undo()
    assert_recovers(viewer, df, layer, good)


def test_interrupting_a_waiting_update_leaves_a_consistent_viewer(bound, monkeypatch):
    viewer, df, layer = bound
    source = layer.sources["properties"]
    encode = source.encode

    def slow(snap):
        time.sleep(0.6)
        return encode(snap)

    monkeypatch.setattr(source, "encode", slow)
    df.loc[2, "name"] = "interrupted"
    timer = threading.Timer(0.2, _thread.interrupt_main)  # the user presses "interrupt"
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        layer.update()
    timer.join()
    layer.wait()  # the regeneration itself finished in the background
    assert served_labels(viewer, "cells")[2] == "interrupted"
    assert not layer.updating and layer.error is None
    monkeypatch.setattr(source, "encode", encode)
    df.loc[3, "name"] = "next"
    layer.update()
    assert served_labels(viewer, "cells")[3] == "next"


def test_interrupt_during_snapshot_changes_nothing(bound, monkeypatch):
    viewer, df, layer = bound
    good = info_url(viewer, "cells")
    generations = dict(layer.generations)

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(layer.sources["properties"], "snapshot", interrupted)
    df.loc[0, "name"] = "y"
    with pytest.raises(KeyboardInterrupt):
        layer.update()
    assert layer.generations == generations and not layer.updating
    assert info_url(viewer, "cells") == good
    monkeypatch.undo()
    layer.update()
    assert served_labels(viewer, "cells")[0] == "y"


def test_the_encode_worker_survives_the_kernel_interrupt(monkeypatch):
    monkeypatch.setattr(encode_worker, "WORKER_ABOVE_ROWS", 10)
    from nglive.formats.segment_properties import segment_properties_json

    df = table(50)
    first = encode_worker.run_encoder(segment_properties_json, df, rows=50, id_col="segment_id")
    (pid,) = [p.pid for p in encode_worker._executor._processes.values()]
    os.kill(pid, signal.SIGINT)  # Jupyter signals the kernel's whole process group
    time.sleep(0.3)
    again = encode_worker.run_encoder(segment_properties_json, df, rows=50,
                                      id_col="segment_id")
    assert bytes(again) == bytes(first)
    assert [p.pid for p in encode_worker._executor._processes.values()] == [pid]
    encode_worker.shutdown()


def test_closing_during_an_update_ends_cleanly(monkeypatch):
    threads = nglive_threads()
    viewer = nglive.Viewer()
    df = table()
    layer = viewer.add_segment_properties("cells", df, source="precomputed://gs://x/seg",
                                          id_col="segment_id", label_col="name")
    url = info_url(viewer, "cells")
    source = layer.sources["properties"]
    encode = source.encode
    started = threading.Event()

    def slow(snap):
        started.set()
        time.sleep(0.5)
        return encode(snap)

    monkeypatch.setattr(source, "encode", slow)
    df.loc[0, "name"] = "closing"
    future = layer.update(wait=False)
    assert started.wait(5)
    viewer.close()
    future.result(10)  # the update finishes (its result dropped), raising nothing
    assert viewer.store.list() == [] and http_status(url) in (403, 404)
    assert "cells" not in viewer.state.layers or not viewer.layers
    assert wait_for(lambda: no_new_threads(threads)), nglive_threads()
