"""One validation layer for every encoder: errors that name the column, row and value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class TableError(ValueError):
    """Bad input in a table, raised before anything is written.

    The message names the column, the row (the index label) and the offending value,
    and says what is accepted; the same facts are kept as attributes for widgets.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: Any = None,
        value: Any = None,
        accepted: str | None = None,
        partition: int | None = None,
    ):
        # numpy scalars print as np.int64(…); users typed plain numbers
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(row, np.generic):
            row = row.item()
        self.message = message
        self.column = column
        self.row = row
        self.value = value
        self.accepted = accepted
        self.partition = partition  # of a dask DataFrame
        parts = []
        if partition is not None:
            parts.append(f"partition {partition}")
        if column is not None:
            parts.append(f"column {column!r}")
        if row is not None:
            parts.append(f"row {row!r}")
        if value is not None:
            parts.append(f"value {value!r}")
        where = (", ".join(parts) + ": ") if parts else ""
        tail = f" (accepted: {accepted})" if accepted else ""
        super().__init__(f"{where}{message}{tail}")

    def __reduce__(self):
        # keep the facts when pickled (errors raised on Dask workers come back pickled)
        return _table_error, (self.message, self.column, self.row, self.value, self.accepted,
                              self.partition)

    def in_partition(self, partition: int) -> TableError:
        """The same error, saying which partition of a dask DataFrame it is in."""
        return TableError(self.message, column=self.column, row=self.row, value=self.value,
                          accepted=self.accepted, partition=partition)


def _table_error(message, column, row, value, accepted, partition) -> TableError:
    return TableError(message, column=column, row=row, value=value, accepted=accepted,
                      partition=partition)


def require_columns(df: pd.DataFrame, columns, *, purpose: str = "") -> None:
    """Raise a TableError naming the first of ``columns`` that ``df`` lacks."""
    for col in columns:
        if col not in df.columns:
            why = f" for {purpose}" if purpose else ""
            raise TableError(
                f"missing column{why}; the table has {list(map(str, df.columns))}",
                column=col,
            )


def first_bad_row(df: pd.DataFrame, mask: np.ndarray) -> Any:
    """The index label of the first True entry of ``mask`` (a boolean array over rows)."""
    pos = int(np.flatnonzero(mask)[0])
    return df.index[pos]


def as_uint64_ids(values, *, column: str, index=None) -> np.ndarray:
    """Convert ids to uint64 without ever passing through float64.

    Accepts integer dtypes (signed values must be >= 0), uint64, and object/string
    columns of decimal integers. Raises TableError naming the first bad row.
    """
    arr = values.to_numpy() if isinstance(values, pd.Series | pd.Index) else np.asarray(values)
    labels = index if index is not None else (
        values.index if isinstance(values, pd.Series) else pd.RangeIndex(len(arr))
    )

    def fail(mask, why):
        pos = int(np.flatnonzero(mask)[0])
        raise TableError(
            why, column=column, row=labels[pos], value=arr[pos],
            accepted="non-negative integers below 2**64",
        )

    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
        if values.isna().any():
            fail(values.isna().to_numpy(), "missing id")
        if pd.api.types.is_integer_dtype(values.dtype):
            # nullable (Int64) and pyarrow (uint64[pyarrow]) integers alike
            arr = values.to_numpy(dtype=getattr(values.dtype, "numpy_dtype", None)
                                  or str(values.dtype).lower())
        else:
            arr = values.astype(object).to_numpy()
    if arr.dtype == np.uint64:
        return arr
    if len(arr) == 0:  # e.g. a relationship column whose values are all missing
        return np.zeros(0, np.uint64)
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "i" and (arr < 0).any():
            fail(arr < 0, "negative id")
        return arr.astype(np.uint64)
    if arr.dtype.kind == "b":
        fail(np.ones(len(arr), bool), "boolean id")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0)
        if bad.any():
            fail(bad, "non-integer id")
        fail(np.ones(len(arr), bool),
             "float ids lose precision above 2**53; give ids as an integer dtype (uint64)")
    if arr.dtype.kind in "OUS":
        out = np.empty(len(arr), np.uint64)
        for i, v in enumerate(arr):  # object ids are rare; exact conversion matters more
            try:
                if isinstance(v, bool | np.bool_) or v is None:
                    raise ValueError
                if isinstance(v, float | np.floating):
                    raise ValueError
                iv = int(v)
                if iv < 0 or iv >= 2**64 or (isinstance(v, str) and v.strip() != str(iv)):
                    raise ValueError
            except (ValueError, TypeError):
                mask = np.zeros(len(arr), bool)
                mask[i] = True
                negative = isinstance(v, int | np.integer) and not isinstance(v, bool) and v < 0
                fail(mask, "negative id" if negative else "not an integer id")
            out[i] = iv
        return out
    raise TableError(f"unsupported id dtype {arr.dtype}", column=column,
                     accepted="integer dtypes")


def is_unicode(text: str) -> bool:
    """False for text UTF-8 cannot carry (lone surrogates, e.g. from ``surrogateescape``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def first_not_unicode(values) -> int | None:
    """Position of the first value whose text is not valid Unicode (one join when all are;
    values are searched one by one only on failure)."""
    if is_unicode("\x1f".join(map(str, values))):
        return None
    return next(i for i, v in enumerate(values) if not is_unicode(str(v)))
