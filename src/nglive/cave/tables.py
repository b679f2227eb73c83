"""CAVE materialization tables as live annotation layers (``add_cave_table``).

A table is queried with caveclient (positions split into ``_x/_y/_z`` columns, in the
table's voxel resolution, which becomes the layer's coordinate space — never rescaled),
kept on the layer as ``layer.df`` for the user to edit like any bound table, and encoded
as a precomputed annotation source whose root-id columns are relationships linked to
the datastack's segmentation layer. ``layer.refresh()`` re-queries; ``layer.update_ids()``
rewrites stale root ids. Freshness is checked on every query: ``layer.df["stale"]``
flags rows holding an outdated id and the widget's status line counts them.
"""

from __future__ import annotations

import concurrent.futures
import datetime as _dt
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..formats.annotations.coord_space import as_coord_space
from ..formats.validation import TableError, as_uint64_ids
from ..layers.annotations import AnnotationLayer
from ..layers.base import Binding, frame_fingerprint
from ..layers.segment_properties import SegmentPropertiesLayer, bound_columns
from .credentials import remember_token
from .datastack import datastack_segmentation
from .errors import CaveError, CaveNotFoundError, cave_call, require_caveclient
from .ids import is_current, update_ids

if TYPE_CHECKING:
    from ..widget import Viewer

STALE_COLUMN = "stale"
# Re-queries asked for with wait=False run here, off the kernel thread and off the
# viewer's encoding thread (which they hand their regeneration to).
_queries = concurrent.futures.ThreadPoolExecutor(max_workers=2,
                                                 thread_name_prefix="nglive-cave")


def _when(timestamp):
    if isinstance(timestamp, str) and timestamp == "now":
        return _dt.datetime.now(_dt.timezone.utc)
    if isinstance(timestamp, _dt.datetime) and timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=_dt.timezone.utc)
    return timestamp


def query_table(client, table: str, *, materialization_version: int | None = None,
                timestamp=None, **query_keywords) -> pd.DataFrame:
    """``client.materialize.query_table`` with split positions and errors that say what
    exists; ``df.attrs`` keeps caveclient's metadata (``dataframe_resolution``, the
    materialization version)."""
    require_caveclient()
    mat = client.materialize
    server = getattr(client, "local_server", None)
    if materialization_version is not None and timestamp is not None:
        raise ValueError("give materialization_version or timestamp, not both")
    if materialization_version is not None:
        with cave_call("materialization versions", server=server):
            versions = sorted(int(v) for v in mat.get_versions(expired=True))
        if int(materialization_version) not in versions:
            raise CaveNotFoundError(
                f"datastack {client.datastack_name!r} has no materialization version "
                f"{materialization_version}; available: {versions}")
    elif timestamp is None and getattr(client, "version", None) is None:
        # caveclient remembers the latest version it saw first; a refresh wants today's
        with cave_call("materialization versions", server=server):
            materialization_version = int(mat.most_recent_version())
    when = (f" at version {materialization_version}" if materialization_version is not None
            else f" at {timestamp}" if timestamp is not None else "")
    with cave_call(f"query of table {table!r}{when} in datastack {client.datastack_name!r}",
                   server=server,
                   available=lambda: mat.get_tables(version=materialization_version)):
        df = mat.query_table(table, split_positions=True,
                             materialization_version=materialization_version,
                             timestamp=_when(timestamp), **query_keywords)
    return df


def table_resolution(df: pd.DataFrame, table: str) -> list[float]:
    """The resolution (nm per voxel) the query answered positions in.

    Examples
    --------
    >>> df = pd.DataFrame(); df.attrs["dataframe_resolution"] = [4, 4, 40]
    >>> table_resolution(df, "t")
    [4.0, 4.0, 40.0]
    """
    res = df.attrs.get("dataframe_resolution")
    if isinstance(res, str):
        raise ValueError(f"table {table!r} came back in {res}; query one table at a time "
                         "or pass desired_resolution=[x, y, z]")
    if res is None or len(res) != 3:
        raise ValueError(f"the query of table {table!r} did not say its resolution "
                         f"(df.attrs['dataframe_resolution'] = {res!r}); pass "
                         "desired_resolution=[x, y, z] to choose one")
    return [float(r) for r in res]


def voxel_space(resolution):
    """The annotation coordinate space of a table: x, y, z at its voxel size in nm.

    Examples
    --------
    >>> voxel_space([4, 4, 40]).to_json()
    {'x': [4.0, 'nm'], 'y': [4.0, 'nm'], 'z': [40.0, 'nm']}
    """
    return as_coord_space({a: [float(r), "nm"] for a, r in zip("xyz", resolution,
                                                               strict=True)})


