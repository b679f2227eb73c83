"""A notebook session compressed into a minute: thousands of edits of bound point,
properties and mesh layers, re-created viewers, layer add/remove cycles and bad edits,
while reader threads fetch whatever the viewer currently points at.

Asserts bounded RSS and store size, no thread or socket growth, and that every read is
consistent with one generation (the info file and a data file of the same generation
describe the same edit). ``NGLIVE_SOAK_SECONDS`` sets the length (45 s by default; the
bigger setting for a long run is e.g. 600).
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

import nglive
from nglive import live

from .conftest import nglive_threads, no_new_threads, wait_for

sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
from annotation_spec_decoder import decode_by_id  # noqa: E402

SOAK_SECONDS = float(os.environ.get("NGLIVE_SOAK_SECONDS", "45"))
N_POINTS = 2000
N_CELLS = 500


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def get(url: str) -> tuple[int, bytes]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request("GET", u.path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Session:
    """The viewer of the moment and its tables, as a notebook's cells would hold them."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.points = pd.DataFrame({"x": rng.random(N_POINTS) * 1000,
                                    "y": rng.random(N_POINTS) * 1000,
                                    "z": rng.random(N_POINTS) * 1000})
        self.points.index = np.arange(1, N_POINTS + 1, dtype=np.uint64)
        self.cells = pd.DataFrame({
            "segment_id": np.arange(1, N_CELLS + 1, dtype=np.uint64),
            "name": ["v0"] * N_CELLS,
            "color": ["#ff0000"] * N_CELLS,
        })
        self.viewer = None
        self.point_version = 0
        self.mesh_version = 0
        self.lock = threading.Lock()

    def meshes(self) -> dict:
        box = trimesh.creation.box(extents=(1, 1, 1))
        box.apply_translation((self.mesh_version * 10, 0, 0))
        return {1: box, 2: trimesh.creation.icosphere(subdivisions=1)}

    def make_viewer(self):
        """The cell that builds the viewer, (re-)run: the previous viewer is dropped."""
        viewer = nglive.Viewer()
        viewer.add_segment_properties("cells", self.cells, source="precomputed://gs://x/s",
                                      id_col="segment_id", label_col="name",
                                      color_col="color")
        self.add_points(viewer)
        viewer.add_meshes("shapes", self.meshes())
        with self.lock:
            self.viewer = viewer

    def add_points(self, viewer):
        viewer.add_annotations("points", self.points, "point", write_sharded=False)

    def current(self):
        with self.lock:
            return self.viewer


def read_consistently(session: Session, stop: threading.Event, stats: dict, seed: int):
    """A reader thread; anything it did not expect is an error of the test, not a
    warning lost in a thread."""
    try:
        _read_consistently(session, stop, stats, seed)
    except Exception as e:  # noqa: BLE001 — reported through stats, asserted empty
        stats["errors"].append(("reader crashed", repr(e)))


