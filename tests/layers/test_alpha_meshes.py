"""Alpha-mesh layers: one segment per group, only edited groups re-meshed, per-group
alphas from the cached triangulation, bad groups reported while the rest mesh."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

import nglive
from nglive import live
from nglive.formats.legacy_mesh import decode_fragment
from nglive.layers.tuner import snap_to_critical, spectrum_svg


def ball(rng, center, n, radius=100.0):
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1)[:, None]
    return center + p * rng.random((n, 1)) ** (1 / 3) * radius


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(np.vstack([ball(rng, 0, 1500), ball(rng, 400, 1500), ball(rng, 800, 3)]),
                      columns=list("xyz"))
    df["region"] = ["a"] * 1500 + ["b"] * 1500 + ["c"] * 3
    return df


def fetch(url: str) -> bytes:
    return urllib.request.urlopen(url.removeprefix("precomputed://")).read()


def test_one_segment_per_group_with_properties(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points, "region")
    rep = layer.reports().set_index("group")
    assert rep.loc["a", "watertight"] and rep.loc["b", "watertight"]
    assert rep.loc["a", "is_volume"]
    # a 100-unit ball: the alpha shape of interior samples is somewhat smaller
    assert 0.6 < rep.loc["a", "volume"] / (4 / 3 * np.pi * 100**3) < 1.0
    assert "at least 4 points" in rep.loc["c", "error"]
    assert "group 'c'" in viewer.status["layers"][0]["error"]
    mesh_url, props_url = [s.url for s in viewer.state.layers["regions"].source]
    props = json.loads(fetch(props_url + "/info"))
    assert props["inline"]["ids"] == ["1", "2"]
    label = next(p for p in props["inline"]["properties"] if p["type"] == "label")
    assert label["values"] == ["a", "b"]
    manifest = json.loads(fetch(mesh_url + "/1:0"))
    vertices, faces = decode_fragment(fetch(mesh_url + "/" + manifest["fragments"][0]))
    assert len(faces) == len(layer.groups["a"].mesh.faces) > 100
    assert np.abs(vertices).max() <= 101


def test_only_the_edited_group_is_remeshed(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points, "region")
    shaper_b = layer.shaper("b")
    points.loc[0, "x"] += 5.0
    live.check_all()
    layer.wait()
    assert layer.last_remeshed == ["a"]
    assert layer.shaper("b") is shaper_b  # b's triangulation was reused
    assert layer.generations == {"mesh": 1, "properties": 1}


def test_set_alpha_reuses_the_triangulation(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points, "region")
    shaper = layer.shaper("a")
    before = layer.groups["a"].report["volume"]
    layer.set_alpha("a", 1000.0)  # above every radius: the convex hull
    assert layer.shaper("a") is shaper and layer.last_remeshed == ["a"]
    assert layer.groups["a"].report["volume"] > before
    layer.set_alpha("a", "optimal")
    assert layer.groups["a"].alpha == pytest.approx(shaper.optimal_alpha())


def test_deleting_a_group_and_adding_one(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points, "region")
    rng = np.random.default_rng(5)
    extra = pd.DataFrame(ball(rng, -500, 800), columns=list("xyz"))
    extra["region"] = "d"
    new = pd.concat([points[points.region != "b"], extra], ignore_index=True)
    layer.update(new)
    assert set(layer.groups) == {"a", "c", "d"}
    assert layer.groups["d"].segment_id == 4  # ids are never reused
    assert layer.last_remeshed == ["d"]


def test_units_scale_vertices_to_nm(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points[points.region == "a"], "region",
                                  coord_space={"x": [8, "nm"], "y": [8, "nm"], "z": [40, "nm"]})
    lo, hi = layer.view_bounds()
    assert hi[2] > 3000 and hi[0] < 1000  # z scaled by 40, x by 8


def test_bad_input(viewer, points):
    with pytest.raises(nglive.TableError, match="'region'"):
        viewer.add_alpha_mesh("r", points.drop(columns="region"), "region")
    bad = points.copy()
    bad.loc[7, "y"] = np.nan
    with pytest.raises(nglive.TableError, match="row 7"):
        viewer.add_alpha_mesh("r2", bad, "region")
    with pytest.raises(ValueError, match="3-D"):
        viewer.add_alpha_mesh("r3", points, "region", coord_space="xy")


def test_tuner_slider_snaps_and_remeshes(viewer, points):
    layer = viewer.add_alpha_mesh("regions", points, "region")
    tuner = layer.tuner()
    assert set(tuner.groups) == {"a", "b"}
    row = tuner.groups["a"]
    assert "<svg" in row.plot.value or "computing" in row.plot.value  # shown at once
    assert len(row.spectrum.result(timeout=60).table) == 32
    assert "<svg" in row.plot.value
    row.slider.value = 40.0
    layer.wait()
    crit = layer.shaper("a").critical_alphas
    assert layer.groups["a"].alpha in {float(np.nextafter(c, np.inf)) for c in crit}
    assert abs(np.log(layer.groups["a"].alpha / 40.0)) < 0.1
    assert "α =" in row.info.value and "<svg" in row.plot.value
    row.pin.click()
    best = viewer.state.layers["regions (best)"].layer.to_json()
    assert best["objectAlpha"] == pytest.approx(0.4)
    assert set(best["segmentColors"].values()) == {"#ffa500"}


def test_snap_and_svg_helpers():
    crit = np.array([1.0, 2.0, 4.0])
    assert snap_to_critical(1.9, crit) == np.nextafter(2.0, np.inf)
    assert snap_to_critical(3.1, crit) == np.nextafter(4.0, np.inf)
    table = pd.DataFrame({"alpha": [1, 2, 4], "volume": [0, 1, 2], "watertight": [0, 1, 1],
                          "is_volume": [0, 1, 1]})
    svg = spectrum_svg(table, 2.0)
    assert svg.count("<circle") == 3 and "#c62828" in svg and "stroke-dasharray" in svg


def test_points_added_in_the_viewer_reshape_the_mesh(viewer):
    import time

    import neuroglancer

    rng = np.random.default_rng(2)
    points = pd.DataFrame(ball(rng, 0, 300), columns=list("xyz"))
    viewer.add_local_annotations("clicks", points)
    alpha = viewer.add_alpha_mesh("shape", points, alpha=1000.0)
    before = alpha.groups["shape"].report["volume"]
    with viewer.txn() as s:  # a point placed far out, as a click in the viewer would
        s.layers["clicks"].annotations.append(
            neuroglancer.PointAnnotation(id="feedbeef", point=[400.0, 0.0, 0.0]))
    deadline = time.monotonic() + 10
    while alpha.generations["mesh"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    alpha.wait()
    assert len(points) == 301
    assert alpha.groups["shape"].n_points == 301
    assert alpha.groups["shape"].report["volume"] > before * 1.2


def test_voxel_grid_points_with_repeats_are_merged_and_meshed(viewer):
    # points snapped to an 8-unit voxel grid, most of them landing on a voxel already used
    rng = np.random.default_rng(4)
    raw = ball(rng, 0, 6000, radius=48.0)
    df = pd.DataFrame(np.round(raw / 8.0) * 8.0 + 0.0, columns=list("xyz"))
    distinct = len(df.drop_duplicates())
    assert distinct < len(df) / 2  # mostly repeats: the tracertools start alpha is 0
    layer = viewer.add_alpha_mesh("voxels", df, alpha="auto")
    rep = layer.reports().iloc[0]
    assert rep["error"] is None and rep["watertight"]
    assert rep["merged_duplicates"] == len(df) - distinct
    assert rep["n_solids"] >= 1


def test_alpha_meshes_as_multires(viewer, points):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "formats"))
    from multires_spec_decoder import decode_fragments, decode_manifest

    layer = viewer.add_alpha_mesh("regions", points, "region", format="multires")
    url = viewer.state.layers["regions"].source[0].url
    assert json.loads(fetch(url + "/info"))["@type"] == "neuroglancer_multilod_draco"
    for g in layer.groups.values():
        if g.mesh is None:
            continue
        manifest = decode_manifest(fetch(f"{url}/{g.segment_id}.index"))
        frags = decode_fragments(manifest, fetch(f"{url}/{g.segment_id}"), 16)
        area = sum(float(np.linalg.norm(np.cross(*(m[f][:, 1:] - m[f][:, :1]).transpose(1, 0, 2)),
                                        axis=1).sum()) / 2
                   for lod, _, _, m, f in frags if lod == 0)
        assert area == pytest.approx(g.mesh.area, rel=1e-3)
    with pytest.raises(ValueError, match="format must be one of"):
        viewer.add_alpha_mesh("other", points, "region", format="obj")
