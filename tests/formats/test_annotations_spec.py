"""The spec's rules, checked on the bytes, where the reference tools get them wrong.

Each test names the reference-tool bug it guards against (ngsidekick 0.0.20,
neuroglancer 2.41's Python AnnotationWriter), see notes/reference-tools.md.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct

import numpy as np
import pandas as pd
import pytest
from annotation_spec_decoder import SpecSource, level_of_each, spec_property_offsets
from neuroglancer.read_precomputed_annotations import AnnotationReader

from nglive.formats.annotations import encode_annotations, write_annotations
from nglive.formats.annotations.spatial import spatial_priority


def grid_cell(info, level, point):
    """The spec's cell of a point: floor((p - lower_bound) / chunk_size), inside the grid."""
    entry = info["spatial"][level]
    lower = np.asarray(info["lower_bound"], float)
    c = np.floor((np.asarray(point, float) - lower) / np.asarray(entry["chunk_size"]))
    return tuple(int(v) for v in np.clip(c, 0, np.asarray(entry["grid_shape"]) - 1))


def grid_cells(info, level, points) -> set:
    """The spec's cells of many points at once."""
    entry = info["spatial"][level]
    lower = np.asarray(info["lower_bound"], float)
    c = np.floor((np.asarray(points, float) - lower) / np.asarray(entry["chunk_size"]))
    c = np.clip(c, 0, np.asarray(entry["grid_shape"]) - 1).astype(int)
    return set(map(tuple, c.tolist()))


def cells_by_id(levels) -> dict:
    out: dict = {}
    for cells in levels:
        for cell, recs in cells.items():
            for aid, _, _ in recs:
                out.setdefault(aid, set()).add(cell)
    return out


def cell_box(info, level, cell):
    entry = info["spatial"][level]
    lo = np.asarray(info["lower_bound"], float) + np.asarray(cell) * entry["chunk_size"]
    return lo, lo + entry["chunk_size"]


def segment_touches_box(a, b, lo, hi):
    """Closed segment / closed box intersection (slab method)."""
    t0, t1 = 0.0, 1.0
    for d in range(len(a)):
        da = b[d] - a[d]
        if da == 0:
            if not lo[d] <= a[d] <= hi[d]:
                return False
            continue
        u, v = sorted(((lo[d] - a[d]) / da, (hi[d] - a[d]) / da))
        t0, t1 = max(t0, u), min(t1, v)
        if t0 > t1:
            return False
    return True


# ------------------------------------------------------------------------ record layout

def test_float32_then_uint32_is_a_20_byte_record():
    """neuroglancer 2.41's writer pads this record to 24 bytes (alignment 3); the spec
    packs both 4-byte properties right after the 12 bytes of geometry."""
    df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0],
                       "f": np.array([1.5], np.float32), "u": np.array([7], np.uint32)})
    files = encode_annotations(df, "xyz", "point", properties=["f", "u"], write_sharded=False)
    rec = files["by_id/0"]
    assert len(rec) == 20
    assert struct.unpack("<3ffI", rec) == (1.0, 2.0, 3.0, 1.5, 7)


def test_properties_grouped_by_size_then_padded():
    """uint8, float32, int16, rgb, uint16 (info order) are stored as float32 at 12, int16
    at 16, uint16 at 18, uint8 at 20, rgb at 21-23: 24 bytes."""
    df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0],
                       "a": np.array([200], np.uint8), "b": np.array([-2.5], np.float32),
                       "c": np.array([-300], np.int16), "d_r": [1], "d_g": [2], "d_b": [3],
                       "e": np.array([60000], np.uint16)})
    files = encode_annotations(df, "xyz", "point", properties=["a", "b", "c", "d", "e"],
                               write_sharded=False)
    info = json.loads(files["info"])
    assert [p["type"] for p in info["properties"]] == ["uint8", "float32", "int16", "rgb",
                                                       "uint16"]
    rec = files["by_id/0"]
    assert len(rec) == 24
    assert struct.unpack_from("<f", rec, 12) == (-2.5,)
    assert struct.unpack_from("<h", rec, 16) == (-300,)
    assert struct.unpack_from("<H", rec, 18) == (60000,)
    assert rec[20] == 200 and tuple(rec[21:24]) == (1, 2, 3)
    # and the test decoder's generic rule agrees with these hand-computed offsets
    assert spec_property_offsets(info["properties"], 12) == ([20, 12, 16, 21, 18], 24)


