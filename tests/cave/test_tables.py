"""CAVE tables as bound layers: coordinate space, relationships, refresh after the fake
server's data changes, stale ids flagged and fixed, and errors that name what exists."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest
from neuroglancer.read_precomputed_annotations import AnnotationReader

import nglive
from nglive import live
from nglive.cave import CaveAuthError, CaveNotFoundError, CaveServerError

from .fake_server import synapse_rows

SYN = "synapses_pni_2"
CELLS = "aibs_metamodel_celltypes_v661"


def source_url(viewer, name, index=0):
    src = viewer.state.layers[name].to_json()["source"]
    src = [src] if isinstance(src, str | dict) else src
    url = src[index] if isinstance(src[index], str) else src[index]["url"]
    return url.removeprefix("precomputed://")


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_table_in_its_voxel_resolution_with_relationships(viewer, cave, client):
    seg = viewer.add_datastack(client)
    layer = viewer.add_cave_table(client, SYN, properties=["size"])
    df = layer.df
    assert len(df) == 2000 and df.attrs["materialization_version"] == 1
    reader = AnnotationReader(source_url(viewer, SYN))
    assert reader.metadata["dimensions"] == {"x": [4.0, "nm"], "y": [4.0, "nm"],
                                             "z": [40.0, "nm"]}
    row = df.iloc[10]
    ann = reader.by_id[int(row["id"])]
    # ctr_pt_position by default, in voxels, exactly as the table has it
    assert ann.point.tolist() == [row[f"ctr_pt_position_{a}"] for a in "xyz"]
    assert int(ann.props[0]) == row["size"]
    assert [[int(s) for s in rel] for rel in ann.segments] == [
        [row["pre_pt_root_id"]] if row["pre_pt_root_id"] else [], [row["post_pt_root_id"]]]
    root = int(df["post_pt_root_id"].iloc[0])
    by_rel = sorted(int(a.id) for a in reader.relationships["post_pt_root_id"][root])
    assert by_rel == sorted(df.loc[df["post_pt_root_id"] == root, "id"].tolist())
    state = viewer.state.layers[SYN].to_json()
    assert state["linkedSegmentationLayer"] == {"pre_pt_root_id": seg, "post_pt_root_id": seg}


def test_synapses_as_lines_or_chosen_points(viewer, client):
    lines = viewer.add_cave_table(client, SYN, "line", name="lines")
    pre = viewer.add_cave_table(client, SYN, name="pre", position="pre_pt_position",
                                segment="pre_pt_root_id")
    row = lines.df.iloc[3]
    ann = AnnotationReader(source_url(viewer, "lines")).by_id[int(row["id"])]
    assert ann.point_a.tolist() == [row[f"pre_pt_position_{a}"] for a in "xyz"]
    assert ann.point_b.tolist() == [row[f"post_pt_position_{a}"] for a in "xyz"]
    info = fetch_json(source_url(viewer, "pre") + "/info")
    assert [r["id"] for r in info["relationships"]] == ["pre_pt_root_id"]
    assert AnnotationReader(source_url(viewer, "pre")).by_id[int(row["id"])].point.tolist() \
        == [pre.df.iloc[3][f"pre_pt_position_{a}"] for a in "xyz"]


def test_refresh_after_the_server_changed(viewer, cave, client):
    layer = viewer.add_cave_table(client, SYN, properties=["size"])
    queries = cave.count("/query")
    cave.add_rows(SYN, synapse_rows(cave.graph, 50, np.random.default_rng(5), 0))
    assert layer.refresh() == {"annotations": 0}  # version 1 has no new rows yet
    cave.materialize()
    assert layer.refresh() == {"annotations": 1}
    assert len(layer.df) == 2050 and layer.materialization_version == 2
    assert cave.count("/query") == queries + 2
    reader = AnnotationReader(source_url(viewer, SYN))
    assert int(layer.df["id"].max()) in reader.by_id
    layer.refresh(materialization_version=1)
    assert len(layer.df) == 2000 and layer.generations == {"annotations": 2}
    assert len(layer.stale_ids) == 4
    # a live query: version 2's rows with their ids as of now, none stale
    layer.refresh(timestamp="now")
    assert len(layer.df) == 2050 and len(layer.stale_ids) == 0
    assert not layer.df["stale"].any()


def test_refresh_without_waiting(viewer, cave, client):
    layer = viewer.add_cave_table(client, CELLS)
    cave.materialize()
    future = layer.refresh(wait=False)
    assert future.result(60) == {"annotations": 1}
    assert layer.materialization_version == 2


def test_failed_refresh_keeps_the_last_good_layer(viewer, cave, client):
    layer = viewer.add_cave_table(client, CELLS)
    before = source_url(viewer, CELLS)
    cave.fail_next("/query", 500, "database is down")
    with pytest.raises(CaveServerError, match=rf"{CELLS}.*500.*database is down"):
        layer.refresh()
    assert source_url(viewer, CELLS) == before and layer.generations == {"annotations": 0}
    assert "database is down" in viewer.status["error"]
    layer.refresh()  # the same rows again: the error goes, the generation stays
    assert layer.error is None and layer.generations == {"annotations": 0}
    assert "database is down" not in viewer.status["error"]


def test_stale_ids_flagged_then_updated(viewer, cave, client):
    seg = viewer.add_datastack(client)
    cells = viewer.add_cave_table(client, CELLS, properties=["cell_type"])
    g = cave.graph
    stale = sorted(g.cell_root(c) for c in (0, 1, 2))
    assert sorted(cells.stale_ids.tolist()) == stale
    assert cells.df["stale"].sum() == 3
    assert "3 of 30 root ids are stale" in viewer.status["error"]
    props = viewer.add_segment_properties(seg, cells.df, label_col="cell_type",
                                          tag_value_cols=["cell_type"],
                                          tag_bool_cols=["stale"])
    info = fetch_json(source_url(viewer, seg, -1) + "/info")
    tags = info["inline"]["properties"][-1]
    stale_tag = tags["tags"].index("stale")
    tagged = [int(i) for i, t in zip(info["inline"]["ids"], tags["values"], strict=True)
              if stale_tag in t]
    assert sorted(tagged) == stale

    changes = cells.update_ids()
    assert sorted(changes["old_id"].tolist()) == stale
    assert (changes["confidence"] == 1.0).all()  # from the pt_supervoxel_id column
    df = cells.df
    assert g.is_latest(df["pt_root_id"].to_numpy(np.uint64), None).all()
    assert sorted(df.loc[df["pt_root_id"] != df["pt_root_id_old"], "pt_root_id_old"]) == stale
    assert len(cells.stale_ids) == 0 and not df["stale"].any()
    assert viewer.status["error"] is None
    assert cells.generations == {"annotations": 1} and props.generations == {"properties": 1}
    info = fetch_json(source_url(viewer, seg, -1) + "/info")
    assert sorted(map(int, info["inline"]["ids"])) == sorted(df["pt_root_id"].tolist())
    reader = AnnotationReader(source_url(viewer, CELLS))
    merged = cave.edits["merged"]
    assert [int(a.id) for a in reader.relationships["pt_root_id"][merged]] == \
        df.loc[df["pt_root_id"] == merged, "id"].tolist()


def test_refresh_carries_bound_segment_properties_along(viewer, cave, client):
    seg = viewer.add_datastack(client)
    cells = viewer.add_cave_table(client, CELLS)
    props = viewer.add_segment_properties(seg, cells.df, label_col="cell_type",
                                          tag_value_cols=["cell_type"])
    new = cave.tables[CELLS].rows.iloc[:1].copy()
    new["pt_supervoxel_id"] = cave.graph.sv_ids[35 * 20]  # a fragment gets a cell type
    new["cell_type"] = "new type"
    cave.add_rows(CELLS, new)
    cave.materialize()
    cells.refresh()
    assert props.df is cells.df and props.generations == {"properties": 1}
    info = fetch_json(source_url(viewer, seg, -1) + "/info")
    assert "new type" in info["inline"]["properties"][0]["values"]


def test_table_as_segment_properties_one_row_per_segment(viewer, cave, client):
    viewer.add_datastack(client)
    cells = viewer.add_cave_table(client, CELLS, properties=["cell_type"])
    props = cells.add_segment_properties(label_col="cell_type", tag_value_cols=["cell_type"])
    assert props.name == "segmentation"
    info = fetch_json(source_url(viewer, "segmentation", -1) + "/info")
    tags = info["inline"]["properties"][-1]["tags"]
    assert "stale" in tags and len(info["inline"]["ids"]) == 30
    # two cells merged: both rows get one id; the first row's label is kept
    g = cave.graph
    merged = cave.merge([g.cell_root(5), g.cell_root(6)])
    cells.update_ids()
    df = cells.df
    assert (df.loc[df["pt_root_id"] == merged, "id"].tolist()) == [6, 7]
    info = fetch_json(source_url(viewer, "segmentation", -1) + "/info")
    ids = info["inline"]["ids"]
    assert len(ids) == 29 and ids.count(str(merged)) == 1
    label = info["inline"]["properties"][0]["values"][ids.index(str(merged))]
    assert label == df.loc[df["id"] == 6, "cell_type"].item()
    tagging = info["inline"]["properties"][-1]
    if "stale" in tagging["tags"]:  # nothing is stale any more
        assert not any(tagging["tags"].index("stale") in v for v in tagging["values"])
    assert props.error is None
    # an edit of the table reaches the properties after the cell
    df.loc[df["id"] == 6, "cell_type"] = "chandelier"
    live.check_all()
    viewer.wait()
    props.wait()
    info = fetch_json(source_url(viewer, "segmentation", -1) + "/info")
    assert "chandelier" in info["inline"]["properties"][0]["values"]


def test_edits_of_the_frame_regenerate_without_a_query(viewer, cave, client):
    cells = viewer.add_cave_table(client, CELLS, properties=["cell_type"])
    queries = cave.count("/query")
    cells.df.loc[0, "cell_type"] = "chandelier"
    live.check_all()
    cells.wait()
    assert cells.generations == {"annotations": 1} and cave.count("/query") == queries
    info = fetch_json(source_url(viewer, CELLS) + "/info")
    assert "chandelier" in info["properties"][0]["enum_labels"]


def test_unknown_table_and_version(viewer, client):
    with pytest.raises(CaveNotFoundError, match=r"'nope'.*available: .*'synapses_pni_2'"):
        viewer.add_cave_table(client, "nope")
    with pytest.raises(CaveNotFoundError, match=r"version 7.*available: \[1\]"):
        viewer.add_cave_table(client, SYN, materialization_version=7)
    assert len(viewer.state.layers) == 0 and not viewer.layers


@pytest.mark.parametrize("keywords, column", [
    ({"position": "soma_position"}, "soma_position"),
    ({"segment": "soma_root_id"}, "soma_root_id"),
    ({"properties": ["volume"]}, "volume"),
])
def test_table_without_the_named_columns(viewer, client, keywords, column):
    with pytest.raises(nglive.TableError, match=rf"{column}.*{CELLS}.*pt_") as e:
        viewer.add_cave_table(client, CELLS, **keywords)
    assert e.value.column == column
    assert not viewer.layers


def test_server_errors_and_tokens(viewer, cave, client):
    cave.fail_next("/query", 503, "maintenance")  # caveclient retries 502-504 by itself
    assert viewer.add_cave_table(client, CELLS, name="retried").generations
    cave.fail_next("/query", 500, "maintenance")
    with pytest.raises(CaveServerError, match=r"500 \(maintenance\)"):
        viewer.add_cave_table(client, CELLS)
    with pytest.raises(CaveServerError, match=r"400 \(column nope not found"):
        viewer.add_cave_table(client, CELLS, filter_in_dict={"nope": [1]})
    cells = viewer.add_cave_table(client, CELLS)
    cave.revoke()
    with pytest.raises(CaveAuthError, match=r"token was not accepted.*save_token"):
        cells.refresh()
    assert cells.generations == {"annotations": 0}
    assert "token" in viewer.status["error"]


def test_freshness_unknown_when_the_chunkedgraph_fails(viewer, cave, client):
    cave.fail_next("is_latest_roots", 500, "graph is busy")
    cells = viewer.add_cave_table(client, CELLS)
    assert cells.generations == {"annotations": 0} and not cells.df["stale"].any()
    assert "stale root ids unknown" in viewer.status["error"]
    assert "graph is busy" in viewer.status["error"]
    cells.check_freshness()  # asked again, it answers
    assert len(cells.stale_ids) == 3 and "unknown" not in viewer.status["error"]


def test_filters_and_desired_resolution_are_the_query_keywords(viewer, cave, client):
    root = cave.graph.cell_root(5)
    layer = viewer.add_cave_table(client, SYN, filter_equal_dict={"post_pt_root_id": root},
                                  desired_resolution=[1, 1, 1])
    assert (layer.df["post_pt_root_id"] == root).all() and len(layer.df) > 0
    info = fetch_json(source_url(viewer, SYN) + "/info")
    assert info["dimensions"] == {"x": [1.0, "nm"], "y": [1.0, "nm"], "z": [1.0, "nm"]}
    raw = cave.tables[SYN].rows.set_index("id").loc[layer.df["id"].iloc[0]]
    assert layer.df["ctr_pt_position_z"].iloc[0] == raw["ctr_pt_position_z"] * 40
    assert isinstance(layer.df, pd.DataFrame)
