"""Validated annotation tables: ids, geometry, properties and relationships from DataFrames.

Everything the byte encoders need is checked and converted here, before any output
exists, so a bad table never leaves half-written files behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..validation import (
    TableError,
    as_uint64_ids,
    first_bad_row,
    first_not_unicode,
    require_columns,
)
from .coord_space import ANNOTATION_TYPES, CoordSpace, geometry_columns

PROPERTY_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
NUMERIC_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")
PROPERTY_TYPES = NUMERIC_TYPES + ("rgb", "rgba")
_HEX_COLOR = r"#[0-9a-fA-F]{6}(?:[0-9a-fA-F]{2})?"


@dataclass
class PropertyColumn:
    """One annotation property: its ``info`` entry and its values, already typed."""

    spec: dict
    values: np.ndarray  # (N,) of the property dtype; (N, 3) / (N, 4) uint8 for rgb / rgba

    @property
    def type(self) -> str:
        return self.spec["type"]


@dataclass
class RelationshipColumn:
    """Related segment ids per annotation (CSR): ``values[offsets[i]:offsets[i + 1]]``."""

    name: str
    key: str
    offsets: np.ndarray  # (N + 1,) int64
    values: np.ndarray  # uint64


@dataclass
class AnnotationTable:
    """A validated annotation collection ready to encode."""

    annotation_type: str
    space: CoordSpace
    ids: np.ndarray  # (N,) uint64
    geometry: np.ndarray  # (N, G) float32; for polylines, the (M, rank) vertices
    properties: list[PropertyColumn] = field(default_factory=list)
    relationships: list[RelationshipColumn] = field(default_factory=list)
    vertex_offsets: np.ndarray | None = None  # polylines: (N + 1,) int64 into geometry

    def __len__(self) -> int:
        return len(self.ids)


def _labels(df: pd.DataFrame | None, n: int):
    return df.index if df is not None else pd.RangeIndex(n)


def _finite_float32(df: pd.DataFrame, columns: list[str], *, nonnegative=()) -> np.ndarray:
    """Stack ``columns`` as float32, raising on anything non-numeric or non-finite."""
    out = np.empty((len(df), len(columns)), np.float32)
    for j, col in enumerate(columns):
        s = df[col]
        if not (pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)):
            raise TableError(f"coordinates must be numbers, not dtype {s.dtype}", column=col,
                             accepted="integer or float columns")
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(v) | (np.abs(v) > np.finfo(np.float32).max)
        if col in nonnegative:
            bad |= v < 0
        if bad.any():
            row = first_bad_row(df, bad)
            what = "negative radius" if col in nonnegative and np.isfinite(v[bad][0]) else \
                "non-finite coordinate"
            raise TableError(what, column=col, row=row, value=s.loc[row] if not isinstance(
                s.loc[row], pd.Series) else v[bad][0], accepted="finite float32 numbers"
                + (" >= 0" if col in nonnegative else ""))
        out[:, j] = v
    return out


def _unique_ids(index, *, column: str) -> np.ndarray:
    ids = as_uint64_ids(index, column=column, index=index)
    if len(ids):
        order = np.argsort(ids, kind="stable")
        dup = ids[order][1:] == ids[order][:-1]
        if dup.any():
            pos = order[1:][dup][0]
            raise TableError("duplicate annotation id", column=column, row=index[pos],
                             value=ids[pos], accepted="unique ids")
    return ids


# ---------------------------------------------------------------------------- properties

def _property_requests(properties) -> list[dict]:
    """Turn the accepted ``properties`` forms into a list of partial spec dicts."""
    if isinstance(properties, str):
        properties = [properties]
    if isinstance(properties, dict):
        items = []
        for name, spec in properties.items():
            spec = _spec_dict(spec)
            spec.setdefault("id", name)
            items.append(spec)
        return items
    return [{"id": p} if isinstance(p, str) else _spec_dict(p) for p in properties]


def _spec_dict(spec) -> dict:
    if hasattr(spec, "to_json"):
        spec = spec.to_json()
    if not isinstance(spec, dict):
        raise TypeError(f"a property must be a column name, a dict or an "
                        f"AnnotationPropertySpec, not {type(spec).__name__}")
    return dict(spec)


def _int_type_for(v: np.ndarray) -> str | None:
    lo, hi = (int(v.min()), int(v.max())) if len(v) else (0, 0)
    for t in ("int32", "uint32"):
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return t
    return None


def _check_range(df, col, v: np.ndarray, ptype: str) -> None:
    if ptype == "float32":
        big = np.isfinite(v) & (np.abs(v.astype(np.float64)) > np.finfo(np.float32).max)
        if big.any():
            raise TableError("value overflows float32", column=col, row=first_bad_row(df, big),
                             value=v[big][0], accepted="float32 numbers")
        return
    info = np.iinfo(ptype)
    if v.dtype.kind == "f":
        bad = ~np.isfinite(v) | (v != np.round(v))
        if bad.any():
            raise TableError(f"non-integer value for a {ptype} property", column=col,
                             row=first_bad_row(df, bad), value=v[bad][0],
                             accepted=f"integers in [{info.min}, {info.max}]")
    if v.dtype.kind == "u":
        bad = v > np.uint64(info.max)
    else:
        bad = (v < info.min) | (v > info.max)
    if bad.any():
        raise TableError(f"value out of range for a {ptype} property", column=col,
                         row=first_bad_row(df, bad), value=v[bad][0],
                         accepted=f"integers in [{info.min}, {info.max}]")


def _color_property(df: pd.DataFrame, name: str, spec: dict) -> PropertyColumn | None:
    """An rgb/rgba property from ``name_r/_g/_b[/_a]`` columns or a ``"#rrggbb[aa]"`` column."""
    channels = [f"{name}_{c}" for c in "rgba"]
    has = [c in df.columns for c in channels]
    if all(has[:3]):
        ptype = spec.get("type") or ("rgba" if has[3] else "rgb")
        cols = channels[:4] if ptype == "rgba" else channels[:3]
        require_columns(df, cols, purpose=f"{ptype} property {name!r}")
        out = np.empty((len(df), len(cols)), np.uint8)
        for j, col in enumerate(cols):
            s = df[col]
            if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                raise TableError(f"colour channels must be integers, not dtype {s.dtype}",
                                 column=col, accepted="integers in [0, 255]")
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 0) | (v > 255)
            if bad.any():
                row = first_bad_row(df, bad)
                raise TableError("colour channel out of range", column=col, row=row,
                                 value=v[bad][0], accepted="integers in [0, 255]")
            out[:, j] = v
        return PropertyColumn({**spec, "id": name, "type": ptype}, out)
    if name in df.columns and (df[name].dtype == object or pd.api.types.is_string_dtype(
            df[name].dtype)) and not isinstance(df[name].dtype, pd.CategoricalDtype):
        s = df[name].astype("string")
        ok = s.str.fullmatch(_HEX_COLOR).fillna(False).to_numpy(bool)
        if not ok.any() and len(s):
            return None  # not a colour column; the caller reports the dtype
        if not ok.all():
            raise TableError("not a colour", column=name, row=first_bad_row(df, ~ok),
                             value=df[name].to_numpy()[~ok][0],
                             accepted='"#rrggbb" or "#rrggbbaa" strings')
        lengths = s.str.len().to_numpy()
        ptype = spec.get("type") or ("rgba" if (lengths == 9).all() else "rgb")
        if ptype == "rgba" and not (lengths == 9).all():
            s = s.where(lengths == 9, s + "ff")
        if ptype == "rgb" and (lengths == 9).any():
            bad = lengths == 9
            raise TableError("colour has an alpha channel but the property is rgb", column=name,
                             row=first_bad_row(df, bad), value=df[name].to_numpy()[bad][0],
                             accepted='"#rrggbb" strings, or use type "rgba"')
        nch = 4 if ptype == "rgba" else 3
        hexes = "".join(s.str.slice(1, 1 + 2 * nch).tolist())
        out = np.frombuffer(bytes.fromhex(hexes), np.uint8).reshape(len(df), nch).copy()
        return PropertyColumn({**spec, "id": name, "type": ptype}, out)
    return None


def _categorical_property(df, name: str, spec: dict) -> PropertyColumn:
    s = df[name]
    cats = s.cat.categories
    codes = s.cat.codes.to_numpy()
    if (codes < 0).any():
        bad = codes < 0
        raise TableError("missing value in a categorical property", column=name,
                         row=first_bad_row(df, bad), value=None,
                         accepted=f"one of the categories {list(map(str, cats[:10]))}")
    ptype = spec.get("type")
    if ptype is None:
        ptype = "uint8" if len(cats) <= 256 else "uint16" if len(cats) <= 65536 else "uint32"
    if ptype not in NUMERIC_TYPES or ptype == "float32":
        raise TableError(f"a categorical property needs an integer type, not {ptype!r}",
                         column=name, accepted="uint8, uint16, uint32, int8, int16, int32")
    width = np.iinfo(ptype).max + 1
    if len(cats) > width:
        raise TableError(f"{len(cats)} categories do not fit a {ptype} property", column=name,
                         value=len(cats), accepted=f"at most {width} categories for {ptype}")
    labels = [str(c) for c in cats]
    bad = first_not_unicode(labels)
    if bad is not None:
        raise TableError("category label is not valid Unicode (a lone surrogate); the info "
                         "JSON cannot carry it", column=name,
                         row=first_bad_row(df, codes == bad), value=labels[bad],
                         accepted="Unicode text (decode bytes with their real encoding)")
    spec = {**spec, "id": name, "type": ptype,
            "enum_values": list(range(len(cats))), "enum_labels": labels}
    return PropertyColumn(spec, codes.astype(ptype))



def _numeric_property(df, name: str, spec: dict) -> PropertyColumn:
    s = df[name]
    ptype = spec.get("type")
    if pd.api.types.is_bool_dtype(s.dtype):
        if s.isna().any():
            raise TableError("missing value", column=name,
                             row=first_bad_row(df, s.isna().to_numpy()), accepted="True/False")
        v = s.to_numpy(dtype=np.uint8)
        ptype = ptype or "uint8"
    elif pd.api.types.is_integer_dtype(s.dtype):
        if s.isna().any():
            raise TableError("missing value in an integer property", column=name,
                             row=first_bad_row(df, s.isna().to_numpy()), value=None,
                             accepted="integers (use a float column to allow NaN)")
        v = s.to_numpy(dtype=str(s.dtype).lower())
        if ptype is None:
            # int8 is promoted: Neuroglancer's client sizes int8 as 2 bytes, the spec as 1
            ptype = {"uint8": "uint8", "int8": "int16", "uint16": "uint16", "int16": "int16",
                     "uint32": "uint32", "int32": "int32"}.get(v.dtype.name) or _int_type_for(v)
            if ptype is None:
                bad = (v < np.iinfo(np.int32).min) | (v > np.iinfo(np.uint32).max) \
                    if v.dtype.kind == "i" else v > np.uint64(np.iinfo(np.uint32).max)
                if not bad.any():  # mixed signs spanning both int32 and uint32
                    bad = v < 0
                raise TableError("integer values do not fit a 32-bit property", column=name,
                                 row=first_bad_row(df, bad), value=v[bad][0],
                                 accepted="int32 or uint32 ranges (cast to float for larger)")
    elif pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan) if s.dtype != np.float32 \
            else s.to_numpy()
        ptype = ptype or "float32"
    else:
        raise TableError(f"unsupported property dtype {s.dtype}", column=name,
                         accepted="numbers, booleans, categoricals, "
                                  "<name>_r/_g/_b[/_a] columns or '#rrggbb' strings")
    if ptype not in NUMERIC_TYPES:
        raise TableError(f"unknown property type {ptype!r}", column=name,
                         accepted=", ".join(PROPERTY_TYPES))
    _check_range(df, name, v, ptype)
    return PropertyColumn({**spec, "id": name, "type": ptype}, v.astype(ptype))


def read_properties(df: pd.DataFrame, properties) -> list[PropertyColumn]:
    """Typed property columns for the requested ``properties`` of ``df``."""
    out, seen = [], set()
    for req in _property_requests(properties):
        name = req.get("id")
        if not isinstance(name, str) or not PROPERTY_ID.match(name):
            raise TableError("property name Neuroglancer rejects", column=name, value=name,
                             accepted="a lowercase letter, then letters, digits or _")
        if name in seen:
            raise TableError("property listed twice", column=name)
        seen.add(name)
        ptype = req.get("type")
        if ptype is not None and ptype not in PROPERTY_TYPES:
            raise TableError(f"unknown property type {ptype!r}", column=name,
                             accepted=", ".join(PROPERTY_TYPES))
        spec = {k: v for k, v in req.items() if v is not None}
        if ptype in (None, "rgb", "rgba"):
            col = _color_property(df, name, spec)
            if col is not None:
                out.append(col)
                continue
            if ptype in ("rgb", "rgba"):
                raise TableError(f"{ptype} property needs columns {name}_r, {name}_g, "
                                 f"{name}_b{', ' + name + '_a' if ptype == 'rgba' else ''} "
                                 "or a column of '#rrggbb' strings", column=name)
        require_columns(df, [name], purpose="a property")
        if isinstance(df[name].dtype, pd.CategoricalDtype):
            out.append(_categorical_property(df, name, spec))
        else:
            if "enum_values" in spec and "enum_labels" not in spec:
                raise TableError("enum_values given without enum_labels", column=name)
            labels = [str(t) for t in spec.get("enum_labels", ())]
            bad = first_not_unicode(labels)
            if bad is not None:
                raise TableError("enum label is not valid Unicode (a lone surrogate); the "
                                 "info JSON cannot carry it", column=name, value=labels[bad],
                                 accepted="Unicode text")
            out.append(_numeric_property(df, name, spec))
    return out


# ------------------------------------------------------------------------- relationships

def _relationship_key(name: str, used: set) -> str:
    base = "by_rel_" + re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    key, i = base, 1
    while key in used:
        i += 1
        key = f"{base}_{i}"
    used.add(key)
    return key


def read_relationship(df: pd.DataFrame, name: str, key: str) -> RelationshipColumn:
    """Related ids of column ``name``: uint64-compatible scalars, or lists of them."""
    require_columns(df, [name], purpose="a relationship")
    s = df[name]
    n = len(s)
    if s.dtype != object and not isinstance(s.dtype, pd.ArrowDtype):
        missing = s.isna().to_numpy()
        if missing.any():  # a missing scalar means "no related segment"
            vals = as_uint64_ids(s[~missing], column=name)
            return RelationshipColumn(name, key, np.concatenate(
                [[0], np.cumsum(~missing)]).astype(np.int64), vals)
        vals = as_uint64_ids(s, column=name)
        return RelationshipColumn(name, key, np.arange(n + 1, dtype=np.int64), vals)
    if isinstance(s.dtype, pd.ArrowDtype):
        s = s.astype(object)
    raw = s.to_numpy()
    lengths = np.zeros(n, np.int64)
    flat_parts = []
    for i, v in enumerate(raw):  # list cells are Python objects; one pass to flatten them
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        if isinstance(v, list | tuple | np.ndarray | pd.Series):
            lengths[i] = len(v)
            flat_parts.append(v)
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            lengths[i] = 1
            flat_parts.append((v,))
        else:
            raise TableError("relationship value is not an id or a list of ids", column=name,
                             row=df.index[i], value=v,
                             accepted="non-negative integers below 2**64, or lists of them")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = np.repeat(df.index.to_numpy(), lengths)
    flat = [x for part in flat_parts for x in part]
    try:
        arr = np.array(flat) if flat else np.zeros(0, np.uint64)
    except (OverflowError, ValueError):
        arr = None
    # numpy turns a mix of Python ints and uint64 into float64: never let ids pass that way
    if arr is None or arr.ndim != 1 or (arr.dtype.kind == "f" and not any(
            isinstance(x, float | np.floating) for x in flat)):
        arr = np.empty(len(flat), object)
        arr[:] = flat
    vals = as_uint64_ids(arr, column=name, index=pd.Index(rows))
    return RelationshipColumn(name, key, offsets, vals)


def read_relationships(df: pd.DataFrame, relationships) -> list[RelationshipColumn]:
    """Relationship columns of ``df``, each with its index key ``by_rel_<name>``."""
    if isinstance(relationships, str):
        relationships = [relationships]
    used: set = set()
    out = []
    for name in relationships:
        if not isinstance(name, str) or not name:
            raise TableError("relationship names must be non-empty strings", value=name)
        if any(r.name == name for r in out):
            raise TableError("relationship listed twice", column=name)
        out.append(read_relationship(df, name, _relationship_key(name, used)))
    return out


# ------------------------------------------------------------------------------ the table

def read_table(df, space: CoordSpace, annotation_type: str, properties=(), relationships=(),
               polyline_points: pd.DataFrame | None = None) -> AnnotationTable:
    """Validate ``df`` (and ``polyline_points``) and convert them into an AnnotationTable.

    Raises
    ------
    TableError
        naming the column, row (index label) and value of the first problem found.

    Examples
    --------
    >>> import pandas as pd
    >>> from nglive.formats.annotations.coord_space import as_coord_space
    >>> t = read_table(pd.DataFrame({"x": [1.0], "y": [2.0], "z": [3.0]}),
    ...                as_coord_space("xyz"), "point")
    >>> t.geometry.tolist(), t.ids.tolist()
    ([[1.0, 2.0, 3.0]], [0])
    """
    if annotation_type not in ANNOTATION_TYPES:
        raise ValueError(f"annotation_type must be one of {ANNOTATION_TYPES}, "
                         f"not {annotation_type!r}")
    vertex_offsets = None
    if annotation_type == "polyline":
        if polyline_points is None:
            raise TableError("polyline annotations need polyline_points (one row per vertex "
                             "with an annotation_id column)", column="annotation_id")
        require_columns(polyline_points, ["annotation_id", *space.names],
                        purpose="polyline vertices")
        pid = as_uint64_ids(polyline_points["annotation_id"], column="annotation_id")
        if df is None:
            _, first = np.unique(pid, return_index=True)
            df = pd.DataFrame(index=pd.Index(pid[np.sort(first)], name="annotation_id"))
        ids = _unique_ids(df.index, column=df.index.name or "index")
        order = np.argsort(ids, kind="stable")
        pos = np.searchsorted(ids[order], pid)
        pos = np.minimum(pos, max(len(ids) - 1, 0))
        known = (ids[order][pos] == pid) if len(ids) else np.zeros(len(pid), bool)
        if not known.all():
            bad = ~known
            raise TableError("polyline vertex for an annotation id not in the table",
                             column="annotation_id", row=first_bad_row(polyline_points, bad),
                             value=pid[bad][0], accepted="ids of the table's index")
        which = order[pos]  # row of the table each vertex belongs to
        counts = np.bincount(which, minlength=len(ids))
        if (counts < 2).any():
            bad = counts < 2
            raise TableError(f"polyline has {counts[bad][0]} vertices", column="annotation_id",
                             row=first_bad_row(df, bad), value=ids[bad][0],
                             accepted="at least 2 vertices per polyline")
        coords = _finite_float32(polyline_points, list(space.names))
        vorder = np.argsort(which, kind="stable")  # keep each polyline's vertex order
        geometry = coords[vorder]
        vertex_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    else:
        if df is None:
            raise TableError("a DataFrame is required for "
                             f"{annotation_type} annotations")
        cols = geometry_columns(annotation_type, space)
        require_columns(df, cols, purpose=f"{annotation_type} geometry")
        radii = cols[space.rank:] if annotation_type == "ellipsoid" else ()
        ids = _unique_ids(df.index, column=df.index.name or "index")
        geometry = _finite_float32(df, cols, nonnegative=radii)
    return AnnotationTable(
        annotation_type=annotation_type,
        space=space,
        ids=ids,
        geometry=geometry,
        properties=read_properties(df, properties),
        relationships=read_relationships(df, relationships),
        vertex_offsets=vertex_offsets,
    )