def position_columns(df: pd.DataFrame) -> list[str]:
    """Position column bases with split ``_x/_y/_z`` columns, in table order.

    Examples
    --------
    >>> position_columns(pd.DataFrame(columns=["id", "pt_position_x", "pt_position_y",
    ...                                        "pt_position_z", "size"]))
    ['pt_position']
    """
    cols = set(map(str, df.columns))
    out = []
    for c in map(str, df.columns):
        if c.endswith("_x") and c[:-2].endswith("position"):
            base = c[:-2]
            if {base + "_y", base + "_z"} <= cols:
                out.append(base)
    return out


def root_id_columns(df: pd.DataFrame) -> list[str]:
    """Columns of root ids (``*root_id``), in table order."""
    return [str(c) for c in df.columns if str(c).endswith("root_id")]


def default_positions(df: pd.DataFrame, annotation_type: str, table: str) -> list[str]:
    """The position(s) a point or line layer draws when none is named."""
    have = position_columns(df)
    if annotation_type == "line":
        if {"pre_pt_position", "post_pt_position"} <= set(have):
            return ["pre_pt_position", "post_pt_position"]
        if len(have) >= 2:
            return have[:2]
    else:
        for choice in ("pt_position", "ctr_pt_position"):
            if choice in have:
                return [choice]
        if have:
            return have[:1]
    raise TableError(f"table {table!r} has no{' two' if annotation_type == 'line' else ''} "
                     f"position columns for {annotation_type} annotations; its columns: "
                     f"{list(map(str, df.columns))}", column="position")


def _check_columns(df: pd.DataFrame, table: str, columns, purpose: str) -> None:
    cols = set(map(str, df.columns))
    for col in columns:
        if col not in cols:
            raise TableError(f"table {table!r} has no such column for {purpose}; its "
                             f"columns: {list(map(str, df.columns))}", column=col)


