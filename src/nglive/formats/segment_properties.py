"""Neuroglancer segment properties (``neuroglancer_segment_properties``) from DataFrames.

``segment_properties(df, ...)`` takes the keywords of nglui 4.x
``SegmentProperties.from_dataframe`` and returns the same dictionary as its ``to_dict()``
for well-formed tables; ``segment_properties_json(df, ...)`` returns the ``info`` file as
strict JSON bytes, built column by column without going through Python lists.
"""

from __future__ import annotations

import json
import os
import string
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nglive.formats.json_text import (
    append_chunks,
    int_list_array,
    number_array,
    string_array,
    uint_string_array,
)
from nglive.formats.validation import (
    TableError,
    as_uint64_ids,
    first_bad_row,
    first_not_unicode,
    is_unicode,
    require_columns,
)

__all__ = [
    "SegmentProperties",
    "segment_properties",
    "segment_properties_json",
    "to_json",
]

#: Neuroglancer's number property types, narrowest first within each signedness.
NUMBER_DATA_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32")

#: How a missing number is written. Neuroglancer builds number properties with
#: ``TypedArray.from(values)``, which applies JavaScript ``Number()`` to each element:
#: the string ``"NaN"`` becomes NaN (its own marker for "no value"), while ``null``
#: would silently become 0.
MISSING_NUMBER = "NaN"

_FLOAT32_EXACT_INT = 2**24


# --------------------------------------------------------------------------- properties


@dataclass
class StringProperty:
    """A ``label``, ``description`` or ``string`` property: one str per id."""

    id: str
    type: str
    values: np.ndarray  # object array of str
    description: str | None = None

    def head(self) -> dict:
        out = {"id": self.id, "type": self.type}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass
class NumberProperty:
    """A ``number`` property; ``values`` has the numpy dtype named by ``data_type``.

    Missing values are NaN (only possible with ``data_type == "float32"``).
    """

    id: str
    data_type: str
    values: np.ndarray
    description: str | None = None


@dataclass
class TagProperty:
    """The ``tags`` property: tag names and, per id, its sorted tag indices.

    ``indices`` is an (n_ids, k) int array, each row sorted ascending with unused
    slots set to -1 at the end.
    """

    tags: list[str]
    indices: np.ndarray
    tag_descriptions: list[str] | None = None
    id: str = "tags"

    def rows(self) -> tuple[np.ndarray, list[tuple[int, ...]]]:
        """Codes per id into a list of distinct tag-index tuples (few, usually)."""
        n, k = self.indices.shape
        if k == 0:
            return np.zeros(n, np.intp), [()]
        uniq, codes = _unique_rows(self.indices)
        combos = [tuple(int(v) for v in row if v >= 0) for row in uniq.tolist()]
        return codes, combos


