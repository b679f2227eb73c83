"""Precomputed skeletons: round trips read back with a decoder written from the spec,
and bad node tables rejected by name before anything is encoded."""

from __future__ import annotations

import json

import navis
import numpy as np
import pandas as pd
import pytest
from skeleton_spec_decoder import decode
from tensorstore_shards import read_with_tensorstore

from nglive.formats.skeletons import encode_skeletons
from nglive.formats.validation import TableError


def random_forest(rng, n_skeletons: int, max_nodes: int) -> pd.DataFrame:
    """Random trees with shuffled rows, scattered node ids and uint64 skeleton ids."""
    parts = []
    ids = np.unique(rng.integers(0, 2**63 - 1, n_skeletons)).astype(np.uint64) + np.uint64(2**63)
    for sid in ids:
        n = int(rng.integers(1, max_nodes))
        node = rng.choice(10**9, n, replace=False)
        parent_pos = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, n)])
        parent = np.where(parent_pos < 0, -1, node[parent_pos])
        parts.append(pd.DataFrame({
            "skeleton_id": np.full(n, sid, np.uint64), "node_id": node, "parent_id": parent,
            "x": rng.normal(size=n) * 1e4, "y": rng.normal(size=n), "z": rng.normal(size=n),
            "radius": rng.random(n).astype(np.float32), "type": rng.integers(0, 5, n),
        }))
    return pd.concat(parts).sample(frac=1, random_state=1).reset_index(drop=True)


def check_round_trip(table: pd.DataFrame, files: dict, read) -> None:
    info = json.loads(files["info"])
    assert info["@type"] == "neuroglancer_skeletons"
    assert [a["id"] for a in info["vertex_attributes"]] == ["radius", "type"]
    for sid, nodes in table.groupby("skeleton_id", sort=False):
        sk = decode(read(int(sid)), info)
        # vertices keep the table's row order within a skeleton
        np.testing.assert_array_equal(sk["positions"],
                                      nodes[["x", "y", "z"]].to_numpy(np.float32))
        np.testing.assert_array_equal(sk["radius"], nodes["radius"].to_numpy(np.float32))
        np.testing.assert_array_equal(sk["type"], nodes["type"].to_numpy())
        node = nodes["node_id"].to_numpy()
        got = {(node[a], node[b]) for a, b in sk["edges"]}
        want = set(zip(nodes["node_id"][nodes["parent_id"] >= 0],
                       nodes["parent_id"][nodes["parent_id"] >= 0], strict=True))
        assert got == want and len(sk["edges"]) == len(want)


def test_unsharded_round_trip_of_random_trees():
    table = random_forest(np.random.default_rng(0), 30, 60)
    files = encode_skeletons(table, sharded=False)
    assert "sharding" not in json.loads(files["info"])
    assert len(files) == 31
    check_round_trip(table, files, lambda sid: files[str(sid)])


def test_sharded_round_trip_read_through_tensorstore():
    table = random_forest(np.random.default_rng(1), 40, 30)
    files = encode_skeletons(table, sharded=True)
    info = json.loads(files["info"])
    assert all(k == "info" or k.endswith(".shard") for k in files)
    keys = sorted(int(s) for s in table["skeleton_id"].unique())
    listed, values = read_with_tensorstore({k: v for k, v in files.items() if k != "info"},
                                           info["sharding"], keys)
    assert listed == keys
    check_round_trip(table, files, lambda sid: values[sid])


def test_many_skeletons_are_sharded_by_default():
    table = random_forest(np.random.default_rng(2), 600, 4)
    files = encode_skeletons(table)
    assert "sharding" in json.loads(files["info"])
    assert len(files) < 10