def _read_consistently(session: Session, stop: threading.Event, stats: dict, seed: int):
    rnd = random.Random(seed)
    while not stop.is_set():
        viewer = session.current()
        try:
            # one JSON copy of the state: the layers and their sources as one moment saw them
            state = viewer.state.to_json()
        except Exception:  # noqa: BLE001 — a viewer being closed: try the next one
            state = {}
        layers = {}
        for layer in state.get("layers", []):
            if layer.get("name") in ("cells", "points", "shapes"):
                src = layer.get("source")
                src = src if isinstance(src, list) else [src]
                layers[layer["name"]] = [u for u in (x["url"] if isinstance(x, dict) else x
                                                     for x in src) if "/nglive/" in u]
        del viewer
        for name, urls in layers.items():
            if not urls:
                continue
            base = urls[0].removeprefix("precomputed://")
            status, body = get(base + "/info")
            stats["reads"] += 1
            if status in (403, 404):
                stats["stale"] += 1  # the generation (or viewer) went meanwhile: allowed
                continue
            if status != 200:
                stats["errors"].append((name, status))
                continue
            info = json.loads(body)
            expected = {"cells": "neuroglancer_segment_properties",
                        "points": "neuroglancer_annotations_v1",
                        "shapes": "neuroglancer_legacy_mesh"}[name]
            if info.get("@type") != expected:  # a layer's URL serving another's data
                stats["errors"].append((name, base, info.get("@type")))
                continue
            if name == "cells":
                labels = next(p["values"] for p in info["inline"]["properties"]
                              if p["type"] == "label")
                if len(set(labels)) != 1:
                    stats["torn"].append((name, sorted(set(labels))[:3]))
            elif name == "points":
                version = int(info["lower_bound"][0] // 1000)
                aid = rnd.randrange(1, N_POINTS + 1)
                status, record = get(f"{base}/by_id/{aid}")
                stats["reads"] += 1
                if status in (403, 404):
                    stats["stale"] += 1
                    continue
                geometry, _values, _rels = decode_by_id(record, info)
                if int(geometry[0] // 1000) != version:
                    stats["torn"].append((name, version, geometry[0]))
            else:
                status, manifest = get(f"{base}/1:0")
                stats["reads"] += 1
                if status == 200 and not json.loads(manifest)["fragments"]:
                    stats["torn"].append((name, "empty manifest"))
        time.sleep(0.02)


def test_a_long_session_stays_bounded_and_consistent():
    rng = np.random.default_rng(7)
    session = Session(rng)
    # warm up (imports, caches, the first viewer), then take the baseline
    session.make_viewer()
    session.current().close()
    gc.collect()
    base_rss, base_threads, base_sockets = rss_mb(), nglive_threads(), open_sockets()

    session.make_viewer()
    stats = {"reads": 0, "stale": 0, "errors": [], "torn": []}
    stop = threading.Event()
    readers = [threading.Thread(target=read_consistently, args=(session, stop, stats, i))
               for i in range(3)]
    for t in readers:
        t.start()
    edits = recreated = cycles = bad = 0
    peak_store = 0
    rss_trace = []
    deadline = time.monotonic() + SOAK_SECONDS
    try:
        while time.monotonic() < deadline:
            edits += 1
            viewer = session.current()
            session.cells["name"] = f"v{edits}"  # every label: one version per generation
            if edits % 3 == 0:
                session.point_version += 1
                session.points["x"] = (session.points["x"] % 1000
                                       + 1000 * session.point_version)
            if edits % 25 == 5:
                session.cells.loc[3, "color"] = "not a colour"  # a bad edit, then fixed
                bad += 1
            elif edits % 25 == 6:
                session.cells.loc[3, "color"] = "#00ff00"
            live.check_all()  # what IPython runs after every cell
            if edits % 10 == 0:
                session.mesh_version += 1
                viewer.layers["shapes"].update(meshes=session.meshes(), wait=False)
            if edits % 40 == 0:
                viewer.wait()
                viewer.remove_layer("points")
                session.add_points(viewer)
                cycles += 1
            if edits % 150 == 0:
                viewer.wait()
                session.make_viewer()  # re-run the cell: the old viewer is just dropped
                recreated += 1
            peak_store = max(peak_store, viewer.store.stored_bytes())
            if edits % 100 == 0:
                viewer.wait()
                gc.collect()
                rss_trace.append(round(rss_mb(), 1))
            del viewer
    finally:
        stop.set()
        for t in readers:
            t.join(30)
        session.current().close()
    gc.collect()
    time.sleep(0.5)
    gc.collect()

    print(f"soak: {edits} edits, {recreated} viewers re-created, {cycles} layer cycles, "
          f"{bad} bad edits, {stats['reads']} reads ({stats['stale']} stale), "
          f"RSS {base_rss:.0f} -> {rss_mb():.0f} MB (trace {rss_trace}), "
          f"peak store {peak_store / 2**20:.1f} MB")
    assert edits >= 300 and recreated >= 1 and cycles >= 5
    assert stats["reads"] > 200 and not stats["errors"] and not stats["torn"], stats
    assert rss_mb() - base_rss < 120, rss_trace
    if len(rss_trace) >= 6:  # no upward trend once warm: the last third vs the first
        third = len(rss_trace) // 3
        assert max(rss_trace[-third:]) - max(rss_trace[:third]) < 60, rss_trace
    # the current generations plus at most three superseded ones per source
    assert peak_store < 8 * 2**20
    assert wait_for(lambda: no_new_threads(base_threads), 10), nglive_threads()
    assert open_sockets() <= base_sockets + 4
