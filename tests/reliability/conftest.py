"""Helpers for the reliability tests: HTTP on loopback, threads, memory."""

from __future__ import annotations

import gc
import http.client
import threading
import time
import urllib.parse
from collections import Counter

import numpy as np
import pandas as pd
import pytest


def http_status(url: str, method: str = "GET", headers: dict | None = None) -> int:
    """The status code of one request to ``url`` (a fresh connection, 10 s timeout)."""
    u = urllib.parse.urlsplit(url.removeprefix("precomputed://"))
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def collected(ref, timeout: float = 5.0) -> bool:
    """True once the object behind weakref ``ref`` has been garbage collected."""
    return wait_for(lambda: (gc.collect(), ref() is None)[1], timeout, 0.1)


# timers that come and go by design (a store's collection, the encode worker's idle
# timer, undisplayed-viewer checks): not what a leak looks like
TRANSIENT = ("nglive-store-gc", "nglive-encode-worker-idle", "nglive-collect")


def nglive_threads() -> Counter:
    """nglive's long-lived threads, by name (several viewers: several of one name)."""
    return Counter(t.name for t in threading.enumerate()
                   if t.name.startswith("nglive") and not t.name.startswith(TRANSIENT))


def no_new_threads(before: Counter) -> bool:
    """No nglive thread beyond those running at ``before`` (others' may have ended)."""
    return not (nglive_threads() - before)


def points_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.random(n) * 1000, "y": rng.random(n) * 1000,
                         "z": rng.random(n) * 1000, "score": rng.random(n).astype(np.float32)})


@pytest.fixture
def points():
    return points_table(2000)
