"""Segment properties in the real client: the Seg. tab lists labels, a tag query filters."""

from __future__ import annotations

import pytest

import nglive
from nglive.demo_data import demo_meshes, demo_table


@pytest.fixture
def viewer():
    v = nglive.Viewer(log_requests=True, layout="3d")
    yield v
    v.close()


def query_results(page) -> str:
    # the first segment list under the query box holds the query's matches
    return page.locator(".neuroglancer-segment-list").first.inner_text()


def test_seg_tab_lists_labels_and_tag_query_filters(viewer, page):
    meshes = demo_meshes()
    table = demo_table(meshes)
    viewer.add_meshes("shapes", meshes, table, label_col="name",
                      tag_value_cols=["cell_type"], tag_bool_cols=["proofread"])
    with viewer.txn() as s:
        s.selected_layer.layer = "shapes"
        s.selected_layer.visible = True
    page.goto(viewer.url)
    page.get_by_text("Seg.", exact=True).click()
    page.wait_for_selector(".neuroglancer-segment-list-entry-name >> text=torus", timeout=30000)
    listed = query_results(page)
    for name in table["name"]:
        assert name in listed
    # tags from the categorical column and the bool column are offered
    tags = page.locator(".neuroglancer-segment-query-result-tag-name").all_inner_texts()
    assert {"angular", "round", "proofread"} <= set(tags)

    page.fill(".neuroglancer-segment-list-query", "#angular")
    page.wait_for_function(
        "() => !document.querySelector('.neuroglancer-segment-list').innerText.includes('torus')",
        timeout=20000)
    listed = query_results(page)
    assert "cube" in listed and "cone" in listed
    assert not any(n in listed for n in ["sphere", "cylinder", "torus", "capsule"])

    # an in-place edit of the table reaches the client as a new generation
    table.loc[table["name"] == "cube", "name"] = "renamed-cube"
    nglive.live.check_all()
    viewer.layers["shapes"].wait()
    assert viewer.server.wait_for_request(
        lambda r: r.key == "shapes/properties/1/info", timeout=30) is not None
    page.wait_for_selector(".neuroglancer-segment-list-entry-name >> text=renamed-cube",
                           timeout=30000)
