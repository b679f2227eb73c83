"""Encode DataFrames as Neuroglancer precomputed annotation sources, and write them out."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd

from .columns import AnnotationTable, read_table
from .coord_space import as_coord_space
from .records import encode_by_id, encode_groups, encode_records
from .sharding import choose_sharding, pack_sharded, split_values, uint64_keys
from .spatial import bounds, build_levels, compressed_morton, unravel

if sys.byteorder != "little":  # records are assembled as native 32-bit words
    raise ImportError("nglive's annotation encoder needs a little-endian machine")


def _json_number(v: float):
    return int(v) if float(v).is_integer() else float(v)


def _relationship_groups(table: AnnotationTable, r) -> tuple[np.ndarray, np.ndarray]:
    """(segment id, annotation row) pairs of a relationship, sorted by segment, deduplicated."""
    counts = np.diff(r.offsets)
    rows = np.repeat(np.arange(len(table)), counts)
    order = np.lexsort((rows, r.values))
    seg, rows = r.values[order], rows[order]
    if len(seg):
        fresh = np.concatenate([[True], (seg[1:] != seg[:-1]) | (rows[1:] != rows[:-1])])
        seg, rows = seg[fresh], rows[fresh]
    return seg, rows


def encode_annotations(
    df: pd.DataFrame | None,
    coord_space,
    annotation_type: str,
    properties=(),
    relationships=(),
    write_sharded: bool = True,
    *,
    polyline_points: pd.DataFrame | None = None,
    write_by_id: bool = True,
    write_by_relationship: bool = True,
    write_by_spatial_chunk: bool = True,
    num_spatial_levels: int = 7,
    target_chunk_limit: int = 10000,
    shuffle_before_assigning_spatial_levels: bool = True,
    description: str = "",
    gzip: bool = False,
) -> dict[str, bytes]:
    """Encode a DataFrame as the files of a precomputed annotation source.

    Pure: nothing is written anywhere. Keys are paths relative to the source root
    (``"info"``, ``"by_id/..."``, ``"by_rel_<name>/..."``, ``"by_spatial_level_<i>/..."``).

    Parameters
    ----------
    df
        One row per annotation; the index is the annotation id (unique, non-negative
        integers below 2**64). Geometry columns follow ``coord_space`` names: ``x, y, z``
        for points, ``xa, ya, za, xb, yb, zb`` for lines and boxes, ``x, y, z, rx, ry, rz``
        for ellipsoids. May be None for polylines without properties or relationships.
    coord_space
        ``"xyz"``, a list of names, a dict, or a ``neuroglancer.CoordinateSpace``.
    annotation_type
        ``"point"``, ``"line"``, ``"axis_aligned_bounding_box"``, ``"ellipsoid"`` or
        ``"polyline"``.
    properties
        Column names (or property spec dicts / ``AnnotationPropertySpec``). Numeric
        columns are typed from their dtype, categoricals become enum properties, and
        ``<name>_r/_g/_b[/_a]`` columns or ``"#rrggbb[aa]"`` strings become rgb/rgba.
    relationships
        Columns of related segment ids: uint64-compatible scalars or lists of them.
    write_sharded
        Sharded indexes (a few shard files) instead of one file per key.
    polyline_points
        For polylines: one row per vertex with an ``annotation_id`` column and the
        coordinate columns, in vertex order.
    write_by_id, write_by_relationship, write_by_spatial_chunk
        Which indexes to produce.
    num_spatial_levels
        Most spatial index levels; the last one takes every annotation still left.
    target_chunk_limit
        Annotations per spatial cell to aim for (0: no subsampling, one level).
    shuffle_before_assigning_spatial_levels
        Random subsampling (the spec's); if False, earlier rows go to coarser levels.
    description
        Free text stored in the ``info`` file.
    gzip
        Gzip the values of sharded indexes that average 512 bytes or more (relationship
        and spatial indexes; small by-id records always stay raw). An nglive option,
        off by default: on tables of random coordinates it saves about 20 % of those
        indexes' bytes and costs about 7 s per million points.

    Returns
    -------
    dict[str, bytes]
        Every file of the source.

    Raises
    ------
    nglive.formats.validation.TableError
        For bad input, naming the column, row and value.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 5.0], "y": [2.0, 6.0], "z": [3.0, 7.0],
    ...                    "size": [0.5, 2.0]}, index=[10, 11])
    >>> files = encode_annotations(df, "xyz", "point", properties=["size"],
    ...                            write_sharded=False)
    >>> sorted(files)
    ['by_id/10', 'by_id/11', 'by_spatial_level_0/0_0_0', 'info']
    """
    space = as_coord_space(coord_space)
    table = read_table(df, space, annotation_type, properties, relationships, polyline_points)
    return encode_table(
        table, write_sharded=write_sharded, write_by_id=write_by_id,
        write_by_relationship=write_by_relationship,
        write_by_spatial_chunk=write_by_spatial_chunk, num_spatial_levels=num_spatial_levels,
        target_chunk_limit=target_chunk_limit,
        shuffle=shuffle_before_assigning_spatial_levels, description=description, gzip=gzip)


def encode_table(table: AnnotationTable, *, write_sharded=True, write_by_id=True,
                 write_by_relationship=True, write_by_spatial_chunk=True,
                 num_spatial_levels=7, target_chunk_limit=10000, shuffle=True,
                 description="", gzip=False) -> dict[str, bytes]:
    """Encode an already validated :class:`AnnotationTable` (see :func:`encode_annotations`)."""
    records = encode_records(table)
    lower, upper = bounds(table)
    # each index: (directory, keys as uint64 or None, key strings, words, bounds)
    indexes: list[tuple[str, np.ndarray, list[str] | None, np.ndarray, np.ndarray]] = []
    info: dict = {
        "@type": "neuroglancer_annotations_v1",
        "dimensions": table.space.to_json(),
        "lower_bound": [_json_number(v) for v in lower],
        "upper_bound": [_json_number(v) for v in upper],
        "annotation_type": table.annotation_type.upper(),
        "properties": [p.spec for p in table.properties],
        "relationships": [{"id": r.name, "key": r.key} for r in table.relationships],
    }
    if description:
        info["description"] = description
    if write_by_id:
        words, b = encode_by_id(table, records)
        indexes.append(("by_id", table.ids, None, words, b))
        info["by_id"] = {"key": "by_id"}
    if write_by_relationship:
        for r in table.relationships:
            seg, rows = _relationship_groups(table, r)
            keys, words, b = encode_groups(seg, rows, records, table.ids)
            indexes.append((r.key, keys, None, words, b))
    info["spatial"] = []
    if write_by_spatial_chunk:
        levels = build_levels(table, lower, upper, max_levels=num_spatial_levels,
                              limit=target_chunk_limit, shuffle=shuffle)
        for i, level in enumerate(levels):
            key = f"by_spatial_level_{i}"
            cells, words, b = encode_groups(level.cells, level.members, records, table.ids)
            coords = unravel(cells, level.grid_shape)
            if write_sharded:
                indexes.append((key, compressed_morton(coords, level.grid_shape), None, words, b))
            else:
                names = ["_".join(map(str, c)) for c in coords.tolist()]
                indexes.append((key, cells, names, words, b))
            info["spatial"].append({
                "key": key,
                "grid_shape": [int(g) for g in level.grid_shape],
                "chunk_size": [_json_number(c) for c in level.chunk_size],
                "limit": int(level.limit),
            })
    files: dict[str, bytes] = {}
    sharded = []
    for directory, keys, names, words, b in indexes:
        values = split_values(words, b)
        if write_sharded:
            sharding = choose_sharding(len(values), int(b[-1]) * 4, gzip=gzip)
            sharded.append((directory, sharding, uint64_keys(keys), values))
            _find_entry(info, directory)["sharding"] = sharding
        else:
            names = names if names is not None else [str(k) for k in keys.tolist()]
            files.update(zip([f"{directory}/{n}" for n in names], values, strict=True))
    if sharded:
        files.update(pack_sharded(sharded))
    files["info"] = json.dumps(info, indent=1).encode()
    return files


def _find_entry(info: dict, directory: str) -> dict:
    if info.get("by_id", {}).get("key") == directory:
        return info["by_id"]
    for entry in info["relationships"] + info["spatial"]:
        if entry["key"] == directory:
            return entry
    raise KeyError(directory)  # pragma: no cover - every index has an info entry


def _write_files(files: dict[str, bytes], output_dir) -> str:
    """Write ``files`` under a local directory, a tensorstore URL/spec or an open KvStore."""
    import tensorstore as ts

    if isinstance(output_dir, os.PathLike) or (
            isinstance(output_dir, str) and "://" not in output_dir):
        root = os.fspath(output_dir)
        for d in sorted({os.path.dirname(k) for k in files}):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        for k, v in files.items():
            with open(os.path.join(root, k), "wb") as f:
                f.write(v)
        return root
    kv = output_dir if isinstance(output_dir, ts.KvStore) else ts.KvStore.open(output_dir).result()
    if kv.path and not kv.path.endswith("/"):
        kv = ts.KvStore.open({**kv.spec().to_json(), "path": kv.path + "/"}).result()
    futures = [kv.write(k, v) for k, v in files.items() if k != "info"]
    for f in futures:
        f.result()
    kv.write("info", files["info"]).result()  # last, so readers never see a partial source
    return kv.url if isinstance(output_dir, ts.KvStore) else str(output_dir)


def write_annotations(
    df: pd.DataFrame | None,
    coord_space,
    annotation_type: str,
    properties=(),
    relationships=(),
    output_dir=None,
    store=None,
    write_sharded: bool = True,
    *,
    polyline_points: pd.DataFrame | None = None,
    write_by_id: bool = True,
    write_by_relationship: bool = True,
    write_by_spatial_chunk: bool = True,
    num_spatial_levels: int = 7,
    target_chunk_limit: int = 10000,
    shuffle_before_assigning_spatial_levels: bool = True,
    description: str = "",
    gzip: bool = False,
) -> str:
    """Write a DataFrame as a precomputed annotation source.

    Takes the keywords of ngsidekick's ``write_precomputed_annotations`` and writes the
    same format (see :func:`encode_annotations` for the table and keyword rules).
    Everything is validated and encoded in memory first; nothing is written if the
    table is rejected.

    Parameters
    ----------
    output_dir
        A local directory, a tensorstore kvstore URL (``file://``, ``gs://``, ...), a
        kvstore spec dict or an open ``tensorstore.KvStore`` (use the latter for
        ``memory://``, whose contents live in the store's context). Defaults to
        ``"annotations"`` when no ``store`` is given.
    store
        An object with ``write_files(files: dict[str, bytes]) -> str`` (an nglive
        Store); when given, the files go there and its return value is returned.

    Returns
    -------
    str
        Where the source was written.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> df = pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0], "seg": [7]})
    >>> out = write_annotations(df, "xyz", "point", relationships=["seg"],
    ...                         output_dir=tempfile.mkdtemp())
    >>> import os; sorted(os.listdir(out))
    ['by_id', 'by_rel_seg', 'by_spatial_level_0', 'info']
    """
    files = encode_annotations(
        df, coord_space, annotation_type, properties, relationships, write_sharded,
        polyline_points=polyline_points, write_by_id=write_by_id,
        write_by_relationship=write_by_relationship,
        write_by_spatial_chunk=write_by_spatial_chunk, num_spatial_levels=num_spatial_levels,
        target_chunk_limit=target_chunk_limit,
        shuffle_before_assigning_spatial_levels=shuffle_before_assigning_spatial_levels,
        description=description, gzip=gzip)
    if store is not None:
        if output_dir is not None:
            raise ValueError("give output_dir or store, not both")
        return store.write_files(files)
    return _write_files(files, "annotations" if output_dir is None else output_dir)
