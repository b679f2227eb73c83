"""``write_annotations`` on dask DataFrames: the same bytes as on pandas, however the
table is partitioned and however many workers write it, read back by tensorstore's
sharded driver and the spec decoder; bad input named by partition, column and row
before anything is written; a worker killed mid-shard leaves no trace."""

from __future__ import annotations

import json
import os

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tensorstore as ts
from distributed import Client, LocalCluster
from formats.annotation_spec_decoder import SpecSource, level_of_each
from neuroglancer.read_precomputed_annotations import AnnotationReader

from nglive.formats.annotations import write_annotations
from nglive.formats.annotations.scale_out import CRASH_ONCE_ENV
from nglive.formats.validation import TableError


def synapses(n: int, *, kind: str = "point", seed: int = 0, list_rel: bool = False):
    """Synapse-like rows: ids not in row order, a float and an int property, a colour,
    two relationships (one with missing values, or lists)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 10_000, (n, 3)) * [1, 1, 0.4]
    cols = {"x": a[:, 0], "y": a[:, 1], "z": a[:, 2]} if kind == "point" else {
        "xa": a[:, 0], "ya": a[:, 1], "za": a[:, 2],
        **dict(zip(["xb", "yb", "zb"], (a + rng.normal(0, 60, (n, 3))).T, strict=True))}
    df = pd.DataFrame(cols)
    df["score"] = rng.random(n).astype(np.float32)
    df["size"] = rng.integers(0, 3000, n)  # int64: typed from its range, as pandas does
    df["color"] = rng.choice(["#ff0000", "#00ff00", "#0000ff"], n)
    df["pre"] = rng.integers(1, max(2, n // 50), n).astype(np.uint64) + np.uint64(2**60)
    if list_rel:  # an Arrow list column: dask would turn Python lists into strings
        df["post"] = pd.array([list(rng.integers(1, 40, k)) for k in rng.integers(0, 4, n)],
                              dtype=pd.ArrowDtype(pa.list_(pa.uint64())))
    else:
        post = rng.integers(1, max(2, n // 50), n).astype(float)
        post[rng.random(n) < 0.1] = np.nan  # no related segment
        df["post"] = pd.array(post, dtype="Float64").astype("UInt64")
    df.index = pd.Index(rng.permutation(n).astype(np.uint64) * np.uint64(3) + np.uint64(7),
                        name="syn_id")
    return df


KW = dict(properties=["score", "size", "color"], relationships=["pre", "post"])


def tree(root) -> dict[str, bytes]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def partitioned(df: pd.DataFrame, sizes: list[int]):
    """A dask DataFrame with partitions of exactly these sizes (0 allowed), rows in order."""
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    assert cuts[-1] == len(df)
    chunks = [df.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    return dd.from_map(lambda c: c, chunks, meta=df.iloc[:0], enforce_metadata=False)


def assert_same_source(pandas_dir, dask_dir):
    want, got = tree(pandas_dir), tree(dask_dir)
    assert sorted(got) == sorted(want)
    different = [k for k in want if want[k] != got[k]]
    assert not different, different


@pytest.mark.parametrize("sizes", [[20_000], [7_000, 0, 9_000, 4_000],
                                   [2_500] * 8], ids=["1", "4-with-empty", "8"])
def test_same_bytes_as_pandas_for_any_partitioning(client, tmp_path, sizes):
    df = synapses(20_000)
    write_annotations(df, "xyz", "point", output_dir=tmp_path / "pandas", **KW,
                      target_chunk_limit=300)
    out = write_annotations(partitioned(df, sizes), "xyz", "point",
                            output_dir=str(tmp_path / "dask"), **KW, target_chunk_limit=300)
    assert out == str(tmp_path / "dask")
    assert_same_source(tmp_path / "pandas", tmp_path / "dask")


def _line_chunk(seed: int) -> pd.DataFrame:
    df = synapses(200_000, kind="line", seed=seed)
    df.index = df.index + np.uint64(10**7 * seed)  # ids distinct across chunks
    return df


def test_a_million_lines_made_by_the_workers_read_back(client, tmp_path):
    """The largest case: 1M lines generated in the workers (nothing big in the graph),
    every by-id key listed by tensorstore's sharded driver, annotations and a
    relationship read by Neuroglancer's reader; the same bytes as pandas."""
    meta = _line_chunk(0).iloc[:0]
    ddf = dd.from_map(_line_chunk, range(5), meta=meta, enforce_metadata=False)
    write_annotations(ddf, "xyz", "line", output_dir=tmp_path / "dask", **KW)
    df = ddf.compute()
    info = json.loads((tmp_path / "dask" / "info").read_bytes())
    assert all(e["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
               for e in [info["by_id"], *info["relationships"], *info["spatial"]])
    kv = ts.KvStore.open({"driver": "neuroglancer_uint64_sharded",
                          "base": f"file://{tmp_path}/dask/by_id/",
                          "metadata": info["by_id"]["sharding"]}).result()
    assert len(kv.list().result()) == len(df) == 1_000_000
    reader = AnnotationReader(f"file://{tmp_path}/dask")
    for i in (0, 12345, 999_999):
        aid = int(df.index[i])
        got = reader.by_id[aid]
        assert np.allclose(got.point_a, df.iloc[i][["xa", "ya", "za"]].to_numpy(np.float32))
        assert [int(s) for s in got.segments[0]] == [int(df["pre"].iloc[i])]
    seg = int(df["pre"].iloc[5])
    assert sorted(int(a.id) for a in reader.relationships["pre"][seg]) == sorted(
        int(i) for i in df.index[df["pre"] == seg])
    write_annotations(df, "xyz", "line", output_dir=tmp_path / "pandas", **KW)
    assert_same_source(tmp_path / "pandas", tmp_path / "dask")


def test_spec_decoder_reads_every_annotation_once_per_index(client, tmp_path):
    df = synapses(30_000, kind="line", seed=4, list_rel=True)
    write_annotations(dd.from_pandas(df, npartitions=3), "xyz", "line",
                      output_dir=tmp_path, **KW, target_chunk_limit=500)
    src = SpecSource(str(tmp_path))
    by_id = src.by_id()
    assert sorted(by_id) == sorted(int(i) for i in df.index)
    i = 17
    geom, values, rels = by_id[int(df.index[i])]
    assert rels[1] == [int(v) for v in df["post"].iloc[i]]  # list order kept
    levels = level_of_each(src.spatial())
    assert sorted(levels) == sorted(by_id) and all(len(v) == 1 for v in levels.values())
    post = src.relationship(1)
    members = {s: sorted(r[0] for r in recs) for s, recs in post.items()}
    want: dict = {}
    for aid, lst in zip(df.index, df["post"], strict=True):
        for s in set(int(v) for v in lst):
            want.setdefault(s, []).append(int(aid))
    assert members == {s: sorted(v) for s, v in want.items()}


def test_one_worker_and_unshuffled_levels_give_the_pandas_bytes(tmp_path):
    """Without shuffling, the spatial draw is the row number: partitions must agree on
    where each one starts."""
    df = synapses(15_000, seed=5)
    kw = dict(KW, target_chunk_limit=200, shuffle_before_assigning_spatial_levels=False)
    write_annotations(df, "xyz", "point", output_dir=tmp_path / "pandas", **kw)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster):
        write_annotations(partitioned(df, [6_000, 1, 8_999]), "xyz", "point",
                          output_dir=tmp_path / "dask", **kw)
    assert_same_source(tmp_path / "pandas", tmp_path / "dask")