@dataclass
class SegmentProperties:
    """Segment ids (uint64) and their properties, in Neuroglancer's order.

    Build one with :meth:`from_dataframe`; get nglui's dictionary with :meth:`to_dict`
    or the ``info`` file bytes with :meth:`to_json`.
    """

    ids: np.ndarray
    label: StringProperty | None = None
    description: StringProperty | None = None
    tags: TagProperty | None = None
    strings: list[StringProperty] = field(default_factory=list)
    numbers: list[NumberProperty] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, **kwargs) -> SegmentProperties:
        """Same keywords as :func:`segment_properties`."""
        return _build(df, **kwargs)

    def to_dict(self) -> dict:
        """The ``info`` JSON as Python objects, equal to nglui's ``to_dict()``."""
        props: list[dict] = []
        for p in (self.label, self.description):
            if p is not None:
                props.append({**p.head(), "values": p.values.tolist()})
        if self.tags is not None:
            t = self.tags
            d: dict[str, Any] = {"id": t.id, "type": "tags", "tags": list(t.tags)}
            if t.tag_descriptions is not None:
                d["tag_descriptions"] = list(t.tag_descriptions)
            codes, combos = t.rows()
            lists = [list(c) for c in combos]
            d["values"] = list(map(list, map(lists.__getitem__, codes.tolist())))
            props.append(d)
        for p in self.strings:
            props.append({**p.head(), "values": p.values.tolist()})
        for p in self.numbers:
            d = {"id": p.id, "type": "number"}
            if p.description is not None:
                d["description"] = p.description
            d["values"] = _number_list(p.values)
            d["data_type"] = p.data_type
            props.append(d)
        return {
            "@type": "neuroglancer_segment_properties",
            "inline": {"ids": list(map(str, self.ids.tolist())), "properties": props},
        }

    def to_json(self) -> bytearray:
        """The ``info`` file: strict JSON (no NaN/Infinity literals), UTF-8.

        Returned as a ``bytearray`` that the columns are appended to one by one, so the
        whole document is never held twice (a ``bytes`` would need one more copy).
        """
        jobs: list = [lambda: uint_string_array(self.ids)]
        heads: list[bytes] = []
        tails: list[bytes] = []
        for p in (self.label, self.description):
            if p is not None:
                heads.append(_head_json(p.head()))
                tails.append(b"}")
                jobs.append(lambda p=p: string_array(p.values))
        if self.tags is not None:
            t = self.tags
            head = {"id": t.id, "type": "tags", "tags": list(t.tags)}
            if t.tag_descriptions is not None:
                head["tag_descriptions"] = list(t.tag_descriptions)
            heads.append(_head_json(head))
            tails.append(b"}")
            jobs.append(lambda t=t: int_list_array(*t.rows()))
        for p in self.strings:
            heads.append(_head_json(p.head()))
            tails.append(b"}")
            jobs.append(lambda p=p: string_array(p.values))
        for p in self.numbers:
            head = {"id": p.id, "type": "number"}
            if p.description is not None:
                head["description"] = p.description
            heads.append(_head_json(head))
            tails.append(b',"data_type":' + json.dumps(p.data_type).encode() + b"}")
            jobs.append(lambda p=p: number_array(p.values, missing=MISSING_NUMBER))
        # float columns cost about four times any other column: they are encoded in
        # worker threads (numpy releases the GIL) while the others are written here
        # (small tables are faster on one thread)
        offload = [
            len(jobs) - len(self.numbers) + k
            for k, p in enumerate(self.numbers) if p.values.dtype.kind == "f"
        ] if len(self.ids) >= 50_000 else []
        out = bytearray(b'{"@type":"neuroglancer_segment_properties","inline":{"ids":')
        with ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1)) as pool:
            futures = {i: pool.submit(lambda i=i: list(jobs[i]())) for i in offload}
            append_chunks(out, jobs[0]())
            out += b',"properties":['
            for i, (head, tail) in enumerate(zip(heads, tails, strict=True)):
                out += b"," if i else b""
                out += head
                out += b',"values":'
                future = futures.pop(i + 1, None)
                append_chunks(out, future.result() if future is not None else jobs[i + 1]())
                del future  # free the column's text once it is copied
                out += tail
        out += b"]}}"
        return out


def _head_json(head: dict) -> bytes:
    # an object's opening members, left open so the big "values" array can follow
    return json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1].encode()


def _number_list(values: np.ndarray) -> list:
    out = values.tolist()
    if values.dtype.kind == "f":
        nan = np.flatnonzero(np.isnan(values))
        for i in nan.tolist():  # only the missing entries
            out[i] = MISSING_NUMBER
    return out


