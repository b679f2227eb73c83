"""End to end: `nglive demo` in headless Chromium loads meshes and segment properties."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from .imaging import non_background_fraction


@pytest.fixture
def demo_process():
    proc = subprocess.Popen(
        [sys.executable, "-m", "nglive.cli", "demo", "--no-browser", "--log-requests"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    requests: list[str] = []

    def drain():
        for line in proc.stderr:
            requests.append(line.strip())

    url = None
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"nglive demo exited: {proc.stderr.read()}")
        if line.startswith("http"):
            url = line.strip()
    assert url, "nglive demo printed no URL"
    threading.Thread(target=drain, daemon=True).start()
    yield url, requests
    proc.terminate()
    proc.wait(10)


def test_demo_viewer_loads_meshes_and_properties(demo_process, page):
    url, requests = demo_process
    page.goto(url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fetched = " ".join(requests)
        if "fragment/" in fetched and "properties/0/info" in fetched and fetched.count(
            "fragment/") >= 6:
            break
        time.sleep(0.5)
    fetched = "\n".join(requests)
    assert "200 GET demo-shapes/mesh/0/info" in fetched
    assert "200 GET demo-shapes/properties/0/info" in fetched
    assert fetched.count("200 GET demo-shapes/mesh/0/fragment/") == 6
    time.sleep(2)  # let the last fragments be drawn
    # the 3-D panel is the left part of the page; the side panel is on the right
    png = page.screenshot()
    assert non_background_fraction(png, region=(0, 40, 680, 780)) > 0.08
    # the Seg. tab lists the labels from the table
    page.get_by_text("Seg.", exact=True).click()
    page.wait_for_selector("text=torus", timeout=20000)
    assert page.locator("text=cylinder").count() >= 1