def test_dict_input_types_and_transform():
    nodes = pd.DataFrame({"node_id": [10, 11, 12], "parent_id": [np.nan, 10, 10],
                          "x": [1.5, 2, 3], "y": [0, 1, 2], "z": [5, 5, 5],
                          "radius": [1.0, 2, 3], "type": pd.Categorical(["root", "end", "end"]),
                          "flag": [True, False, True], "big": [0, 70000, -1]})
    files = encode_skeletons({2**64 - 1: nodes}, vertex_attributes=["radius", "type", "flag",
                                                                     "big"],
                             transform=np.diag([8.0, 8, 40, 0])[:3], segment_properties="props")
    info = json.loads(files["info"])
    assert {a["id"]: a["data_type"] for a in info["vertex_attributes"]} == {
        "radius": "float32", "type": "uint8", "flag": "uint8", "big": "int32"}
    assert info["transform"] == [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 40, 0]
    assert info["segment_properties"] == "props"
    sk = decode(files[str(2**64 - 1)], info)
    assert sk["type"].tolist() == [1, 0, 0]  # codes of the sorted categories: end, root
    assert sk["flag"].tolist() == [1, 0, 1] and sk["big"].tolist() == [0, 70000, -1]
    assert sorted(map(tuple, sk["edges"].tolist())) == [(1, 0), (2, 0)]


def test_default_attributes_only_when_present_and_explicit_ones_required():
    nodes = pd.DataFrame({"skeleton_id": 1, "node_id": [1, 2], "parent_id": [-1, 1],
                          "x": 0.0, "y": 0.0, "z": 0.0})
    info = json.loads(encode_skeletons(nodes)["info"])
    assert info["vertex_attributes"] == []
    with pytest.raises(TableError, match="missing column") as e:
        encode_skeletons(nodes, vertex_attributes=["radius"])
    assert e.value.column == "radius"


def test_navis_neurons_round_trip_in_nm():
    nl = navis.example_neurons(2, kind="skeleton")
    table = pd.concat([n.nodes.assign(skeleton_id=n.id) for n in nl], ignore_index=True)
    table["type"] = table["type"].cat.codes  # compare codes directly below
    files = encode_skeletons(table, several_roots=True)
    check_round_trip(table, files, lambda sid: files[str(sid)])


def base_table() -> pd.DataFrame:
    return pd.DataFrame({
        "skeleton_id": [5, 5, 5, 9, 9],
        "node_id": [1, 2, 3, 1, 2],
        "parent_id": [-1, 1, 2, -1, 1],
        "x": [0.0, 1, 2, 3, 4], "y": 0.0, "z": 0.0,
    }, index=[100, 101, 102, 103, 104])


@pytest.mark.parametrize("edit, message, column, row, value", [
    (lambda t: t.loc.__setitem__((102, "node_id"), 2), "skeleton 5: duplicate node id",
     "node_id", 102, 2),
    (lambda t: t.loc.__setitem__((104, "parent_id"), 3),
     "skeleton 9: parent is not a node of this skeleton", "parent_id", 104, 3),
    (lambda t: t.loc.__setitem__((102, "parent_id"), -1), "skeleton 5: several roots",
     "parent_id", 102, -1),
    (lambda t: t.loc.__setitem__((101, "y"), np.nan), "skeleton 5: coordinate is not finite",
     "y", 101, None),
    (lambda t: t.loc.__setitem__((103, "z"), np.inf), "skeleton 9: coordinate is not finite",
     "z", 103, float("inf")),
    (lambda t: t.loc.__setitem__((103, "x"), 1e39), "skeleton 9: coordinate overflows",
     "x", 103, 1e39),
    (lambda t: t.loc.__setitem__((103, "node_id"), -4), "negative node id",
     "node_id", 103, -4),
])
def test_bad_tables_name_skeleton_column_row_and_value(edit, message, column, row, value):
    table = base_table()
    edit(table)
    with pytest.raises(TableError, match=message) as e:
        encode_skeletons(table)
    assert (e.value.column, e.value.row) == (column, row)
    if value is None:
        assert np.isnan(e.value.value)
    else:
        assert e.value.value == value