def test_by_id_relationships_follow_the_padded_record():
    df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "k": np.array([9], np.uint8),
                       "pre": np.array([2**64 - 2], np.uint64), "post": [[4, 5]]})
    files = encode_annotations(df, "xyz", "point", properties=["k"],
                               relationships=["pre", "post"], write_sharded=False)
    rec = files["by_id/0"]
    assert struct.unpack("<3fB3x", rec[:16]) == (1.0, 2.0, 3.0, 9)
    assert struct.unpack("<IQ", rec[16:28]) == (1, 2**64 - 2)
    assert struct.unpack("<IQQ", rec[28:]) == (2, 4, 5)
    multi = files["by_rel_post/5"]
    assert struct.unpack("<Q", multi[:8]) == (1,)
    assert multi[8:24] == rec[:16] and struct.unpack("<Q", multi[24:]) == (0,)


def test_int8_columns_are_written_as_int16():
    """The spec sizes int8 as 1 byte, Neuroglancer's TypeScript client as 2: int8 columns
    are stored as int16, where both agree, with the same values."""
    df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "s": np.array([-5], np.int8)})
    files = encode_annotations(df, "xyz", "point", properties=["s"], write_sharded=False)
    assert json.loads(files["info"])["properties"] == [{"id": "s", "type": "int16"}]
    assert struct.unpack("<3fh2x", files["by_id/0"]) == (1.0, 2.0, 3.0, -5)


def test_small_by_id_records_are_not_gzip_inflated(tmp_path):
    """ngsidekick gzips 28-byte by_id records into 49 bytes; small values are stored raw."""
    n = 20000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "z": rng.random(n),
                       "w": rng.random(n).astype(np.float32),
                       "seg": rng.integers(0, 200, n).astype(np.uint64)})
    files = encode_annotations(df, "xyz", "point", properties=["w"], relationships=["seg"],
                               gzip=True)
    info = json.loads(files["info"])
    assert info["by_id"]["sharding"]["data_encoding"] == "raw"
    assert info["relationships"][0]["sharding"]["data_encoding"] == "gzip"  # ~2 kB values
    by_id_bytes = sum(len(v) for k, v in files.items() if k.startswith("by_id/"))
    assert by_id_bytes < 1.4 * 28 * n  # 28-byte records plus a compressed index
    write_annotations(df, "xyz", "point", properties=["w"], relationships=["seg"],
                      output_dir=str(tmp_path), gzip=True)
    reader = AnnotationReader(f"file://{tmp_path}")
    assert reader.by_id[5].props[0] == np.float32(df.w[5])
    seg = int(df.seg[5])  # the relationship index is gzip-encoded
    got = sorted(int(a.id) for a in reader.relationships["seg"][seg])
    assert got == sorted(df.index[df.seg == seg].tolist())


def test_values_are_raw_unless_gzip_is_asked_for():
    n = 20000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "z": rng.random(n),
                       "seg": rng.integers(0, 200, n).astype(np.uint64)})
    info = json.loads(encode_annotations(df, "xyz", "point", relationships=["seg"])["info"])
    encodings = {e["key"]: e["sharding"]["data_encoding"]
                 for e in [info["by_id"], *info["relationships"], *info["spatial"]]}
    assert set(encodings.values()) == {"raw"}, encodings


def test_upper_bound_is_exclusive():
    """ngsidekick writes the largest coordinate as upper_bound; the spec's is exclusive."""
    df = pd.DataFrame({"x": [0.0, 10.0], "y": [0.0, 10.0], "z": [0.0, 10.0]})
    info = json.loads(encode_annotations(df, "xyz", "point")["info"])
    assert info["lower_bound"] == [0, 0, 0]
    assert all(u > 10 for u in info["upper_bound"])


