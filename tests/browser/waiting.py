"""Waiting for the browser: poll until a value satisfies a predicate."""

from __future__ import annotations

import time


def poll(fn, predicate, timeout=30.0):
    """``fn()`` again every 0.5 s until ``predicate`` holds or ``timeout`` passes; the
    last value either way, so the test's assertion says what was seen."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not predicate(value) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = fn()
    return value
