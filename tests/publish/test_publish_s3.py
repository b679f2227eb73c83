"""Publishing to s3:// against a real S3-compatible server on loopback (moto)."""

from __future__ import annotations

import gzip
import json

import pytest
import tensorstore as ts

from nglive.publish import PublishError

from .helpers import bind_all

URL = "https://data.example.org/pub"


def read_back(endpoint, bucket, prefix) -> dict[str, bytes]:
    """Every object under ``prefix``, read with tensorstore's s3 driver (not the writer)."""
    kv = ts.KvStore.open({"driver": "s3", "bucket": bucket, "path": prefix + "/",
                          "endpoint": endpoint, "aws_region": "us-east-1"}).result()
    keys = [k.decode() for k in kv.list().result()]
    return {k: kv.read(k).result().value for k in keys}


@pytest.mark.parametrize("backend", ["cloudfiles", "tensorstore"])
def test_publish_to_s3_reads_back_byte_for_byte(viewer, s3_server, bucket, tmp_path, backend):
    client, name = bucket
    bind_all(viewer)
    pub = viewer.publish(f"s3://{name}/runs/1", endpoint=s3_server, backend=backend)
    assert pub.base_url == f"{s3_server}/{name}/runs/1"
    local = viewer.publish(tmp_path, url=pub.base_url)
    remote = read_back(s3_server, name, "runs/1")
    files = {p.relative_to(tmp_path).as_posix(): p.read_bytes()
             for p in tmp_path.rglob("*") if p.is_file()}
    files.pop("nglive-publication.json")
    remote.pop("nglive-publication.json")
    assert remote == files  # same layout and bytes as the directory publication
    assert pub.state == local.state
    if backend == "cloudfiles":
        head = client.head_object(Bucket=name, Key="runs/1/cells/properties/info")
        assert head["ContentType"] == "application/json"
        assert head["CacheControl"] == "no-cache"
        shard = next(k for k in remote if k.endswith(".shard"))
        head = client.head_object(Bucket=name, Key=f"runs/1/{shard}")
        assert "immutable" in head["CacheControl"]


def test_republish_to_s3_writes_only_the_changed_source(viewer, s3_server, bucket):
    client, name = bucket
    cells, pts = bind_all(viewer)
    viewer.publish(f"s3://{name}/p", endpoint=s3_server)
    pts.loc[pts.index[0], "score"] = 3.0
    pub = viewer.publish(f"s3://{name}/p", endpoint=s3_server)
    record = json.loads(read_back(s3_server, name, "p")["nglive-publication.json"])
    assert record["pending"] == {}
    assert 0 < pub.files_written <= 4  # at most: by_id, by_rel, one spatial level, info
    assert pub.bytes_written < pub.bytes_total


def test_compressed_publication_sets_content_encoding(viewer, s3_server, bucket):
    client, name = bucket
    bind_all(viewer)
    viewer.publish(f"s3://{name}/z", endpoint=s3_server, compress=True)
    raw = client.get_object(Bucket=name, Key="z/cells/properties/info")
    assert raw["ContentEncoding"] == "gzip"
    assert json.loads(gzip.decompress(raw["Body"].read()))["@type"] == (
        "neuroglancer_segment_properties")
    listing = client.list_objects_v2(Bucket=name, Prefix="z/synapses/")["Contents"]
    shard = next(o["Key"] for o in listing if o["Key"].endswith(".shard"))
    assert "ContentEncoding" not in client.head_object(Bucket=name, Key=shard)
    assert not any(o["Key"].endswith(".gz") for o in listing)


def test_missing_bucket_and_credentials_fail_before_writing(viewer, s3_server, bucket,
                                                           monkeypatch):
    client, name = bucket
    bind_all(viewer)
    with pytest.raises(PublishError, match="bucket does not exist"):
        viewer.publish("s3://no-such-bucket/x", endpoint=s3_server)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", "/nonexistent-home")  # no ~/.aws, no ~/.cloudvolume
    from .conftest import _forget_cloudfiles_credentials

    _forget_cloudfiles_credentials()
    with pytest.raises(PublishError, match="credentials"):
        viewer.publish(f"s3://{name}/x", endpoint=s3_server)
    # cloud-files' own trap: keys in the environment without AWS_SESSION_TOKEN
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nglive-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nglive-test-secret")
    _forget_cloudfiles_credentials()
    with pytest.raises(PublishError, match="AWS_SESSION_TOKEN"):
        viewer.publish(f"s3://{name}/x", endpoint=s3_server)
    assert "Contents" not in client.list_objects_v2(Bucket=name)


def test_unchanged_shards_are_copied_server_side(viewer, s3_server, bucket, monkeypatch):
    import nglive.publish.publisher as publisher
    from nglive.formats.annotations import sharding

    monkeypatch.setattr(sharding, "TARGET_SHARD_BYTES", 8 << 10)
    monkeypatch.setattr(publisher, "COPY_MIN_BYTES", 1)
    client, name = bucket
    cells, pts = bind_all(viewer)
    viewer.publish(f"s3://{name}/c", endpoint=s3_server)
    pts.loc[pts.index[1], "score"] = 5.0
    pub = viewer.publish(f"s3://{name}/c", endpoint=s3_server)
    assert pub.files_copied > 0
    objects = read_back(s3_server, name, "c")
    copied = [k for k in pub_current(objects) if k.endswith(".shard")]
    for key in copied:  # copies keep the metadata they were first uploaded with
        head = client.head_object(Bucket=name, Key=f"c/{key}")
        assert head["ContentType"] == "application/octet-stream"
        assert "immutable" in head["CacheControl"]


def pub_current(objects) -> list[str]:
    record = json.loads(objects["nglive-publication.json"])
    return [k for rec in record["sources"].values() for k in rec["current"]]