# ------------------------------------------------------------------------ spatial index

@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
def test_points_subsampled_per_cell_as_the_spec_says(tmp_path, sharded):
    """Every point at exactly one level, in the cell its coordinates give (also when
    several axes are split: ngsidekick names unsharded cells wrongly then), and each
    level emits every remaining point with probability min(1, limit / maxCount), maxCount
    counted per cell from the coordinates (ngsidekick instead places grid-size x limit
    random points per level). The draw is nglive's documented per-id priority against a
    threshold; cells list their points by priority."""
    rng = np.random.default_rng(3)
    n, limit = 6000, 100
    # clustered, so cells differ a lot in how many points they hold
    xyz = np.concatenate([rng.normal(30, 5, (n // 2, 3)), rng.uniform(0, 100, (n // 2, 3))])
    df = pd.DataFrame(np.clip(xyz, 0, 100), columns=["x", "y", "z"])
    write_annotations(df, "xyz", "point", output_dir=str(tmp_path), write_sharded=sharded,
                      target_chunk_limit=limit)
    src = SpecSource(str(tmp_path))
    info = src.info
    levels = src.spatial()
    assert len(levels) > 2 and any(np.count_nonzero(np.asarray(e["grid_shape"]) > 1) > 1
                                   for e in info["spatial"])
    once = level_of_each(levels)
    assert sorted(once) == list(range(n)) and all(len(v) == 1 for v in once.values())
    priority = dict(enumerate(spatial_priority(np.arange(n, dtype=np.uint64)).tolist()))
    pts = df.to_numpy(np.float32)
    remaining = set(range(n))
    threshold = 0
    for lvl, cells in enumerate(levels):
        for cell, recs in cells.items():
            assert [grid_cell(info, lvl, geom) for _, geom, _ in recs] == [cell] * len(recs)
            listed = [priority[aid] for aid, _, _ in recs]
            assert listed == sorted(listed)
        by_cell: dict = {}
        for aid in remaining:
            by_cell.setdefault(grid_cell(info, lvl, pts[aid]), []).append(aid)
        max_count = max(len(v) for v in by_cell.values())
        last = lvl == len(levels) - 1
        emitted = {aid for recs in cells.values() for aid, _, _ in recs}
        if last:
            assert emitted == remaining
        else:
            # the spec's probability, drawn by moving a threshold over the priorities
            threshold += (2**64 - threshold) * limit // max_count
            assert emitted == {a for a in remaining if priority[a] < threshold}
            p = limit / max_count
            assert abs(len(emitted) - p * len(remaining)) < 4 * math.sqrt(
                p * (1 - p) * len(remaining)) + 1
        assert info["spatial"][lvl]["limit"] == max(len(r) for r in cells.values())
        remaining -= emitted
    assert not remaining


def test_unsharded_cell_files_are_named_by_their_cell():
    """File ``i_j_k`` holds the points of cell (i, j, k), with several axes split."""
    df = pd.DataFrame({"x": [1.0, 99.0, 1.0, 99.0], "y": [1.0, 1.0, 99.0, 60.0],
                       "z": [1.0, 1.0, 1.0, 99.0]})
    files = encode_annotations(df, "xyz", "point", write_sharded=False, target_chunk_limit=1,
                               shuffle_before_assigning_spatial_levels=False)
    info = json.loads(files["info"])
    lvl = next(i for i, e in enumerate(info["spatial"]) if min(e["grid_shape"]) > 1)
    names = [k.split("/")[1] for k in files if k.startswith(f"by_spatial_level_{lvl}/")]
    for name in names:
        value = files[f"by_spatial_level_{lvl}/{name}"]
        (count,) = struct.unpack_from("<Q", value)
        for i in range(count):
            p = struct.unpack_from("<3f", value, 8 + 12 * i)
            assert "_".join(map(str, grid_cell(info, lvl, p))) == name


def lines_table(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 100, (n, 3))
    b = np.clip(a + rng.normal(0, 25, (n, 3)), 0, 100)
    return pd.DataFrame(np.hstack([a, b]), columns=["xa", "ya", "za", "xb", "yb", "zb"])


@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "unsharded"])
def test_lines_are_in_every_cell_they_cross_and_no_other(tmp_path, sharded):
    """ngsidekick puts a line in the cells along its bounding-box diagonal; the spec puts
    it in every cell it intersects at its level."""
    df = lines_table(400, 5)
    write_annotations(df, "xyz", "line", output_dir=str(tmp_path), write_sharded=sharded,
                      target_chunk_limit=20)
    src = SpecSource(str(tmp_path))
    levels = src.spatial()
    once = level_of_each(levels)
    assert len(once) == len(df) and all(len(v) == 1 for v in once.values())
    diagonal_differs = 0
    where = cells_by_id(levels)
    for aid, (lvl,) in once.items():
        a, b = df.iloc[aid, :3].to_numpy(np.float32), df.iloc[aid, 3:].to_numpy(np.float32)
        got = where[aid]
        t = np.linspace(0, 1, 2001)[:, None]
        crossed = grid_cells(src.info, lvl, a.astype(float) + t * (b - a).astype(float))
        assert crossed <= got
        for cell in got:
            assert segment_touches_box(a, b, *cell_box(src.info, lvl, cell))
        lo = np.minimum(grid_cell(src.info, lvl, a), grid_cell(src.info, lvl, b))
        hi = np.maximum(grid_cell(src.info, lvl, a), grid_cell(src.info, lvl, b))
        box = set(itertools.product(*[range(x, y + 1) for x, y in zip(lo, hi, strict=True)]))
        diagonal_differs += got != box
    assert diagonal_differs > 50  # the data really exercises lines crossing few of their bbox


def test_flat_lines_on_a_grid_plane_are_kept():
    """ngsidekick drops lines lying exactly on a grid plane from the spatial index."""
    corners = [[0, 0, 0, 0, 0, 0], [99.5, 99.5, 99.5, 99.5, 99.5, 99.5]]
    flat = [[50, 10 + i, 20, 50, 80, 20] for i in range(40)]  # x = 50: the level-1 plane
    flat += [[10, 25, 30 + i, 90, 25, 30 + i] for i in range(40)]  # y = 25: a level-2 plane
    df = pd.DataFrame(np.array(corners + flat, float),
                      columns=["xa", "ya", "za", "xb", "yb", "zb"])
    files = encode_annotations(df, "xyz", "line", write_sharded=False, target_chunk_limit=2)
    info = json.loads(files["info"])
    assert info["upper_bound"] == [100, 100, 100]
    found: dict = {}
    for k, v in files.items():
        if k.startswith("by_spatial_level_"):
            (count,) = struct.unpack_from("<Q", v)
            for aid in struct.unpack_from(f"<{count}Q", v, 8 + 24 * count):
                found.setdefault(aid, set()).add(k.split("/")[0])
    assert sorted(found) == list(range(len(df)))
    assert all(len(v) == 1 for v in found.values())
    assert len(info["spatial"]) >= 3


def test_all_annotations_at_one_coordinate():
    """ngsidekick fails when every annotation shares one coordinate."""
    df = pd.DataFrame({"x": np.full(1000, 5.0), "y": 5.0, "z": 5.0})
    for sharded in (True, False):
        files = encode_annotations(df, "xyz", "point", write_sharded=sharded,
                                   target_chunk_limit=100, num_spatial_levels=4)
        info = json.loads(files["info"])
        assert info["lower_bound"] == [5, 5, 5] and info["upper_bound"] == [6, 6, 6]
        limits = [e["limit"] for e in info["spatial"]]
        # each level emits ~limit of them (the spec's probability limit / maxCount),
        # the last every one left
        assert len(limits) == 4 and sum(limits) == 1000
        assert all(60 < v < 140 for v in limits[:3]), limits
    files = encode_annotations(df, "xyz", "point", write_sharded=False, target_chunk_limit=100,
                               num_spatial_levels=4)
    ids = []
    for k, v in files.items():
        if k.startswith("by_spatial"):
            (count,) = struct.unpack_from("<Q", v)
            ids += struct.unpack_from(f"<{count}Q", v, 8 + 12 * count)
    assert sorted(ids) == list(range(1000))


def test_boxes_are_in_every_cell_of_their_extent(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 100, (300, 3))
    b = np.clip(a + rng.normal(0, 15, (300, 3)), 0, 100)
    df = pd.DataFrame(np.hstack([a, b]), columns=["xa", "ya", "za", "xb", "yb", "zb"])
    write_annotations(df, "xyz", "axis_aligned_bounding_box", output_dir=str(tmp_path),
                      target_chunk_limit=15)
    src = SpecSource(str(tmp_path))
    levels = src.spatial()
    once = level_of_each(levels)
    assert len(once) == 300 and all(len(v) == 1 for v in once.values())
    where = cells_by_id(levels)
    for aid, (lvl,) in once.items():
        p, q = df.iloc[aid, :3].to_numpy(np.float32), df.iloc[aid, 3:].to_numpy(np.float32)
        lo = grid_cell(src.info, lvl, np.minimum(p, q))
        hi = grid_cell(src.info, lvl, np.maximum(p, q))
        want = set(itertools.product(*[range(x, y + 1) for x, y in zip(lo, hi, strict=True)]))
        assert where[aid] == want


def test_ellipsoids_are_in_the_cells_they_reach(tmp_path):
    rng = np.random.default_rng(4)
    c = rng.uniform(10, 90, (200, 3))
    r = rng.uniform(0, 10, (200, 3))
    r[:20, 2] = 0  # flat ellipses
    df = pd.DataFrame(np.hstack([c, r]), columns=["x", "y", "z", "rx", "ry", "rz"])
    write_annotations(df, "xyz", "ellipsoid", output_dir=str(tmp_path), target_chunk_limit=10)
    src = SpecSource(str(tmp_path))
    levels = src.spatial()
    once = level_of_each(levels)
    assert len(once) == 200 and all(len(v) == 1 for v in once.values())
    u = rng.normal(size=(3000, 3))
    u = u / np.linalg.norm(u, axis=1, keepdims=True) * rng.uniform(0, 1, (3000, 1)) ** (1 / 3)
    where = cells_by_id(levels)
    for aid, (lvl,) in once.items():
        center = df.iloc[aid, :3].to_numpy(np.float32).astype(float)
        radii = df.iloc[aid, 3:].to_numpy(np.float32).astype(float)
        got = where[aid]
        inside = grid_cells(src.info, lvl, center + u * radii)
        assert inside <= got
        lo = grid_cell(src.info, lvl, center - radii)
        hi = grid_cell(src.info, lvl, center + radii)
        assert all(all(x <= y <= z for x, y, z in zip(lo, cell, hi, strict=True))
                   for cell in got)


def test_unshuffled_levels_take_rows_in_order():
    df = pd.DataFrame({"x": np.arange(100.0), "y": 0.0, "z": 0.0})
    files = encode_annotations(df, "xyz", "point", write_sharded=False, target_chunk_limit=10,
                               num_spatial_levels=1, shuffle_before_assigning_spatial_levels=False)
    v = files["by_spatial_level_0/0_0_0"]
    assert struct.unpack_from("<100Q", v, 8 + 1200) == tuple(range(100))
    files = encode_annotations(df, "xyz", "point", write_sharded=False, target_chunk_limit=10,
                               shuffle_before_assigning_spatial_levels=False)
    v = files["by_spatial_level_0/0_0_0"]
    assert struct.unpack_from("<10Q", v, 8 + 120) == tuple(range(10))


def test_local_directory_output_matches_encoded_files(tmp_path):
    df = lines_table(50, 1)
    files = encode_annotations(df, "xyz", "line")
    write_annotations(df, "xyz", "line", output_dir=str(tmp_path))
    on_disk = {os.path.relpath(os.path.join(d, f), tmp_path)
               for d, _, fs in os.walk(tmp_path) for f in fs}
    assert on_disk == set(files)