def test_cycles_are_found_even_with_one_root():
    table = base_table()
    # skeleton 5 keeps its root 1 but nodes 2 and 3 point at each other
    table.loc[101, "parent_id"] = 3
    with pytest.raises(TableError, match="skeleton 5: parent links form a cycle") as e:
        encode_skeletons(table)
    assert e.value.column == "parent_id" and e.value.row in (101, 102)
    # a skeleton with no root at all: every node on a cycle
    table = base_table()
    table.loc[103, "parent_id"] = 2
    with pytest.raises(TableError, match="skeleton 9: parent links form a cycle"):
        encode_skeletons(table)
    # a node that is its own parent
    table = base_table()
    table.loc[104, "parent_id"] = 2
    with pytest.raises(TableError, match="skeleton 9: parent links form a cycle") as e:
        encode_skeletons(table)
    assert e.value.row == 104


def test_a_long_chain_is_not_mistaken_for_a_cycle():
    n = 5000  # needs the full ceil(log2 n) + 1 pointer-jumping rounds
    node = np.arange(n)[::-1]  # a chain 0 <- 1 <- ... listed leaf first
    table = pd.DataFrame({"skeleton_id": 1, "node_id": node, "parent_id": node - 1,
                          "x": np.arange(n, dtype=float), "y": 0.0, "z": 0.0})
    files = encode_skeletons(table)
    assert decode(files["1"], json.loads(files["info"]))["edges"].shape == (n - 1, 2)


def test_parents_in_other_skeletons_do_not_count():
    table = base_table()
    table.loc[104, "parent_id"] = 3  # node 3 exists, but in skeleton 5
    with pytest.raises(TableError, match="skeleton 9: parent is not a node"):
        encode_skeletons(table)


def test_several_roots_allowed_on_request():
    table = base_table()
    table.loc[102, "parent_id"] = -1
    files = encode_skeletons(table, several_roots=True)
    sk = decode(files["5"], json.loads(files["info"]))
    assert sk["edges"].tolist() == [[1, 0]]


def test_bad_skeleton_ids_and_attributes():
    table = base_table()
    table["skeleton_id"] = [5, 5, 5, -9, -9]
    with pytest.raises(TableError, match="negative id") as e:
        encode_skeletons(table)
    assert (e.value.column, e.value.row, e.value.value) == ("skeleton_id", 103, -9)
    table = base_table()
    table["type"] = pd.array([1, 2, None, 1, 1], dtype="Int64")
    with pytest.raises(TableError, match="missing value") as e:
        encode_skeletons(table)
    assert (e.value.column, e.value.row) == ("type", 102)
    table["type"] = [1, 2, 2**40, 1, 1]
    with pytest.raises(TableError, match="range of 32-bit") as e:
        encode_skeletons(table)
    assert (e.value.column, e.value.row, e.value.value) == ("type", 102, 2**40)


def test_attributes_as_float_and_shader_safe_ids():
    table = base_table().assign(type=[1, 2, 3, 1, 1])
    files = encode_skeletons(table, as_float=["type"])
    info = json.loads(files["info"])
    assert info["vertex_attributes"] == [{"id": "type", "data_type": "float32",
                                          "num_components": 1}]
    assert decode(files["5"], info)["type"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="shader identifiers"):
        encode_skeletons(table.assign(**{"bad id": 1}), vertex_attributes=["bad id"])


def test_all_attributes_as_float_refuse_inexact_integers():
    table = base_table().assign(type=[1, 2, 3, 2**24 + 1, 1], radius=1.0)
    with pytest.raises(TableError, match="not exact as float32") as e:
        encode_skeletons(table, as_float=True)
    assert (e.value.column, e.value.row, e.value.value) == ("type", 103, 2**24 + 1)
    table.loc[103, "type"] = 2**24
    info = json.loads(encode_skeletons(table, as_float=True)["info"])
    assert {a["data_type"] for a in info["vertex_attributes"]} == {"float32"}
