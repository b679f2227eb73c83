"""update_ids against the fake chunkedgraph: the fafbseg/crantpy confidence rules, checked
answers, and a fixed number of requests however many rows (no per-row loop)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from nglive.cave import update_ids
from nglive.cave.ids import is_current


def cell_root(cave, c):
    return cave.graph.cell_root(c)


def test_confidence_rules_without_supervoxels(cave, client):
    g = cave.graph
    big0, small0 = cave.edits["split0"]
    big1, _ = cave.edits["split1"]
    merged = cave.edits["merged"]
    ids = [cell_root(cave, 0), cell_root(cave, 1), cell_root(cave, 2), cell_root(cave, 39),
           cell_root(cave, 5), 0]
    out = update_ids(client, ids)
    assert out["old_id"].dtype == np.uint64 and out["new_id"].dtype == np.uint64
    assert out["new_id"].tolist() == [big0, big1, merged, merged, cell_root(cave, 5), 0]
    # the overlap of the suggested successor: 16 of 20 and 12 of 20 supervoxels; merges keep all
    assert out["confidence"].tolist() == [0.8, 0.6, 1.0, 1.0, 1.0, 1.0]
    assert out["changed"].tolist() == [True, True, True, True, False, False]
    assert g.is_latest(out["new_id"].to_numpy()[:5], None).all()


def test_supervoxels_give_exact_answers_per_row(cave, client):
    big0, small0 = cave.edits["split0"]
    g = cave.graph
    # two rows of the split cell: one on each side of the split
    df = pd.DataFrame({"pt_root_id": [cell_root(cave, 0)] * 2 + [cell_root(cave, 7)],
                       "pt_supervoxel_id": g.sv_ids[[0, 19, 7 * 20]].astype(np.int64)},
                      index=["a", "b", "c"])
    before = cave.count("leaves")
    out = update_ids(client, df)  # the supervoxel column is found next to the id column
    assert list(out.index) == ["a", "b", "c"]
    assert out["new_id"].tolist() == [big0, small0, cell_root(cave, 7)]
    assert out["confidence"].tolist() == [1.0, 1.0, 1.0]
    assert cave.count("leaves") == before  # no overlap suggestions needed
    # supervoxel_col=False: the overlap rule instead, the same answer for both rows
    out = update_ids(client, df, supervoxel_col=False)
    assert out["new_id"].tolist()[:2] == [big0, big0]
    assert out["confidence"].tolist()[:2] == [0.8, 0.8]


def test_suggestions_that_are_not_current_get_confidence_zero(cave, client):
    big1, _ = cave.edits["split1"]
    # the chunkedgraph answers an outdated root for the successor's supervoxels, the
    # symptom of caveclient #141; update_ids must not pass it on as an answer
    cave.outdated_answers[big1] = cell_root(cave, 1)
    out = update_ids(client, [cell_root(cave, 1), cell_root(cave, 0)])
    assert out["new_id"].tolist()[0] == 0
    assert out["confidence"].tolist()[0] == 0.0
    assert out["changed"].tolist()[0]
    assert out["new_id"].tolist()[1] == cave.edits["split0"][0]


def test_unknown_id_has_no_answer(cave, client):
    out = update_ids(client, np.array([123456789], np.uint64))
    assert out.iloc[0].tolist() == [123456789, 0, 0.0, True]


def test_requests_do_not_grow_with_rows(cave, client):
    rng = np.random.default_rng(1)
    roots = np.array([cell_root(cave, c) for c in range(40)], np.uint64)
    ids = rng.choice(roots, 5000)
    update_ids(client, ids[:10])  # the client's first segmentation-info request
    for n in (50, 5000):
        before = cave.counts()
        update_ids(client, ids[:n])
        made = cave.counts() - before
        by_kind = {k.rsplit("/", 1)[-1]: v for k, v in made.items()}
        assert by_kind == {"is_latest_roots": 2, "leaves_many": 1, "roots_binary": 1}, made
    before = cave.count("is_latest_roots")
    update_ids(client, roots, batch_size=10)  # 40 unique ids in batches of 10, then a check
    assert cave.count("is_latest_roots") - before == 4 + 1


def test_timestamp_before_the_edits(cave, client):
    then = dt.datetime.fromtimestamp(cave.t0 + 1.5 * 86400, dt.timezone.utc)
    ids = [cell_root(cave, 0), cell_root(cave, 2)]
    out = update_ids(client, ids, timestamp=then)
    assert not out["changed"].any()
    assert is_current(client, ids, timestamp=then).all()
    assert not is_current(client, ids).any()
