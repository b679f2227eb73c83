"""Neuroglancer's precomputed skeleton format, encoded from node tables with vectorised numpy.

Written from ``src/datasource/precomputed/skeletons.md`` in google/neuroglancer. A node
table has one row per node: ``skeleton_id`` (or a dict ``{id: table}``), ``node_id``,
``parent_id`` (negative, e.g. -1, or missing for the root, as in SWC and navis),
``x, y, z`` and any per-vertex attribute columns (``radius``, ``type``, ...).

Every check runs on whole columns before any byte exists, and the files of all
skeletons are laid out in one buffer by array arithmetic: no loop runs per node, and
the only loop per skeleton is slicing that buffer into one file per id (unsharded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from .annotations.sharding import choose_sharding
from .sharded import _gather, pack_shards
from .validation import TableError, as_uint64_ids, require_columns

__all__ = ["DEFAULT_ATTRIBUTES", "SHARD_ABOVE", "encode_skeletons", "node_table",
           "skeleton_info"]

NODE_COLUMNS = ("node_id", "parent_id", "x", "y", "z")
#: Attributes written when present; asked for explicitly, a missing one is an error.
DEFAULT_ATTRIBUTES = ("radius", "type")
#: Above this many skeletons the source is sharded: a few shard files instead of one
#: file per skeleton (writing 10k small files costs more than packing them).
SHARD_ABOVE = 512
_INT_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")
# Neuroglancer's skeleton shader names each attribute by ``#define <id> ...``
_ATTRIBUTE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def node_table(nodes, *, id_col: str = "skeleton_id") -> pd.DataFrame:
    """One node table from a table with ``id_col`` or a dict ``{skeleton id: table}``."""
    if isinstance(nodes, pd.DataFrame):
        return nodes
    if isinstance(nodes, Mapping):
        if not nodes:
            return pd.DataFrame({id_col: pd.Series([], dtype=np.uint64),
                                 **{c: [] for c in NODE_COLUMNS}})
        parts = []
        for sid, table in nodes.items():
            if not isinstance(table, pd.DataFrame):
                raise TableError(f"node table of type {type(table).__name__} is not a DataFrame",
                                 column=id_col, value=sid)
            parts.append(table.assign(**{id_col: sid}))
        # ids of mixed Python ints can come out as object: as_uint64_ids converts exactly
        return pd.concat(parts)
    raise TypeError("nodes must be a DataFrame or a dict of DataFrames, not "
                    f"{type(nodes).__name__}")


def _node_ids(s: pd.Series, column: str, *, roots: bool) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids and a root mask (missing or negative values, when ``roots``)."""
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(s.cat.categories.dtype)
    arr = s.to_numpy(dtype=np.float64 if missing.any() else None)
    if arr.dtype.kind == "f":
        ok = missing | (np.isfinite(arr) & (arr == np.floor(arr)) & (np.abs(arr) < 2**53))
        bad = ~ok if roots else ~ok | missing
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise TableError("not an integer node id", column=column, row=s.index[pos],
                             value=arr[pos], accepted="integers")
        arr = np.where(missing, -1, arr).astype(np.int64)
    elif arr.dtype.kind == "u":
        big = arr > np.iinfo(np.int64).max
        if big.any():
            pos = int(np.flatnonzero(big)[0])
            raise TableError("node id too large", column=column, row=s.index[pos],
                             value=arr[pos], accepted="integers below 2**63")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind in "ib":
        arr = arr.astype(np.int64)
    else:
        raise TableError(f"node ids must be integers, not dtype {s.dtype}", column=column)
    root = arr < 0
    if root.any() and not roots:
        pos = int(np.flatnonzero(root)[0])
        raise TableError("negative node id", column=column, row=s.index[pos],
                         value=arr[pos], accepted="non-negative integers")
    return arr, root


