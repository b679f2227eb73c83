"""Publishing to a directory: layout, state, incremental re-publish, safety, errors."""

from __future__ import annotations

import json
import os

import neuroglancer
import numpy as np
import pytest
from neuroglancer.read_precomputed_annotations import AnnotationReader

import nglive
from nglive.publish import PublishError, publish_store
from nglive.publish.destination import DirectoryDestination
from nglive.publish.record import RECORD_KEY
from nglive.static_server import StaticServer

from .helpers import bind_all

URL = "https://data.example.org/pub"


def source_urls(layer: dict) -> list[str]:
    src = layer.get("source")
    src = src if isinstance(src, list) else [src]
    return [s["url"] if isinstance(s, dict) else s for s in src]


def published_keys(root) -> set[str]:
    out = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return out


def test_directory_layout_and_state(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    pub = viewer.publish(tmp_path, url=URL)

    keys = published_keys(tmp_path)
    assert {"cells/mesh/info", "cells/mesh/1:0", "cells/properties/info",
            "synapses/annotations/info", "state.json", RECORD_KEY} <= keys
    assert not any(k.endswith(".gz") or "/.nglive-" in k for k in keys)
    # sharded indexes are copied as they are, under content-tagged directories
    live = viewer.layers["synapses"]
    gen = viewer.store.current(f"{live.prefix}/annotations")
    for key in gen.keys:
        if key.endswith(".shard"):
            index, shard = key.split("/")
            [published] = [k for k in keys if k.startswith(f"synapses/annotations/{index}.")
                           and k.endswith("/" + shard)]
            assert (tmp_path / published).read_bytes() == viewer.store.read(
                f"{gen.path}/{key}")
    # info files are plain JSON
    info = json.loads((tmp_path / "synapses/annotations/info").read_text())
    assert info["@type"] == "neuroglancer_annotations_v1"
    assert all((tmp_path / "synapses/annotations" / info["by_id"]["key"]).is_dir()
               for _ in [0])

    state = pub.state
    text = json.dumps(state)
    assert viewer.server.token not in text and viewer.server.server_url not in text
    layers = {la["name"]: la for la in state["layers"]}
    assert layers["cells"]["source"] == [f"precomputed://{URL}/cells/mesh",
                                         f"precomputed://{URL}/cells/properties"]
    assert layers["synapses"]["source"] == f"precomputed://{URL}/synapses/annotations"
    assert layers["synapses"]["linkedSegmentationLayer"] == {"cell": "cells"}
    assert json.loads((tmp_path / "state.json").read_text()) == state
    assert pub.sources == {"cells": [f"precomputed://{URL}/cells/mesh",
                                     f"precomputed://{URL}/cells/properties"],
                           "synapses": [f"precomputed://{URL}/synapses/annotations"]}
    assert pub.url().startswith("https://neuroglancer-demo.appspot.com/#!")
    assert "data.example.org" in pub.url(site="https://spelunker.cave-explorer.org")
    assert pub.state_url() == f"https://neuroglancer-demo.appspot.com/#!{URL}/state.json"
    assert json.loads(pub.write_state(tmp_path / "copy.json").read_text()) == state


def test_published_sources_read_back_over_http(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    with StaticServer(tmp_path) as server:
        viewer.publish(tmp_path, url=server.url)
        # neuroglancer's reader, through tensorstore's http driver (shards by Range)
        reader = AnnotationReader(f"{server.url}/synapses/annotations")
        got = {int(a.id): a for a in reader.get_within_spatial_bounds()}
        assert set(got) == set(pts.index.astype(np.uint64).tolist())
        aid = int(pts.index[7])
        np.testing.assert_allclose(got[aid].point, pts.loc[pts.index[7], ["x", "y", "z"]],
                                   rtol=1e-6)
        assert got[aid].props[0] == pytest.approx(float(pts["score"].iloc[7]))
        related = sorted(int(a.id) for a in reader.relationships["cell"][2])
        assert related == sorted(pts.index[pts["cell"] == 2].astype(np.uint64).tolist())
        import urllib.request

        props = json.loads(urllib.request.urlopen(
            f"{server.url}/cells/properties/info").read())
        assert props["inline"]["ids"] == ["1", "2", "3"]
        manifest = json.loads(urllib.request.urlopen(f"{server.url}/cells/mesh/2:0").read())
        fragment = urllib.request.urlopen(
            f"{server.url}/cells/mesh/{manifest['fragments'][0]}").read()
        live = viewer.layers["cells"]
        gen = viewer.store.current(f"{live.prefix}/mesh")
        assert fragment == viewer.store.read(f"{gen.path}/fragment/2")


def test_republish_writes_only_what_changed(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    first = viewer.publish(tmp_path, url=URL)
    assert first.files_written == first.files
    before = {k: (tmp_path / k).stat().st_mtime_ns for k in published_keys(tmp_path)}

    again = viewer.publish(tmp_path, url=URL)
    assert again.files_written == 0 and again.bytes_written == 0

    # a label edit in the same cell as the publish call: only the properties info changes
    cells.loc[1, "name"] = "big ball"
    third = viewer.publish(tmp_path, url=URL)
    assert third.files_written == 1  # the state is unchanged: its sources are stable
    after = {k: (tmp_path / k).stat().st_mtime_ns for k in published_keys(tmp_path)}
    changed = {k for k in before if after.get(k) != before[k]} - {RECORD_KEY}
    assert changed == {"cells/properties/info"}, changed
    props = json.loads((tmp_path / "cells/properties/info").read_text())
    assert "big ball" in props["inline"]["properties"][0]["values"]


def test_one_row_edit_rewrites_only_that_source(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    viewer.publish(tmp_path, url=URL)
    before = published_keys(tmp_path)
    pts.loc[pts.index[0], "score"] = 42.0
    pub = viewer.publish(tmp_path, url=URL, retain=3600)
    after = published_keys(tmp_path)
    new = after - before
    assert new and all(k.startswith("synapses/annotations/") for k in new)
    assert before <= after  # the previous version stays for readers still on it
    total = sum((tmp_path / k).stat().st_size for k in after if k.startswith("synapses/"))
    assert pub.bytes_written < total
    with StaticServer(tmp_path) as server:
        pub = viewer.publish(tmp_path, url=server.url)
        reader = AnnotationReader(f"{server.url}/synapses/annotations")
        got = {int(a.id): a for a in reader.get_within_spatial_bounds()}
        assert got[int(pts.index[0])].props[0] == 42.0


def test_retired_versions_are_deleted_after_retain(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    viewer.publish(tmp_path, url=URL)
    first = published_keys(tmp_path)
    pts.loc[pts.index[:5], "score"] = -1.0
    viewer.publish(tmp_path, url=URL, retain=3600)
    assert first < published_keys(tmp_path)
    pub = viewer.publish(tmp_path, url=URL, retain=0)  # nothing new; old versions expire
    assert pub.files_written == 0 and pub.files_deleted > 0
    record = json.loads((tmp_path / RECORD_KEY).read_text())
    current = {k for rec in record["sources"].values() for k in rec["current"]}
    assert published_keys(tmp_path) == current | {"state.json", RECORD_KEY}
    assert not any(rec["retired"] for rec in record["sources"].values())
    # directories of retired versions are gone too
    dirs = {p.name for p in (tmp_path / "synapses/annotations").iterdir()}
    assert len(dirs) == 4  # info + by_id + by_rel_cell + one spatial level


def decoded(url) -> dict:
    """{id: (point, properties)} of a source, read by Neuroglancer's reader."""
    return {int(a.id): (a.point.tolist(), [float(x) for x in a.props])
            for a in AnnotationReader(url).get_within_spatial_bounds()}


class FailingDirectory(DirectoryDestination):
    """A real directory whose writes fail after ``allowed`` files (a full disk, a lost
    connection half-way)."""

    def __init__(self, path, allowed):
        super().__init__(path)
        self.allowed = allowed

    def write(self, files, progress):
        if files and files[0].key == RECORD_KEY:
            return super().write(files, progress)
        ok = files[: max(self.allowed, 0)]
        self.allowed -= len(ok)
        super().write(ok, progress)
        if len(ok) < len(files):
            raise OSError(28, "No space left on device (injected)")


@pytest.mark.parametrize("allowed", [0, 1, 3])
def test_failure_half_way_leaves_previous_publication_readable(viewer, tmp_path, allowed):
    cells, pts = bind_all(viewer)
    with StaticServer(tmp_path) as server:
        viewer.publish(tmp_path, url=server.url)
        old_files = {k: (tmp_path / k).read_bytes() for k in published_keys(tmp_path)
                     if k != RECORD_KEY}
        old_annotations = decoded(f"{server.url}/synapses/annotations")

        pts["score"] = np.float32(7.0)
        cells.loc[0, "name"] = "renamed"
        with pytest.raises(OSError, match="injected"):
            viewer.publish(FailingDirectory(tmp_path, allowed), url=server.url)
        # every file the old state reads is unchanged, or a complete new version
        now = decoded(f"{server.url}/synapses/annotations")
        assert now == old_annotations or all(p[1][0] == 7.0 for p in now.values())
        for k, v in old_files.items():
            if not (k.endswith("/info") or k.endswith(":0") or k == "state.json"):
                assert (tmp_path / k).read_bytes() == v, k  # data is never overwritten

        # the next publish completes and serves the edit
        viewer.publish(tmp_path, url=server.url, retain=0)
        now = {int(a.id): float(a.props[0]) for a in AnnotationReader(
            f"{server.url}/synapses/annotations").get_within_spatial_bounds()}
        assert set(now.values()) == {7.0}
        record = json.loads((tmp_path / RECORD_KEY).read_text())
        assert record["pending"] == {}
        known = {k for rec in record["sources"].values() for k in rec["current"]}
        assert published_keys(tmp_path) == known | {"state.json", RECORD_KEY}


def test_layers_subset_and_remote_layers(viewer, tmp_path):
    bind_all(viewer)
    with viewer.txn() as s:
        s.layers["em"] = neuroglancer.ImageLayer(source="precomputed://https://example.org/em")
    pub = viewer.publish(tmp_path, url=URL, layers=["cells"])
    names = [la["name"] for la in pub.state["layers"]]
    assert names == ["cells", "em"]
    assert pub.skipped == ["synapses"]
    em = next(la for la in pub.state["layers"] if la["name"] == "em")
    assert source_urls(em) == ["precomputed://https://example.org/em"]
    assert not (tmp_path / "synapses").exists()
    with pytest.raises(PublishError, match="not bound layers"):
        viewer.publish(tmp_path, url=URL, layers=["nope"])


def test_properties_on_a_remote_segmentation_keep_its_source(viewer, tmp_path):
    import pandas as pd

    remote = "graphene://https://cave.example.org/segmentation/table/demo"
    props = pd.DataFrame({"pt_root_id": np.array([2**63 + 5, 17], np.uint64),
                          "cell_type": ["L2/3", "basket"]})
    viewer.add_segment_properties("seg", props, source=remote, label_col="cell_type")
    pub = viewer.publish(tmp_path, url=URL)
    [seg] = pub.state["layers"]
    assert source_urls(seg) == [remote, f"precomputed://{URL}/seg/properties"]
    info = json.loads((tmp_path / "seg/properties/info").read_text())
    assert info["inline"]["ids"] == [str(2**63 + 5), "17"]


def test_publish_a_bare_store(tmp_path):
    store = nglive.Store()
    files = nglive.encode_annotations(
        __import__("pandas").DataFrame({"x": [1.0], "y": [2.0], "z": [3.0]}), "xyz", "point")
    store.write_generation("marks/annotations", files)
    pub = publish_store(store, tmp_path, url=URL)
    assert pub.state["layers"] == [{"type": "annotation", "name": "marks",
                                    "source": [f"precomputed://{URL}/marks/annotations"]}]
    with pytest.raises(PublishError, match="layers= selects"):
        publish_store(store, tmp_path, url=URL, layers=["marks"])


def test_layer_with_a_table_error_is_not_published(viewer, tmp_path):
    cells, pts = bind_all(viewer)
    pts.loc[pts.index[3], "x"] = np.nan
    with pytest.raises(PublishError, match="'synapses'.*cannot be regenerated"):
        viewer.publish(tmp_path, url=URL)
    assert not any(tmp_path.iterdir())  # nothing written
    pub = viewer.publish(tmp_path, url=URL, layers=["cells"])
    assert pub.skipped == ["synapses"]


@pytest.mark.parametrize("dest, url, message", [
    ("ftp://host/x", URL, "unknown scheme 'ftp'"),
    ("{tmp}/d", None, "needs url="),
    ("{tmp}/d", "example.org/x", "not an HTTP"),
    ("{tmp}/d", "https://example.org/x?a=1", "not an HTTP"),
    ("{tmp}/file.txt/sub", URL, "is a file"),
    ("s3:///nobucket", URL, "names no bucket"),
])
def test_bad_destinations_fail_before_writing(viewer, tmp_path, dest, url, message):
    bind_all(viewer)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(PublishError, match=message):
        viewer.publish(dest.format(tmp=tmp_path), url=url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.parametrize("keywords, message", [
    ({"site": "neuroglancer"}, "not the HTTP"),
    ({"retain": -1}, "retain"),
    ({"backend": "ftp"}, "backend"),
    ({"layers": ["cells", 3]}, "not bound layers"),
])
def test_bad_options_fail_before_writing(viewer, tmp_path, keywords, message):
    bind_all(viewer)
    dest = "s3://b/p" if "backend" in keywords else tmp_path
    with pytest.raises(PublishError, match=message):
        viewer.publish(dest, url=URL, **keywords)
    assert not any(tmp_path.iterdir())


def test_compress_to_a_directory_is_refused(viewer, tmp_path):
    bind_all(viewer)
    with pytest.raises(PublishError, match="Content-Encoding"):
        viewer.publish(tmp_path, url=URL, compress=True)
    assert not any(tmp_path.iterdir())


def test_foreign_source_is_not_overwritten(viewer, tmp_path):
    bind_all(viewer)
    (tmp_path / "cells" / "mesh").mkdir(parents=True)
    (tmp_path / "cells" / "mesh" / "info").write_text('{"@type": "theirs"}')
    with pytest.raises(PublishError, match="did not publish"):
        viewer.publish(tmp_path, url=URL)
    assert (tmp_path / "cells/mesh/info").read_text() == '{"@type": "theirs"}'
    viewer.publish(tmp_path, url=URL, overwrite=True)
    assert "neuroglancer_legacy_mesh" in (tmp_path / "cells/mesh/info").read_text()


def test_windows_directories_refuse_colon_names(tmp_path):
    dest = DirectoryDestination(tmp_path, windows=True)
    dest.check_names(["cells/properties/info", "pts/annotations/by_id.ab/0.shard"])
    with pytest.raises(PublishError, match="Windows"):
        dest.check_names(["cells/mesh/1:0"])


def test_state_never_points_at_the_kernel(viewer, tmp_path):
    bind_all(viewer)
    with viewer.txn() as s:  # layers the user pointed at the kernel by hand
        s.layers["copy"] = neuroglancer.SegmentationLayer(
            source=viewer.layers["cells"].source_url("mesh").replace("/0", "/x"))
    pub = viewer.publish(tmp_path, url=URL)  # an unknown nglive source: left out
    assert pub.skipped == ["copy"] and "copy" not in json.dumps(pub.state["layers"])
    with viewer.txn() as s:
        s.layers["other"] = neuroglancer.SegmentationLayer(
            source=f"precomputed://{viewer.server.server_url}/elsewhere")
    before = published_keys(tmp_path)
    with pytest.raises(PublishError, match="kernel's server.*'other'"):
        viewer.publish(tmp_path, url=URL)
    assert published_keys(tmp_path) == before


def test_alpha_meshes_and_local_annotations_publish(viewer, tmp_path):
    import pandas as pd

    rng = np.random.default_rng(5)
    pts = pd.DataFrame(rng.normal(0, 100, (400, 3)), columns=["x", "y", "z"])
    pts["region"] = np.where(pts["x"] > 0, "a", "b")
    alpha = viewer.add_alpha_mesh("regions", pts, "region", alpha=1000.0)
    clicks = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0], "z": [5.0, 6.0]})
    viewer.add_local_annotations("clicks", clicks)
    pub = viewer.publish(tmp_path, url=URL)
    layers = {la["name"]: la for la in pub.state["layers"]}
    assert source_urls(layers["regions"]) == [f"precomputed://{URL}/regions/mesh",
                                              f"precomputed://{URL}/regions/properties"]
    manifests = [k for k in published_keys(tmp_path) if k.endswith(":0")]
    assert len(manifests) == len(alpha.groups) == 2
    # local annotations travel inside the state as they are
    assert [a["point"] for a in layers["clicks"]["annotations"]] == [[1, 3, 5], [2, 4, 6]]


@pytest.fixture
def small_shards(monkeypatch):
    """Indexes of a few shards even for a small table (big tables get them by size)."""
    from nglive.formats.annotations import sharding

    monkeypatch.setattr(sharding, "TARGET_SHARD_BYTES", 8 << 10)


def test_unchanged_shards_of_a_changed_index_are_copied_not_uploaded(viewer, tmp_path,
                                                                      small_shards,
                                                                      monkeypatch):
    import nglive.publish.publisher as publisher

    monkeypatch.setattr(publisher, "COPY_MIN_BYTES", 1)
    cells, pts = bind_all(viewer)
    first = viewer.publish(tmp_path, url=URL)
    shards = [k for k in published_keys(tmp_path) if k.startswith("synapses/annotations/by_id.")]
    assert len(shards) >= 4
    pts.loc[pts.index[0], "score"] = 99.0
    pub = viewer.publish(tmp_path, url=URL)
    assert pub.files_copied > 0 and pub.bytes_copied > 0
    assert pub.bytes_written + pub.bytes_copied < first.bytes_total
    # the copies are whole: Neuroglancer's reader sees every annotation, the edit included
    with StaticServer(tmp_path) as server:
        viewer.publish(tmp_path, url=server.url)
        got = decoded(f"{server.url}/synapses/annotations")
    assert len(got) == len(pts) and got[int(pts.index[0])][1] == [99.0]


def test_multires_meshes_publish_and_read_back(viewer, tmp_path):
    import sys

    import trimesh

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "formats"))
    from multires_spec_decoder import decode_fragments, decode_manifest

    ball = trimesh.creation.icosphere(subdivisions=4, radius=500.0)
    viewer.add_meshes("balls", {7: ball}, format="multires")
    viewer.publish(tmp_path, url=URL)
    info = json.loads((tmp_path / "balls/mesh/info").read_text())
    assert info["@type"] == "neuroglancer_multilod_draco"
    manifest = decode_manifest((tmp_path / "balls/mesh/7.index").read_bytes())
    frags = list(decode_fragments(manifest, (tmp_path / "balls/mesh/7").read_bytes(), 16))
    fine = trimesh.util.concatenate([trimesh.Trimesh(m, f) for lod, _, _, m, f in frags
                                     if lod == 0])
    assert fine.area == pytest.approx(ball.area, rel=1e-4)


def test_skeletons_publish_and_read_back(viewer, tmp_path):
    import sys

    import pandas as pd

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "formats"))
    from skeleton_spec_decoder import decode

    nodes = pd.DataFrame({"skeleton_id": np.uint64(2**63 + 5), "node_id": [1, 2, 3],
                          "parent_id": [-1, 1, 2], "x": [0.0, 10.0, 20.0], "y": 5.0,
                          "z": 1.0, "radius": [3.0, 2.0, 1.0]})
    table = pd.DataFrame({"skeleton_id": [np.uint64(2**63 + 5)], "name": ["axon"]})
    viewer.add_skeletons("tree", nodes, table, label_col="name")
    pub = viewer.publish(tmp_path, url=URL)
    layers = {la["name"]: la for la in pub.state["layers"]}
    urls = source_urls(layers["tree"])
    assert f"precomputed://{URL}/tree/skeleton" in urls and len(urls) == 2
    assert not any("127.0.0.1" in u or "localhost" in u for u in urls)
    info = json.loads((tmp_path / "tree/skeleton/info").read_text())
    assert info["@type"] == "neuroglancer_skeletons"
    skel = decode((tmp_path / f"tree/skeleton/{2**63 + 5}").read_bytes(), info)
    assert skel["positions"][:, 0].tolist() == [0.0, 10.0, 20.0]
    assert sorted(map(sorted, skel["edges"].tolist())) == [[0, 1], [1, 2]]
    # a one-row edit: the skeleton is re-published, the unchanged properties are not
    nodes.loc[2, "x"] = 30.0
    viewer.layers["tree"].update()
    again = viewer.publish(tmp_path, url=URL)
    skel = decode((tmp_path / f"tree/skeleton/{2**63 + 5}").read_bytes(), info)
    assert skel["positions"][:, 0].tolist() == [0.0, 10.0, 30.0]
    assert 1 <= again.files_written <= 2  # the skeleton file (and its info if it changed)