class CaveTableLayer(AnnotationLayer):
    """A CAVE table bound as an annotation layer. Returned by
    :meth:`nglive.Viewer.add_cave_table`.

    ``df`` is the queried table (edit it like any bound table); ``refresh()`` re-queries
    the table (latest version, or ``materialization_version=`` / ``timestamp=``);
    ``update_ids()`` replaces stale root ids; ``stale_ids`` lists the outdated ids found
    by the last freshness check; ``timings`` says where the last query's time went.
    """

    layer_kind = "cave_table"

    def __init__(self, viewer: Viewer, name: str, client, table: str, df: pd.DataFrame,
                 annotation_type: str = "point", *, position=None, segment=None,
                 properties=(), linked_segmentation=None, query_keywords=None,
                 shader: str | None = None, **write_keywords):
        if annotation_type not in ("point", "line"):
            raise ValueError(f"annotation_type must be 'point' or 'line' for a CAVE table, "
                             f"not {annotation_type!r}")
        self.client = client
        self.table = table
        self.query_keywords = dict(query_keywords or {})
        self.timings: dict[str, float] = {}
        # segment properties made by add_segment_properties: {binding: (id_col, keep)}
        self._dependents: dict = {}
        self._dependent_prints: dict = {}
        self.stale_ids = np.zeros(0, np.uint64)
        self.checked_ids = 0
        self.freshness_error: str | None = None
        self.positions = ([position] if isinstance(position, str) else
                          list(position) if position is not None else
                          default_positions(df, annotation_type, table))
        if len(self.positions) != (2 if annotation_type == "line" else 1):
            raise ValueError(f"a {annotation_type} layer needs "
                             f"{'two positions' if annotation_type == 'line' else 'one position'}"
                             f", got position={position!r}")
        self.id_columns = ([segment] if isinstance(segment, str) else list(segment)
                           if segment is not None else root_id_columns(df))
        self.property_columns = [properties] if isinstance(properties, str) else [
            p if isinstance(p, str) else p.get("id") for p in properties]
        self._validate(df)
        space = voxel_space(table_resolution(df, table))
        super().__init__(viewer, name, df, annotation_type, coord_space=space,
                         properties=properties, relationships=self.id_columns,
                         linked_segmentation=linked_segmentation, shader=shader,
                         **write_keywords)
        self.materialization_version = df.attrs.get("materialization_version")
        self.check_freshness()

    # -- the table ------------------------------------------------------------------------

    def _validate(self, df: pd.DataFrame) -> None:
        bases = position_columns(df)
        for base in self.positions:
            if base not in bases:
                raise TableError(f"table {self.table!r} has no position {base!r}; its "
                                 f"positions: {bases}", column=base)
        _check_columns(df, self.table, self.id_columns, "segment ids")
        _check_columns(df, self.table, self.property_columns, "properties")

    def _bound_columns(self) -> list[str]:
        cols = [f"{b}_{a}" for b in self.positions for a in "xyz"]
        cols += self.id_columns + self.property_columns
        if "id" in self.df.columns:
            cols.append("id")
        return list(dict.fromkeys(cols))

    def _fingerprint(self) -> bytes:
        return frame_fingerprint(self.df, self._bound_columns())

    def encoding_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The frame the annotation encoder reads: geometry columns named after the
        coordinate space, string properties as categories, id 0 as "no segment", and the
        table's annotation ids as the index."""
        geometry = (["x", "y", "z"] if self.annotation_type == "point"
                    else ["xa", "ya", "za", "xb", "yb", "zb"])
        sources = [f"{b}_{a}" for b in self.positions for a in "xyz"]
        # plain arrays (not Series) so nothing is aligned on the table's index
        out = {g: df[s].to_numpy() for g, s in zip(geometry, sources, strict=True)}
        for p in self.property_columns:
            col = df[p]
            if isinstance(col.dtype, pd.CategoricalDtype):
                out[p] = col.array
            elif col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
                out[p] = pd.Categorical(col.to_numpy())  # an enum property
            else:
                out[p] = col.to_numpy()
        for r in self.id_columns:
            ids = as_uint64_ids(df[r], column=r)
            out[r] = pd.arrays.IntegerArray(ids, ids == 0)
        index = df.index
        if "id" in df.columns and not df["id"].duplicated().any():
            index = pd.Index(df["id"].to_numpy(), name="id")
        return pd.DataFrame(out, index=index)

    def _snapshot(self):
        t = time.perf_counter()
        frame = self.encoding_frame(self.df)
        self.timings["frame"] = time.perf_counter() - t
        return frame, None

    def _encode(self, snap):
        t = time.perf_counter()
        files = super()._encode(snap)
        self.timings["encode"] = time.perf_counter() - t
        return files

    # -- freshness ------------------------------------------------------------------------

    def check_freshness(self) -> int:
        """Ask the chunkedgraph which root ids of the table are outdated (one
        ``is_latest_roots`` pass over the unique ids of every id column); set
        ``df["stale"]`` and :attr:`stale_ids`. Returns how many distinct ids are stale.

        If the chunkedgraph cannot answer, the table stays bound and the status line
        says freshness is unknown (no row is flagged).
        """
        t = time.perf_counter()
        df = self.df
        columns = [as_uint64_ids(df[c], column=c) for c in self.id_columns]
        self.freshness_error = None
        if columns:
            every = np.concatenate(columns)
            unique = np.unique(every)
            try:
                current = is_current(self.client, unique)
            except CaveError as e:
                self.freshness_error = str(e)
                current = np.ones(len(unique), bool)
            self.stale_ids = unique[~current]
            self.checked_ids = int((unique != 0).sum())
            stale_rows = np.zeros(len(df), bool)
            for ids in columns:
                stale_rows |= np.isin(ids, self.stale_ids)
            df[STALE_COLUMN] = stale_rows
        self.timings["freshness"] = time.perf_counter() - t
        self.viewer._publish_status()
        return len(self.stale_ids)

    def problems(self) -> list[str]:
        out = super().problems()
        if self.freshness_error:
            out.append(f"stale root ids unknown: {self.freshness_error}")
        if len(self.stale_ids):
            out.append(f"{len(self.stale_ids)} of {self.checked_ids} root ids are stale "
                       f"(rows flagged in {self.name}.df['stale']); "
                       f"call update_ids() on the layer to update them")
        return out

    # -- re-querying ----------------------------------------------------------------------

    def refresh(self, materialization_version: int | None = None, *, timestamp=None,
                wait: bool = True, force: bool = False, retry_failed: bool = False):
        """Re-query the table and regenerate the layer.

        Without arguments the latest materialization version is queried; give
        ``materialization_version=`` or ``timestamp=`` (a datetime or ``"now"``, a live
        query) to choose. A failed query keeps the last good layer on screen and shows
        the error in the widget's status line (re-raised with ``wait``). ``force`` /
        ``retry_failed`` regenerate from ``layer.df`` without a query (what edits do).

        Returns the layer's generations with ``wait``, else a Future of them.
        """
        if force or retry_failed:
            return Binding.refresh(self, force=force, wait=wait, retry_failed=retry_failed)
        if wait:
            return self._requery(materialization_version, timestamp)
        return _queries.submit(self._requery, materialization_version, timestamp)

    def _requery(self, materialization_version, timestamp):
        self.updating = True
        self.viewer._publish_status()
        try:
            t = time.perf_counter()
            df = query_table(self.client, self.table,
                             materialization_version=materialization_version,
                             timestamp=timestamp, **self.query_keywords)
            self.timings["query"] = time.perf_counter() - t
            self._validate(df)
            resolution = table_resolution(df, self.table)
        except Exception as e:
            self._fail(e)
            raise
        old = self.df
        self.df = df
        self.coord_space = voxel_space(resolution)  # a table's resolution can't change,
        self.materialization_version = df.attrs.get("materialization_version")  # but be sure
        try:
            self.check_freshness()
        except Exception as e:
            self._fail(e)
            raise
        # a new generation only if the bound columns changed
        generations = Binding.refresh(self, wait=True, retry_failed=True)
        self._follow(old, wait=True)
        return generations

    # -- stale ids ------------------------------------------------------------------------

    def update_ids(self, *, timestamp=None, wait: bool = True) -> pd.DataFrame:
        """Replace stale root ids in ``layer.df`` and regenerate.

        Each id column is updated with :func:`nglive.cave.update_ids` (its supervoxel
        column, when the table has one, gives exact answers); ids nothing current was
        found for are kept (and stay flagged). The ids before the first update are kept
        in ``<column>_old``. Segment properties bound to ``layer.df`` regenerate too.

        Returns the changes: one row per (column, old id) with ``new_id`` and
        ``confidence``.
        """
        df = self.df
        changes = []
        for col in self.id_columns:
            prefix = col[: -len("root_id")]
            sv = prefix + "supervoxel_id" if prefix + "supervoxel_id" in df.columns else False
            result = update_ids(self.client, df, id_col=col, supervoxel_col=sv,
                                timestamp=_when(timestamp))
            replace = result["changed"].to_numpy() & (result["new_id"].to_numpy() != 0)
            if not replace.any():
                continue
            old_col = f"{col}_old"
            if old_col not in df.columns:
                df[old_col] = df[col].copy()
            values = np.where(replace, result["new_id"].to_numpy(),
                              as_uint64_ids(df[col], column=col))
            df[col] = _like(values, df[col])
            moved = result[replace].drop_duplicates(["old_id", "new_id"])
            changes.append(moved.assign(column=col)[["column", "old_id", "new_id",
                                                      "confidence"]])
        self.check_freshness()
        Binding.refresh(self, wait=wait, retry_failed=True)
        self._follow(df, wait=wait)
        if not changes:
            return pd.DataFrame({"column": pd.Series(dtype=str),
                                 "old_id": pd.Series(dtype=np.uint64),
                                 "new_id": pd.Series(dtype=np.uint64),
                                 "confidence": pd.Series(dtype=float)})
        return pd.concat(changes, ignore_index=True)

    def _follow(self, old_df: pd.DataFrame, wait: bool) -> None:
        """Segment properties fed by this table follow it (new rows, new ids): those
        from :meth:`add_segment_properties` get their rows again, and any bound to
        ``layer.df`` itself get the new frame."""
        for binding in list(self.viewer.layers.values()):
            if binding is self or not isinstance(binding, SegmentPropertiesLayer) \
                    or binding.closed:
                continue
            if binding in self._dependents:
                id_col, keep = self._dependents[binding]
                binding.update(self._segment_rows(id_col, keep), wait=wait)
            elif binding.df is old_df or binding.df is self.df:
                binding.update(self.df, wait=wait)
        self._dependent_prints = {b: self._dependent_print(b) for b in self._dependents}

    # -- segment properties -----------------------------------------------------------

    def _segment_rows(self, id_col: str, keep: str) -> pd.DataFrame:
        df = self.df
        ids = as_uint64_ids(df[id_col], column=id_col)
        rows = df[ids != 0]
        return rows[~rows[id_col].duplicated(keep=keep)].copy()

    def _dependent_print(self, binding) -> bytes:
        id_col, _ = self._dependents[binding]
        cols = [id_col, *bound_columns(binding._keywords()), STALE_COLUMN]
        return frame_fingerprint(self.df, list(dict.fromkeys(cols)))

    def add_segment_properties(self, layer: str | None = None, *, id_col: str | None = None,
                               keep: str = "first", wait: bool = True,
                               **keywords) -> SegmentPropertiesLayer:
        """Attach this table's columns as segment properties to a segmentation layer.

        One row per segment: rows with id 0 (no segment) are left out, and of rows
        sharing an id the ``keep="first"`` (or ``"last"``) is used. The ``stale`` column
        is a tag, so outdated ids can be found in the Seg. tab (``#stale``). The
        properties follow the table: edits of ``layer.df``, :meth:`refresh` and
        :meth:`update_ids` regenerate them.

        Parameters
        ----------
        layer : str, optional
            The segmentation layer (the datastack's by default).
        id_col : str, optional
            The id column (``pt_root_id``, or the table's only root-id column).
        **keywords
            :meth:`nglive.Viewer.add_segment_properties` keywords (``label_col``,
            ``tag_value_cols``, ``number_cols``, ``color_col``, ...).

        Returns
        -------
        SegmentPropertiesLayer
        """
        target = layer or datastack_segmentation(self.viewer)
        if target is None:
            raise ValueError("no segmentation layer to attach to: add the datastack first "
                             "(viewer.add_datastack(client)) or name a layer")
        if id_col is None:
            id_col = ("pt_root_id" if "pt_root_id" in self.id_columns
                      else self.id_columns[0] if len(self.id_columns) == 1 else None)
            if id_col is None:
                raise ValueError(f"say which id column holds the segments: id_col= one of "
                                 f"{self.id_columns}")
        _check_columns(self.df, self.table, [id_col], "segment ids")
        if keep not in ("first", "last"):
            raise ValueError(f"keep must be 'first' or 'last', not {keep!r}")
        explicit = {"label_col", "description_col", "string_cols", "number_cols",
                    "tag_value_cols", "tag_bool_cols"} & set(keywords)
        if explicit:
            tags = keywords.get("tag_bool_cols") or []
            tags = [tags] if isinstance(tags, str) else list(tags)
            keywords["tag_bool_cols"] = list(dict.fromkeys([*tags, STALE_COLUMN]))
        binding = self.viewer.add_segment_properties(
            target, self._segment_rows(id_col, keep), id_col=id_col, wait=wait, **keywords)
        self._dependents[binding] = (id_col, keep)
        self._dependent_prints[binding] = self._dependent_print(binding)
        return binding

    def check(self) -> None:
        Binding.refresh(self, wait=False)
        for binding in [b for b in self._dependents if not b.closed]:
            now = self._dependent_print(binding)
            if now != self._dependent_prints.get(binding):  # layer.df was edited
                self._dependent_prints[binding] = now
                id_col, keep = self._dependents[binding]
                binding.update(self._segment_rows(id_col, keep), wait=False)


