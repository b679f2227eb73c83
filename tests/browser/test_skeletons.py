"""Skeletons in the real client: navis neurons are drawn, the Seg. tab lists their names,
and an edit of a node table reaches the client as a new generation."""

from __future__ import annotations

import io
import time

import navis
import numpy as np
import pytest

import nglive

from .imaging import non_background_fraction


@pytest.fixture
def viewer():
    v = nglive.Viewer(log_requests=True, layout="3d")
    yield v
    v.close()


def drawn_fraction(page, least: float, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    frac = non_background_fraction(page.screenshot())
    while frac < least and time.monotonic() < deadline:
        time.sleep(0.5)
        frac = non_background_fraction(page.screenshot())
    return frac


def blue_share(png: bytes) -> float:
    """Of the drawn pixels below the top bar, the share that is clearly blue (the low
    end of the jet colormap: thin neurites when coloured by radius)."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[60:]
    px = img[img.max(axis=2) > 40]
    return float(((px[:, 2] > px[:, 0] + 40) & (px[:, 2] > px[:, 1] + 40)).mean())


def test_skeletons_render_list_labels_and_follow_edits(viewer, page):
    nl = navis.example_neurons(kind="skeleton")
    layer = viewer.add_skeletons("neurons", nl, color_by="radius")
    page.goto(viewer.url)
    for n in nl:
        assert viewer.server.wait_for_request(
            lambda r, sid=n.id: r.key == f"neurons/skeleton/0/{sid}", timeout=60), n.id
    shown = drawn_fraction(page, 0.01)
    assert shown > 0.01, "the skeletons were not drawn"
    # coloured by radius: mostly thin, so mostly jet's blue (~93% here); the segment
    # colours without the shader are not (~54% for these ids)
    by_radius = blue_share(page.screenshot())
    assert by_radius > 0.8
    with viewer.txn() as s:
        s.layers["neurons"].skeleton_shader = ""
    deadline = time.monotonic() + 20
    while blue_share(page.screenshot()) > by_radius - 0.2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert blue_share(page.screenshot()) < by_radius - 0.2

    # hiding every skeleton leaves only the UI chrome (~0.5% of pixels): what was drawn
    # was the skeletons
    with viewer.txn() as s:
        s.layers["neurons"].segments = set()
    deadline = time.monotonic() + 30
    while non_background_fraction(page.screenshot()) > shown / 2 and (
            time.monotonic() < deadline):
        time.sleep(0.5)
    assert non_background_fraction(page.screenshot()) < shown / 2
    with viewer.txn() as s:
        s.layers["neurons"].segments = {n.id for n in nl}
    assert drawn_fraction(page, 0.01) > 0.01

    with viewer.txn() as s:
        s.selected_layer.layer = "neurons"
        s.selected_layer.visible = True
    page.get_by_text("Seg.", exact=True).click()
    first = nl[0].name
    page.wait_for_selector(f".neuroglancer-segment-list-entry-name >> text={first}",
                           timeout=30000)
    listed = page.locator(".neuroglancer-segment-list").first.inner_text()
    for n in nl:
        assert n.name in listed

    # an in-place edit of one neuron's nodes is fetched by the client as generation 1
    n = nl[1]
    n.nodes.loc[n.nodes.index[:50], "x"] += 5000
    nglive.live.check_all()
    layer.wait()
    assert viewer.server.wait_for_request(
        lambda r: r.key == f"neurons/skeleton/1/{n.id}", timeout=60) is not None