def _unique_rows(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small-valued int matrix and, per row, the index of its copy."""
    n, k = mat.shape
    base = int(mat.max(initial=-1)) + 2
    if base ** k < 2**62:
        key = np.zeros(n, np.int64)
        for j in range(k):
            key = key * base + (mat[:, j].astype(np.int64) + 1)
        codes, first = pd.factorize(key)[0], None
        uniq_keys = pd.unique(key)
        first = np.empty(len(uniq_keys), np.intp)
        first[codes[::-1]] = np.arange(n - 1, -1, -1)
        return mat[first], codes
    uniq, codes = np.unique(mat, axis=0, return_inverse=True)
    return uniq, codes.reshape(-1)


# --------------------------------------------------------------------------- JSON


def to_json(props: dict | SegmentProperties) -> bytes | bytearray:
    """Serialise segment properties to strict JSON bytes.

    Accepts a :class:`SegmentProperties` (fast path, column by column, returning a
    ``bytearray``) or a dictionary such as :func:`segment_properties` returns
    (``json.dumps`` with ``allow_nan=False``, so a NaN that slipped in raises instead of
    producing invalid JSON; returns ``bytes``).

    Examples
    --------
    >>> import pandas as pd
    >>> from nglive.formats.segment_properties import segment_properties, to_json
    >>> to_json(segment_properties(pd.DataFrame({"pt_root_id": [5]}), label_col=None))
    b'{"@type":"neuroglancer_segment_properties","inline":{"ids":["5"],"properties":[]}}'
    """
    if isinstance(props, SegmentProperties):
        return props.to_json()
    return json.dumps(props, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- building


def _as_list(cols) -> list:
    if cols is None:
        return []
    if isinstance(cols, str):
        return [cols]
    return list(cols)


def _is_missing(series: pd.Series) -> np.ndarray:
    """None, NaN, NA and the empty string: the values nglui treats as "no value"."""
    miss = series.isna().to_numpy()
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        miss = miss | (series.to_numpy(dtype=object) == "")
    return miss


def _str_values(series: pd.Series, *, missing: str = "") -> np.ndarray:
    """``str(v)`` of each value as Python would print it; missing values as ``missing``."""
    obj = np.array(series.tolist(), dtype=object) if len(series) else np.array([], object)
    miss = series.isna().to_numpy()
    if miss.any():
        obj[miss] = missing
    return obj.astype(str).astype(object)


def _label_values(df, label_cols, label_separator, label_format_map, extra) -> np.ndarray:
    n = len(df)
    if label_format_map:
        return _format_labels(df, label_format_map, extra)
    if len(label_cols) == 1 and pd.api.types.infer_dtype(df[label_cols[0]], skipna=False) == (
        "string"
    ) and not df[label_cols[0]].hasnans:  # all str, nothing missing: nothing to convert
        # (hasnans: a string[pyarrow] column says "string" with missing values too)
        return df[label_cols[0]].to_numpy(dtype=object)
    out = None
    for col in label_cols:
        s = df[col]
        # same conversion nglui applies: object values, nulls as "", then str()
        s = s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)
        if out is None:
            out = s
        else:
            both = (out != "") & (s != "")
            out = np.where(both, out + label_separator, out) + s
    if out is None:
        out = np.full(n, "", dtype=object)
    return out


def _format_labels(df, fmt: str, extra: dict) -> np.ndarray:
    n = len(df)
    fields = list(string.Formatter().parse(fmt))
    names = [f[1] for f in fields if f[1] is not None]

    def column(name):
        if name in extra:
            return pd.Series(extra[name], index=df.index)
        if name not in df.columns:
            raise TableError(
                "label_format_map names a column the table does not have",
                column=name, accepted=f"columns of the table: {list(map(str, df.columns))}",
            )
        return df[name]

    simple = all(
        f[1] is None or (f[1].isidentifier() or f[1] in df.columns) and not f[2] and not f[3]
        for f in fields
    )
    if simple:
        out = np.full(n, "", dtype=object)
        for literal, name, _spec, _conv in fields:
            if literal:
                out = out + literal.replace("{{", "{").replace("}}", "}")
            if name is not None:
                out = out + _str_values(column(name), missing="")
        return out
    # format specs, attribute or index access: let str.format do it, row by row
    cols = {nm.split(".")[0].split("[")[0] for nm in names}
    data = {c: column(c).tolist() for c in cols}
    return np.array([fmt.format(**{c: data[c][i] for c in cols}) for i in range(n)], object)


def _number_property(series: pd.Series, name: str) -> NumberProperty:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
        raise TableError(
            f"a number property needs a numeric column, not {dtype}", column=name,
            accepted="integer, float or boolean dtypes",
        )
    if pd.api.types.is_object_dtype(dtype):
        conv = pd.to_numeric(series, errors="coerce")
        bad = conv.isna().to_numpy() & ~series.isna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise TableError(
                "not a number", column=name, row=series.index[pos], value=series.iloc[pos],
                accepted="numbers, booleans or missing values",
            )
        series = conv
        dtype = series.dtype
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        if missing.any():
            vals = series.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
            return NumberProperty(name, "float32", vals.astype(np.float32))
        return NumberProperty(name, "uint8", series.to_numpy(dtype=np.uint8))
    if pd.api.types.is_integer_dtype(dtype):
        np_name = str(dtype).lower()
        if missing.any():
            vals = series.to_numpy(dtype=np.float64, na_value=np.nan)
            ints = series.dropna().to_numpy(dtype=np_name)
            if len(ints) and (
                int(ints.max()) > _FLOAT32_EXACT_INT or int(ints.min()) < -_FLOAT32_EXACT_INT
            ):
                warnings.warn(
                    f"number column {name!r} has missing values, so it is stored as float32 "
                    f"(missing = NaN); integers beyond 2**24 are rounded",
                    stacklevel=4,
                )
            return NumberProperty(name, "float32", vals.astype(np.float32))
        arr = series.to_numpy(dtype=np_name)
        if np_name in NUMBER_DATA_TYPES:
            return NumberProperty(name, np_name, arr)
        if len(arr) == 0:
            return NumberProperty(name, "int32", arr.astype(np.int32))
        lo, hi = int(arr.min()), int(arr.max())
        if -(2**31) <= lo and hi < 2**31:
            return NumberProperty(name, "int32", arr.astype(np.int32))
        if lo >= 0 and hi < 2**32:
            return NumberProperty(name, "uint32", arr.astype(np.uint32))
        warnings.warn(
            f"number column {name!r} has values outside 32-bit integers "
            f"(min {lo}, max {hi}); stored as float32, exact only up to 2**24",
            stacklevel=4,
        )
        return NumberProperty(name, "float32", arr.astype(np.float32))
    if pd.api.types.is_float_dtype(dtype):
        vals = series.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(over="ignore"):
            f32 = vals.astype(np.float32)
        bad = np.isinf(f32)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise TableError(
                "infinite or beyond float32 range", column=name, row=series.index[pos],
                value=vals[pos], accepted="finite numbers within +-3.4e38, or missing (NaN)",
            )
        return NumberProperty(name, "float32", f32)
    raise TableError(
        f"unsupported dtype {dtype} for a number property", column=name,
        accepted="integer, float or boolean dtypes",
    )


def _value_tags(series: pd.Series, col: str, prepend: bool):
    """Per-row code into this column's tags (-1: none) and the tag values, in order."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.cat
        codes = cat.codes.to_numpy().astype(np.int64)
        used = np.unique(codes[codes >= 0])
        used = used[[not _null_tag(cat.categories[i]) for i in used.tolist()]]
        values = [cat.categories[i] for i in used.tolist()]
        remap = np.full(len(cat.categories) + 1, -1, np.int64)
        remap[used] = np.arange(len(used))
        codes = remap[codes]  # -1 indexes the trailing -1
        raw = [f"{col}:{v}" if prepend else v for v in values]
        return codes, raw
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    uniq = list(uniques.tolist() if hasattr(uniques, "tolist") else uniques)
    keep = [i for i, v in enumerate(uniq) if not _null_tag(v)]
    raw = [f"{col}:{uniq[i]}" if prepend else uniq[i] for i in keep]
    try:
        order = sorted(range(len(keep)), key=lambda j: raw[j])
    except TypeError:  # mixed types (e.g. ints and strings): order by their text
        order = sorted(range(len(keep)), key=lambda j: str(raw[j]))
    remap = np.full(len(uniq) + 1, -1, np.int64)
    remap[[keep[j] for j in order]] = np.arange(len(order))
    return remap[codes], [raw[j] for j in order]


def _null_tag(v) -> bool:
    """None, NaN, NA and "" are no tag."""
    if v is None or (isinstance(v, str) and v == ""):
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _truthy(series: pd.Series) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    miss = _is_missing(series)
    vals = series.to_numpy(dtype=object)
    out = np.zeros(len(series), bool)
    ok = ~miss
    out[ok] = vals[ok].astype(bool)
    return out


def _tag_text(raw) -> str:
    return "_".join(str(raw).split(" ")) if " " in str(raw) else str(raw)


def _tag_property(df, value_cols, bool_cols, tag_descriptions, allow_disambiguation, prepend):
    n = len(df)
    per_col = []
    for col in value_cols:
        codes, raw = _value_tags(df[col], col, prepend)
        per_col.append((col, codes, raw))
    raw_all = [str(r) for _, _, raw in per_col for r in raw] + [str(c) for c in bool_cols]
    counts: dict[str, int] = {}
    for r in raw_all:
        counts[r] = counts.get(r, 0) + 1
    dups = sorted(r for r, c in counts.items() if c > 1)
    if dups and not allow_disambiguation:
        raise TableError(
            f"tag values {dups} occur in more than one tag column",
            column=", ".join(map(str, value_cols + bool_cols)),
            accepted="distinct values across tag columns, or allow_disambiguation=True",
        )
    dupset = set(dups)
    raw_tags: list = []
    mat = np.full((n, len(value_cols) + len(bool_cols)), -1, np.int32)
    for j, (col, codes, raw) in enumerate(per_col):
        offset = len(raw_tags)
        raw_tags.extend(f"{col}:{r}" if str(r) in dupset else r for r in raw)
        mat[:, j] = np.where(codes >= 0, codes + offset, -1)
    for j, col in enumerate(bool_cols, start=len(value_cols)):
        mat[:, j] = np.where(_truthy(df[col]), len(raw_tags), -1)
        raw_tags.append(col)
    tags = [_tag_text(r) for r in raw_tags]
    for t, r in zip(tags, raw_tags, strict=True):
        if t.startswith("#"):
            raise TableError(
                "a tag must not start with '#'", value=r, accepted="tags without a leading '#'",
            )
    folded: dict[str, str] = {}
    for t in tags:
        if t.lower() in folded:
            raise TableError(
                f"tags {folded[t.lower()]!r} and {t!r} are the same to Neuroglancer, which "
                "matches tags case-insensitively",
                value=t, accepted="tags distinct ignoring case",
            )
        folded[t.lower()] = t
    if mat.shape[1] > 1:  # each row ascending, unused (-1) slots last
        big = np.iinfo(np.int32).max
        mat = np.where(mat < 0, big, mat)
        if mat.shape[1] == 2:
            lo, hi = np.minimum(mat[:, 0], mat[:, 1]), np.maximum(mat[:, 0], mat[:, 1])
            mat = np.stack([lo, hi], axis=1)
        else:
            mat.sort(axis=1)
        mat[mat == big] = -1
    descriptions = None
    if tag_descriptions is not None:
        descriptions = [
            str(tag_descriptions.get(str(r), tag_descriptions.get(r, r))) for r in raw_tags
        ]
    return TagProperty(tags=tags, indices=mat, tag_descriptions=descriptions)


def _build(
    df: pd.DataFrame,
    id_col: str = "pt_root_id",
    label_col=None,
    description_col=None,
    string_cols=None,
    number_cols=None,
    tag_value_cols=None,
    tag_bool_cols=None,
    tag_descriptions=None,
    allow_disambiguation=True,
    label_separator="_",
    label_format_map=None,
    prepend_col_name=False,
    random_columns=None,
    random_column_prefix="random_sample",
) -> SegmentProperties:
    label_cols = _as_list(label_col)
    string_cols = _as_list(string_cols)
    number_cols = _as_list(number_cols)
    tag_value_cols = _as_list(tag_value_cols)
    tag_bool_cols = _as_list(tag_bool_cols)

    extra: dict[str, np.ndarray] = {}
    if random_columns:
        if random_columns > 1:
            names = [f"{random_column_prefix}_{i}" for i in range(random_columns)]
        else:
            names = [random_column_prefix]
        for nm in names:
            if nm in df.columns:
                raise TableError(
                    "random column name already in the table", column=nm,
                    accepted="a random_column_prefix that names no existing column",
                )
        for nm in names:  # numpy's global generator, as nglui uses, so seeds carry over
            extra[nm] = np.random.rand(len(df))
        number_cols = number_cols + names

    needed = [id_col, *label_cols, *string_cols, *tag_value_cols, *tag_bool_cols]
    if description_col:
        needed.append(description_col)
    needed += [c for c in number_cols if c not in extra]
    require_columns(df, needed, purpose="segment properties")

    ids = as_uint64_ids(df[id_col], column=id_col)
    srt = np.sort(ids)
    if len(srt) > 1 and (srt[1:] == srt[:-1]).any():
        dup = pd.Series(ids).duplicated(keep=False).to_numpy()
        dup_ids = pd.unique(ids[dup])
        shown = ", ".join(map(str, dup_ids[:10].tolist()))
        more = f" and {len(dup_ids) - 10} more" if len(dup_ids) > 10 else ""
        raise TableError(
            f"duplicate segment ids: {shown}{more}", column=id_col,
            row=first_bad_row(df, dup), value=ids[dup][0],
            accepted="each id once; aggregate rows per id first",
        )

    props = SegmentProperties(ids=ids)
    if label_cols or label_format_map:
        props.label = StringProperty(
            "label", "label",
            _label_values(df, label_cols, label_separator, label_format_map, extra),
        )
    if description_col:
        props.description = StringProperty(
            "description", "description", _str_values(df[description_col])
        )
    for col in string_cols:
        props.strings.append(StringProperty(str(col), "string", _str_values(df[col])))
    for col in number_cols:
        series = pd.Series(extra[col], index=df.index) if col in extra else df[col]
        props.numbers.append(_number_property(series, str(col)))
    if tag_value_cols or tag_bool_cols:
        props.tags = _tag_property(
            df, tag_value_cols, tag_bool_cols, tag_descriptions,
            allow_disambiguation, prepend_col_name,
        )
    _check_text(props, df, label_format_map or ", ".join(map(str, label_cols)),
                description_col, string_cols, tag_value_cols + tag_bool_cols)
    return props


def _joined(values) -> str:
    try:
        return "\x1f".join(values)
    except TypeError:  # not all str
        return "\x1f".join(map(str, values))


def _check_text(props: SegmentProperties, df, label_name, description_col, string_cols,
                tag_cols) -> None:
    """Text that is not Unicode (a lone surrogate, e.g. from bytes decoded with
    ``surrogateescape``) cannot be written as UTF-8 JSON: name where it is instead of
    writing a corrupt file. One join per property; rows are searched only on failure."""
    columns = [(props.label, label_name), (props.description, description_col),
               *zip(props.strings, string_cols, strict=True)]
    for prop, column in columns:
        pos = None if prop is None else first_not_unicode(prop.values)
        if pos is None:
            continue
        raise TableError("text is not valid Unicode (a lone surrogate); JSON cannot carry it",
                         column=column, row=df.index[pos], value=prop.values[pos],
                         accepted="Unicode text (decode bytes with their real encoding)")
    names = [p.id for p in (*props.strings, *props.numbers)]
    texts = [*names, *(props.tags.tags if props.tags else []),
             *((props.tags.tag_descriptions or []) if props.tags else [])]
    for text in texts:
        if not is_unicode(str(text)):
            column = text if text in names else ", ".join(map(str, tag_cols))
            raise TableError("text is not valid Unicode (a lone surrogate); JSON cannot "
                             "carry it", column=column, value=text,
                             accepted="Unicode text (decode bytes with their real encoding)")


# --------------------------------------------------------------------------- public


def segment_properties(
    df: pd.DataFrame,
    id_col: str = "pt_root_id",
    label_col: str | list[str] | None = None,
    description_col: str | None = None,
    string_cols: str | list[str] | None = None,
    number_cols: str | list[str] | None = None,
    tag_value_cols: str | list[str] | None = None,
    tag_bool_cols: str | list[str] | None = None,
    tag_descriptions: dict | None = None,
    allow_disambiguation: bool = True,
    label_separator: str = "_",
    label_format_map: str | None = None,
    prepend_col_name: bool = False,
    random_columns: int | None = None,
    random_column_prefix: str = "random_sample",
) -> dict:
    """Neuroglancer segment properties for the rows of a table, as a dictionary.

    The keywords and output are those of nglui 4.x
    ``SegmentProperties.from_dataframe(df, ...).to_dict()``: one entry per row, ids as
    decimal strings, properties in the order label, description, tags, strings, numbers.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per segment.
    id_col : str
        Column of segment ids: integers (any width, nullable without missing values) or
        decimal strings; kept as uint64 end to end, never through float64.
    label_col : str or list of str, optional
        Column(s) whose values, joined with ``label_separator`` (missing and empty
        values skipped), give each segment's label.
    description_col : str, optional
        Column for the ``description`` property.
    string_cols, number_cols : str or list of str, optional
        Columns for ``string`` and ``number`` properties, in this order.
    tag_value_cols : str or list of str, optional
        Columns whose distinct values become tags (sorted; a categorical column keeps
        its category order, unused categories dropped). None, NaN, NA and "" are no tag.
        Spaces in tags become "_".
    tag_bool_cols : str or list of str, optional
        Columns that are each one tag, set where the value is true (missing = not set);
        these tags follow the value tags, in list order.
    tag_descriptions : dict, optional
        Tag value to longer description; tags not in it are described by themselves.
    allow_disambiguation : bool
        A value found in several tag columns becomes ``"column:value"`` in each value
        column. If False such values are an error.
    label_separator : str
        Separator for several label columns.
    label_format_map : str, optional
        ``str.format`` template over the columns, e.g. ``"{cell_type} ({region})"``;
        replaces ``label_col``.
    prepend_col_name : bool
        Write every value tag as ``"column:value"``.
    random_columns : int, optional
        Add this many number properties of uniform random values in [0, 1), drawn
        from numpy's global generator (``np.random.rand``, as nglui does, so a seed set
        with ``np.random.seed`` gives the same values): ``random_column_prefix`` for
        one, ``random_column_prefix_0 .. _{n-1}`` for several. A name that is already a
        column is an error.
    random_column_prefix : str
        Name (prefix) of the random columns.

    Returns
    -------
    dict
        ``{"@type": "neuroglancer_segment_properties", "inline": {"ids": [...],
        "properties": [...]}}``, always serialisable with ``json.dumps(...,
        allow_nan=False)``. Use :func:`segment_properties_json` for the bytes, fast.

    Raises
    ------
    TableError
        A missing column; an id that is missing, negative, boolean, fractional, a float
        (floats cannot hold ids above 2**53 exactly) or not a decimal integer; duplicate
        ids (all are named); a number column that is not numeric, or a value that is
        infinite or beyond float32 range; a random column name already in the table;
        the same tag in several columns with ``allow_disambiguation=False``; a tag
        starting with "#"; two tags that differ only in case (Neuroglancer matches tags
        case-insensitively, so they would be one tag).

    Notes
    -----
    Differences from nglui 4.9, deliberate, where nglui is wrong or fails:

    - **Number types never wrap.** Columns already of a Neuroglancer type (uint8, int8,
      uint16, int16, uint32, int32, float32) keep it, nullable ones included; nglui
      raises on uint8/uint16/uint32. Other integer columns (int64, uint64, Int64, ...)
      become int32 when every value fits (nglui's choice, so output is the same), else
      uint32 when all values are in [0, 2**32), else float32 with a ``UserWarning``
      naming the column (nglui wraps them to int32 silently). Other floats become
      float32. Boolean columns become uint8 0/1 (nglui raises).
    - **Missing numbers are the JSON string "NaN", with data_type float32.**
      Neuroglancer's parser (``parseInlinePropertyMap`` in
      ``src/datasource/precomputed/frontend.ts``) builds each number property with
      ``TypedArray.from(values)``, i.e. JavaScript ``Number(v)`` per element: the string
      ``"NaN"`` becomes NaN, which is Neuroglancer's own marker for a segment without a
      value (it fills merged property maps with NaN), while ``null`` would become 0
      and a bare ``NaN`` (what nglui writes) is not JSON. An integer column with
      missing values (nullable Int64, ...) is therefore stored as float32, with a
      warning if some value is beyond 2**24 and so not exact; nglui raises on it.
    - **Ids are uint64 exactly and unique.** Duplicate ids and non-integer ids raise
      (nglui writes them through, e.g. "7.2e+17" or "nan").
    - **Missing strings are "".** In description and string properties None/NaN/NA
      are written as "" (nglui writes "None" or "nan"). With ``label_format_map`` a
      missing value is formatted as "" too, and every value is formatted with its
      own column's type (nglui formats whole rows, where an int can turn into "3.0").
    - **Nulls are never tags**, also with ``prepend_col_name`` (nglui makes tags like
      "col:None" and "col:nan" there).
    - **Tag descriptions are always strings.** A tag is looked up in
      ``tag_descriptions`` by its text and then by its original value (so ``{3: ...}``
      works for an integer column); nglui writes integer tags' own values, which
      Neuroglancer's parser rejects (it requires an array of strings).
    - **Tag value columns of mixed types** (ints and strings) are ordered by their text
      instead of raising; whitespace other than spaces is also replaced by "_".
    - In the JSON of :func:`segment_properties_json`, float32 values are written with
      the fewest digits (6, else 9) that read back as the same float32, e.g. ``0.1``
      where nglui writes ``0.10000000149011612``; the dictionary holds the same
      float values as nglui's.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "pt_root_id": [720575940621039145, 720575940621039146],
    ...     "cell_type": ["basket cell", "pyramidal"],
    ...     "n_syn": [12, 30],
    ... })
    >>> props = segment_properties(df, label_col="cell_type", number_cols="n_syn",
    ...                            tag_value_cols="cell_type")
    >>> props["inline"]["ids"]
    ['720575940621039145', '720575940621039146']
    >>> [p["type"] for p in props["inline"]["properties"]]
    ['label', 'tags', 'number']
    >>> props["inline"]["properties"][1]["tags"], props["inline"]["properties"][1]["values"]
    (['basket_cell', 'pyramidal'], [[0], [1]])
    """
    return _build(
        df, id_col=id_col, label_col=label_col, description_col=description_col,
        string_cols=string_cols, number_cols=number_cols, tag_value_cols=tag_value_cols,
        tag_bool_cols=tag_bool_cols, tag_descriptions=tag_descriptions,
        allow_disambiguation=allow_disambiguation, label_separator=label_separator,
        label_format_map=label_format_map, prepend_col_name=prepend_col_name,
        random_columns=random_columns, random_column_prefix=random_column_prefix,
    ).to_dict()


def segment_properties_json(df: pd.DataFrame, **kwargs) -> bytearray:
    """The ``info`` file of :func:`segment_properties` as strict JSON (UTF-8).

    Takes the same keywords and validates the same way. Much faster than
    ``json.dumps(segment_properties(df, ...))``: the large arrays are written as text
    straight from numpy (no Python list per column, no per-row loop), and the columns
    are encoded in parallel threads for large tables and appended to one
    ``bytearray`` (a bytes-like object: ``json.loads``, file writes and the Store take
    it as it is; ``bytes(...)`` makes an immutable copy). ``json.loads`` of the result
    equals :func:`segment_properties` except that float32 numbers are written with 6
    significant digits when those read back as the same float32, else with 9 (which
    always do), trailing zeros dropped.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"pt_root_id": [2**63 + 1], "size": [0.1]})
    >>> bytes(segment_properties_json(df, number_cols="size").split(b'"properties":')[1])
    b'[{"id":"size","type":"number","values":[0.1],"data_type":"float32"}]}}'
    """
    return _build(df, **kwargs).to_json()