def _like(values: np.ndarray, column: pd.Series):
    """uint64 ids in the dtype of the column they replace (int64 as caveclient gives)."""
    if column.dtype == np.int64 and (values <= np.iinfo(np.int64).max).all():
        return values.astype(np.int64)
    return values


def add_cave_table(viewer: Viewer, client, table: str, annotation_type: str = "point", *,
                   name: str | None = None, position=None, segment=None, properties=(),
                   materialization_version: int | None = None, timestamp=None,
                   linked_segmentation=None, shader: str | None = None, wait: bool = True,
                   write_keywords: dict | None = None,
                   **query_keywords) -> CaveTableLayer:
    """Query ``table`` and bind it to ``viewer`` as a live annotation layer.

    See :meth:`nglive.Viewer.add_cave_table`.

    Examples
    --------
    >>> syn = add_cave_table(viewer, client, "synapses_pni_2", "line",
    ...                      filter_equal_dict={"post_pt_root_id": root})  # doctest: +SKIP
    >>> syn.df.attrs["dataframe_resolution"]  # doctest: +SKIP
    [4.0, 4.0, 40.0]
    """
    name = name or table
    viewer._check_new_name(name)
    remember_token(client)
    t = time.perf_counter()
    df = query_table(client, table, materialization_version=materialization_version,
                     timestamp=timestamp, **query_keywords)
    query_seconds = time.perf_counter() - t
    if linked_segmentation is None:
        linked_segmentation = datastack_segmentation(viewer)
    segment_columns = ([segment] if isinstance(segment, str) else segment
                       if segment is not None else root_id_columns(df))
    layer = CaveTableLayer(
        viewer, name, client, table, df, annotation_type, position=position,
        segment=segment_columns, properties=properties,
        linked_segmentation=linked_segmentation if segment_columns else None,
        query_keywords=query_keywords, shader=shader, **(write_keywords or {}))
    layer.timings["query"] = query_seconds
    return viewer._bind(layer, wait)