def test_bad_rows_are_named_by_partition_before_anything_is_written(client, tmp_path):
    df = synapses(9_000, seed=6)
    bad = df.copy()
    bad.iloc[7_500, bad.columns.get_loc("x")] = np.inf
    with pytest.raises(TableError) as e:
        write_annotations(partitioned(bad, [3_000, 3_000, 3_000]), "xyz", "point",
                          output_dir=tmp_path / "out", **KW)
    assert (e.value.partition, e.value.column, e.value.row) == (2, "x", bad.index[7_500])
    assert "partition 2" in str(e.value)
    assert not (tmp_path / "out").exists()
    # an id repeated in another partition (each partition alone is fine)
    dup = df.copy()
    dup.index = pd.Index(np.concatenate([dup.index[:-1], dup.index[:1]]), name="syn_id")
    with pytest.raises(TableError, match="duplicate annotation id") as e:
        write_annotations(partitioned(dup, [4_000, 5_000]), "xyz", "point",
                          output_dir=tmp_path / "out", **KW)
    assert e.value.row == int(df.index[0]) and "partitions 0, 1" in str(e.value)
    assert not (tmp_path / "out").exists()
    # colours with alpha in one partition only: pandas rejects the mix, so does this
    mixed = df.copy()
    mixed["color"] = mixed["color"].where(np.arange(len(df)) < 6_000, "#ff0000ff")
    with pytest.raises(TableError, match="alpha") as e:
        write_annotations(partitioned(mixed, [3_000, 3_000, 3_000]), "xyz", "point",
                          output_dir=tmp_path / "out", **KW)
    assert e.value.column == "color" and e.value.partition == 2
    assert not (tmp_path / "out").exists()


def test_a_worker_killed_while_writing_a_shard_is_retried_without_trace(tmp_path, monkeypatch):
    """The first shard task dies (``os._exit``) after leaving half a shard in a
    temporary file; Dask runs it again on a fresh worker, and the source is the same as
    the pandas one, with no partial file left."""
    df = synapses(20_000, seed=8)
    write_annotations(df, "xyz", "point", output_dir=tmp_path / "pandas", **KW)
    monkeypatch.setenv(CRASH_ONCE_ENV, str(tmp_path / "crashed-once"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster):
        write_annotations(dd.from_pandas(df, npartitions=3), "xyz", "point",
                          output_dir=tmp_path / "dask", **KW)
    assert (tmp_path / "crashed-once").exists()  # a worker did die
    assert_same_source(tmp_path / "pandas", tmp_path / "dask")


def test_to_s3_on_loopback(s3_server, s3_credentials, tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket="dask-out")
    df = synapses(10_000, seed=9)
    write_annotations(df, "xyz", "point", output_dir=tmp_path / "pandas", **KW)
    spec = {"driver": "s3", "bucket": "dask-out", "path": "syn/", "endpoint": s3_server,
            "aws_region": "us-east-1"}
    # worker threads share this process's credentials
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster):
        write_annotations(dd.from_pandas(df, npartitions=2), "xyz", "point", output_dir=spec,
                          **KW)
    kv = ts.KvStore.open(spec).result()
    got = {k.decode(): kv.read(k).result().value for k in kv.list().result()}
    assert got == tree(tmp_path / "pandas")


def test_memory_destinations_and_pandas_only_options_are_refused(client, tmp_path):
    ddf = dd.from_pandas(synapses(100), npartitions=1)
    with pytest.raises(ValueError, match="memory://"):
        write_annotations(ddf, "xyz", "point", output_dir="memory://x/")
    with pytest.raises(ValueError, match="sharded"):
        write_annotations(ddf, "xyz", "point", output_dir=tmp_path, write_sharded=False)
    assert not any(tmp_path.iterdir())