def _attribute(s: pd.Series, name: str) -> tuple[np.ndarray, str]:
    """An attribute column as one of the spec's data types.

    Floats become float32, integers and booleans the narrowest integer type that holds
    them, categories (navis' node ``type``) and strings their codes in sorted order.
    """
    def fail(mask, why, accepted):
        pos = int(np.flatnonzero(mask)[0])
        raise TableError(why, column=name, row=s.index[pos], value=s.iloc[pos],
                         accepted=accepted)

    if isinstance(s.dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(
            s.cat.categories.dtype):
        s = s.astype(s.cat.categories.dtype)  # numbers stored as categories: the numbers
    if (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
            or pd.api.types.is_string_dtype(s.dtype)):
        if s.isna().any():
            fail(s.isna().to_numpy(), "missing value", "a value on every node")
        try:
            if isinstance(s.dtype, pd.CategoricalDtype):  # recode, no object copy
                codes = s.cat.reorder_categories(sorted(s.cat.categories)).cat.codes
                codes = codes.to_numpy()
            else:
                codes = pd.Categorical(s, categories=sorted(pd.unique(s))).codes
        except TypeError:
            fail(np.ones(len(s), bool), "values of mixed types", "numbers or strings")
        return codes.astype(np.uint8 if codes.max(initial=0) < 256 else np.uint16), (
            "uint8" if codes.max(initial=0) < 256 else "uint16")
    if pd.api.types.is_bool_dtype(s.dtype):
        if s.isna().any():
            fail(s.isna().to_numpy(), "missing value", "True/False")
        return s.to_numpy(dtype=np.uint8), "uint8"
    if pd.api.types.is_float_dtype(s.dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        big = np.isfinite(arr) & (np.abs(arr) > np.finfo(np.float32).max)
        if big.any():
            fail(big, "value overflows float32", "numbers within float32 range")
        return arr.astype(np.float32), "float32"
    if pd.api.types.is_integer_dtype(s.dtype):
        if s.isna().any():
            fail(s.isna().to_numpy(), "missing value", "an integer on every node")
        arr = s.to_numpy(dtype=s.dtype.numpy_dtype if hasattr(s.dtype, "numpy_dtype")
                         else None)
        lo, hi = (int(arr.min()), int(arr.max())) if len(arr) else (0, 0)
        for t in _INT_TYPES:
            info = np.iinfo(t)
            if info.min <= lo and hi <= info.max:
                return arr.astype(t), t
        fail((arr < np.iinfo(np.int32).min) | (arr > np.iinfo(np.uint32).max)
             | ((lo < 0) & (arr > np.iinfo(np.int32).max)),
             "value out of the range of 32-bit integers", "int32 or uint32 values")
    raise TableError(f"unsupported attribute dtype {s.dtype}", column=name,
                     accepted="numbers, booleans, categories or strings")


def skeleton_info(attributes: Mapping[str, str], *, transform=None,
                  segment_properties: str | None = None, sharding: dict | None = None) -> dict:
    """The ``info`` JSON: ``attributes`` is ``{id: data_type}`` (one component each)."""
    info = {
        "@type": "neuroglancer_skeletons",
        "transform": [float(v) for v in np.asarray(
            transform if transform is not None else np.eye(3, 4), np.float64).reshape(-1)],
        "vertex_attributes": [{"id": k, "data_type": t, "num_components": 1}
                              for k, t in attributes.items()],
    }
    if len(info["transform"]) != 12:
        raise ValueError(f"transform must be 3x4 (12 numbers), got {len(info['transform'])}")
    if segment_properties is not None:
        info["segment_properties"] = segment_properties
    if sharding is not None:
        info["sharding"] = sharding
    return info


def _fail_at(df, pos, why, *, column, value, skeleton):
    raise TableError(f"skeleton {skeleton}: {why}", column=column, row=df.index[pos],
                     value=value)


def _validated(df: pd.DataFrame, id_col: str, attrs, several_roots: bool) -> dict:
    """Check a node table; return its arrays grouped by skeleton (rows in table order)."""
    require_columns(df, [id_col, *NODE_COLUMNS, *attrs], purpose="skeletons")
    sid = as_uint64_ids(df[id_col], column=id_col)
    node, _ = _node_ids(df["node_id"], "node_id", roots=False)
    parent, is_root = _node_ids(df["parent_id"], "parent_id", roots=True)
    xyz = np.empty((len(df), 3), np.float64)
    for k, col in enumerate("xyz"):
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            raise TableError(f"coordinates must be numbers, not dtype {s.dtype}", column=col)
        xyz[:, k] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(xyz) | (np.abs(xyz) > np.finfo(np.float32).max)
    if bad.any():
        pos, k = map(int, np.argwhere(bad)[0])
        why = "coordinate is not finite" if not np.isfinite(xyz[pos, k]) else (
            "coordinate overflows float32")
        _fail_at(df, pos, why, column="xyz"[k], value=xyz[pos, k], skeleton=sid[pos])

    # Hash-based (pandas) grouping and lookups, O(n): skeletons numbered in order of
    # first appearance, (skeleton, node) packed into one int64 key
    group, ids = pd.factorize(sid)
    group, ids = group.astype(np.int64), np.asarray(ids, np.uint64)
    node_code, node_uniq = pd.factorize(node)
    width = max(len(node_uniq), 1)
    if len(ids) * width >= 2**62:
        raise TableError("too many distinct skeleton and node ids to index together",
                         column="node_id")
    keys = pd.Index(group * width + node_code)
    if not keys.is_unique:  # the hash table built here serves get_indexer below too
        pos = int(np.flatnonzero(keys.duplicated())[0])
        _fail_at(df, pos, "duplicate node id", column="node_id", value=node[pos],
                 skeleton=sid[pos])
    prank = pd.Index(node_uniq).get_indexer(parent)  # -1: not a node id anywhere
    parent_row = keys.get_indexer(np.where(prank >= 0, group * width + prank, -1))
    missing = (parent_row < 0) & ~is_root
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        _fail_at(df, pos, "parent is not a node of this skeleton", column="parent_id",
                 value=parent[pos], skeleton=sid[pos])

    roots = np.bincount(group[is_root], minlength=len(ids))
    several = roots[group] > 1
    if several.any() and not several_roots:
        # the second root of the first skeleton that has several
        first = int(group[np.flatnonzero(several)[0]])
        pos = int(np.flatnonzero(is_root & (group == first))[1])
        _fail_at(df, pos, "several roots (one root per skeleton; several_roots=True draws "
                 "a fragmented skeleton)", column="parent_id",
                 value=df["parent_id"].iloc[pos], skeleton=ids[first])
    # Each non-root node gives one edge, so a connected component of k nodes with r
    # roots has k - r edges: a tree when r == 1, and a cycle when r == 0 (r > 1 cannot
    # be connected). One C pass over the graph finds rootless components.
    n = len(df)
    child = np.flatnonzero(~is_root)
    graph = sparse.coo_matrix((np.ones(len(child), np.int8), (child, parent_row[child])),
                              shape=(n, n))
    n_comp, comp = csgraph.connected_components(graph, directed=False) if n else (0, child)
    rootless = np.bincount(comp[is_root], minlength=n_comp) == 0
    if rootless.any():
        start = int(np.flatnonzero(rootless[comp])[0])
        size = int((comp == comp[start]).sum())
        # following parents ``size`` times from any node of a rootless component ends on
        # its cycle: jump by powers of two (error path only)
        jump = np.where(is_root, np.arange(n), parent_row)
        for _ in range(max(size - 1, 1).bit_length()):
            jump = jump[jump]
        pos = int(jump[start])
        _fail_at(df, pos, "parent links form a cycle", column="parent_id",
                 value=parent[pos], skeleton=sid[pos])

    grouped = len(group) < 2 or bool((group[1:] >= group[:-1]).all())
    order = np.arange(len(df)) if grouped else np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    vertex = np.empty(len(df), np.int64)  # index of each row's vertex in its skeleton
    vertex[order] = np.arange(len(df)) - starts[group[order]]
    child = order[~is_root[order]]  # one edge per non-root node, grouped by skeleton
    edges = np.stack([vertex[child], vertex[parent_row[child]]], axis=1)
    attributes = {name: _attribute(df[name], name) for name in attrs}
    return {"ids": ids, "counts": counts, "roots": roots, "order": order, "xyz": xyz,
            "edges": edges, "attributes": attributes}


def _layout(v: dict) -> tuple[np.ndarray, np.ndarray]:
    """Every skeleton's file, concatenated in the order of ``ids``: ``(bytes, bounds)``."""
    counts, order = v["counts"], v["order"]
    n_edges = counts - v["roots"]
    headers = np.stack([counts, n_edges], axis=1).astype("<u4")
    parts = [(headers, 8, np.ones_like(counts)),
             (v["xyz"][order].astype("<f4"), 12, counts),
             (v["edges"].astype("<u4"), 8, n_edges)]
    for arr, dtype in v["attributes"].values():
        a = arr[order].astype(np.dtype(dtype).newbyteorder("<"))
        parts.append((a, a.itemsize, counts))
    src = np.concatenate([np.ascontiguousarray(a).view(np.uint8).reshape(-1)
                          for a, _, _ in parts])
    # runs[g, c]: where skeleton g's part c starts in ``src`` and how long it is
    base = np.cumsum([0] + [a.nbytes for a, _, _ in parts[:-1]])
    lengths = np.stack([size * n for _, size, n in parts], axis=1).astype(np.int64)
    starts = np.stack([b + np.concatenate([[0], np.cumsum(lengths[:, c])[:-1]])
                       for c, b in enumerate(base)], axis=1).astype(np.int64)
    # gather in the widest unit every run boundary is a multiple of (4 bytes when all
    # attributes are 4-byte types): 4x fewer indices than byte by byte
    unit = next(u for u in (4, 2, 1) if not (np.bitwise_or.reduce(starts, axis=None)
                                            | np.bitwise_or.reduce(lengths, axis=None)
                                            | len(src)) % u)
    out = np.empty(int(lengths.sum()), np.uint8)
    _gather(out.view(f"<u{unit}"), src.view(f"<u{unit}"), starts.reshape(-1) // unit,
            lengths.reshape(-1) // unit)
    bounds = np.concatenate([[0], np.cumsum(lengths.sum(axis=1))]).astype(np.int64)
    return out, bounds


def encode_skeletons(nodes, *, id_col: str = "skeleton_id",
                     vertex_attributes=DEFAULT_ATTRIBUTES, transform=None,
                     segment_properties: str | None = None,
                     sharded: bool | None = None,
                     several_roots: bool = False, as_float=()) -> dict[str, bytes]:
    """Encode node tables as a precomputed skeleton source: ``{key: bytes}``.

    Parameters
    ----------
    nodes
        A DataFrame with ``id_col``, ``node_id``, ``parent_id``, ``x``, ``y``, ``z``
        and the attribute columns, or a dict ``{skeleton id: node table}``. Vertices
        keep the table's row order; each non-root node gives the edge (node, parent).
    vertex_attributes
        Columns written as per-vertex attributes. With the default
        (``("radius", "type")``) those absent from the table are left out.
    transform
        3x4 matrix from the table's coordinates to nanometres (identity: nm).
    segment_properties
        Name of a segment-properties directory to point the info at, if any.
    sharded
        Write ``neuroglancer_uint64_sharded_v1`` shards; by default above
        ``SHARD_ABOVE`` skeletons.
    several_roots
        Accept skeletons of several trees (fragments, as navis allows); by default a
        second root is an error.
    as_float
        Attributes written as float32 whatever their dtype, or True for all of them:
        the Neuroglancer client nglive bundles draws nothing for a skeleton source
        with an integer attribute (tried in Chromium), and a shader reads floats.

    Raises
    ------
    TableError
        Before anything is encoded, naming the skeleton, column, row and value: a
        duplicate node id, a parent that is not a node of its skeleton, a second root,
        a cycle, a coordinate that is missing or not finite.

    Examples
    --------
    >>> t = pd.DataFrame({"node_id": [1, 2, 3], "parent_id": [-1, 1, 2],
    ...                   "x": [0., 1, 2], "y": 0., "z": 0., "radius": [1., 2, 3]})
    >>> files = encode_skeletons({7: t})
    >>> sorted(files), len(files["7"]) == 8 + 3 * 12 + 2 * 8 + 3 * 4  # header, xyz, edges, radius
    (['7', 'info'], True)
    """
    df = node_table(nodes, id_col=id_col)
    attrs = list(vertex_attributes)
    if tuple(attrs) == DEFAULT_ATTRIBUTES:
        attrs = [a for a in attrs if a in df.columns]
    if len(set(attrs)) != len(attrs):
        raise ValueError(f"vertex_attributes repeat: {attrs}")
    bad = [a for a in attrs if not isinstance(a, str) or not _ATTRIBUTE_ID.match(a)]
    if bad:
        raise ValueError(f"vertex attribute ids must be shader identifiers "
                         f"([A-Za-z_][A-Za-z0-9_]*), got {bad}")
    v = _validated(df, id_col, attrs, several_roots)
    for name in (v["attributes"] if as_float is True else [a for a in as_float
                                                          if a in v["attributes"]]):
        arr, t = v["attributes"][name]
        if t != "float32":
            inexact = np.abs(arr.astype(np.int64)) > 2**24
            if inexact.any():
                pos = int(np.flatnonzero(inexact)[0])
                raise TableError("integer attribute beyond 2**24 is not exact as float32",
                                 column=name, row=df.index[pos], value=arr[pos])
        v["attributes"][name] = (arr.astype(np.float32), "float32")
    data, bounds = _layout(v)
    ids = v["ids"]
    if sharded is None:
        sharded = len(ids) > SHARD_ABOVE
    sharding = choose_sharding(len(ids), len(data)) if sharded else None
    info = skeleton_info({k: t for k, (_, t) in v["attributes"].items()}, transform=transform,
                         segment_properties=segment_properties, sharding=sharding)
    files: dict[str, bytes] = {"info": json.dumps(info).encode()}
    if sharded:
        files.update(pack_shards(ids, data, bounds, sharding))
    else:
        mv = memoryview(data)
        for sid, a, b in zip(ids.tolist(), bounds[:-1].tolist(), bounds[1:].tolist(),
                             strict=True):
            files[str(sid)] = bytes(mv[a:b])
    return files
