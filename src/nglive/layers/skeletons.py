"""A segmentation layer of skeletons from node tables (or navis neurons), bound live."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..formats.skeletons import DEFAULT_ATTRIBUTES, NODE_COLUMNS, node_table
from ..formats.units import nm_per_coordinate
from ..formats.validation import as_uint64_ids
from .base import BoundSource, frame_fingerprint
from .segment_properties import PropertiesBinding
from .skeleton_cache import SkeletonCache

if TYPE_CHECKING:
    from ..widget import Viewer


def _is_navis(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "navis"


def _nm_per_unit(neuron) -> float | None:
    """Nanometres per coordinate of a navis neuron, or None if it has no length unit."""
    units = getattr(neuron, "units", None)
    try:
        return float(units.to("nm").magnitude)
    except Exception:  # None, dimensionless or not a length: coordinates as they are
        return None


def _neurons(neurons) -> list:
    import navis

    return [neurons] if isinstance(neurons, navis.BaseNeuron) else list(neurons)


def navis_table(neurons, id_col: str = "skeleton_id", columns=None) -> pd.DataFrame:
    """One node table from navis neurons, coordinates and radii in nm when they have units.

    Each neuron's rows keep their index (error messages name the row of its ``nodes``).
    ``columns`` (of the neurons' node tables) limits what is copied.
    """
    neurons = _neurons(neurons)
    for n in neurons:
        if not hasattr(n, "nodes"):
            raise TypeError(f"{type(n).__name__} {getattr(n, 'id', '')} has no node table; "
                            "skeletons need navis TreeNeurons")
    if not neurons:
        return node_table({}, id_col=id_col)
    frames = [n.nodes if columns is None else n.nodes[[c for c in columns if c in n.nodes]]
              for n in neurons]
    table = pd.concat(frames)
    # ids and unit scales per neuron, repeated per node: no per-neuron DataFrame copies
    sizes = [len(f) for f in frames]
    table[id_col] = np.repeat(_id_array([n.id for n in neurons]), sizes)
    scales = np.array([_nm_per_unit(n) or 1.0 for n in neurons])
    if (scales != 1.0).any():
        per_node = np.repeat(scales, sizes)
        for c in ("x", "y", "z", "radius"):
            if c in table.columns:
                table[c] = table[c].to_numpy(np.float64) * per_node
    return table


def _id_array(ids: list) -> np.ndarray:
    """Neuron ids as uint64 when they all are non-negative ints, else as given (objects:
    the encoder names a bad one)."""
    if all(isinstance(v, int | np.integer) and 0 <= v < 2**64 for v in ids):
        return np.array(ids, np.uint64)
    out = np.empty(len(ids), object)
    out[:] = ids
    return out


def read_nodes(nodes):
    """SWC paths are read once, with navis; anything else is bound as given."""
    if isinstance(nodes, str | os.PathLike) or (
            isinstance(nodes, list | tuple) and nodes
            and all(isinstance(p, str | os.PathLike) for p in nodes)):
        import navis

        return navis.read_swc(nodes if isinstance(nodes, str | os.PathLike)
                              else [str(p) for p in nodes])
    return nodes


def as_node_table(nodes, id_col: str, columns=None) -> pd.DataFrame:
    """A node table from a table, a dict ``{id: table}``, or navis neurons."""
    if _is_navis(nodes):
        return navis_table(nodes, id_col, columns)
    if isinstance(nodes, Mapping) and any(_is_navis(v) for v in nodes.values()):
        # {id: TreeNeuron}: the dict's keys are the skeleton ids
        return pd.concat([navis_table(n, id_col, columns).assign(**{id_col: k})
                          for k, n in nodes.items()])
    return node_table(nodes, id_col=id_col)


def _hash_nodes(h, table: pd.DataFrame, cols) -> None:
    """Feed the bound columns of one node table to ``h``: raw arrays, categorical codes
    (pandas' per-column hashing costs ~0.2 ms a call, too much for 1k neurons a cell)."""
    present = [c for c in cols if c in table.columns]
    h.update(repr((present, len(table))).encode())
    h.update(np.ascontiguousarray(table.index.to_numpy()).tobytes()
             if table.index.dtype != object else repr(table.index.tolist()).encode())
    for c in present:
        s = table[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            h.update(repr(list(s.cat.categories)).encode())
            h.update(np.ascontiguousarray(s.cat.codes.to_numpy()).tobytes())
        elif s.dtype == object or isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
            h.update(pd.util.hash_pandas_object(s, index=False).to_numpy().tobytes())
        else:
            h.update(str(s.dtype).encode())
            h.update(np.ascontiguousarray(s.to_numpy()).view(np.uint8).tobytes())


def skeleton_shader(attribute: str, lo: float, hi: float) -> str:
    """A skeleton shader colouring by ``attribute`` with the jet colormap over [lo, hi]."""
    span = hi - lo if hi > lo else 1.0
    return (
        "void main() {\n"
        f"  emitRGB(colormapJet(clamp((float({attribute}) - ({lo!r})) / ({span!r}), "
        "0.0, 1.0)));\n"
        "}\n"
    )


class SkeletonLayer(PropertiesBinding):
    """A segmentation layer drawing skeletons from node tables, with segment properties.

    Returned by :meth:`nglive.Viewer.add_skeletons`. Edit the node table (or
    ``layer.df``, the properties) in place and the viewer regenerates after the cell,
    or call :meth:`update`. A new generation of the skeleton source re-encodes only
    the skeletons whose rows changed (per-skeleton digests); the others' files are
    reused.
    """

    layer_kind = "skeletons"

    def __init__(
        self,
        viewer: Viewer,
        name: str,
        nodes,
        properties: pd.DataFrame | None = None,
        *,
        id_col: str = "skeleton_id",
        vertex_attributes=DEFAULT_ATTRIBUTES,
        several_roots: bool | None = None,
        coord_space="xyz",
        color_by: str | None = None,
        label_col: str | None = None,
        color_col: str | None = None,
        visible_col: str | None = None,
        **property_keywords,
    ):
        super().__init__(viewer, name)
        nodes = read_nodes(nodes)
        navis_input = _is_navis(nodes) or (
            isinstance(nodes, Mapping) and any(_is_navis(v) for v in nodes.values()))
        if navis_input and coord_space != "xyz":
            raise ValueError("navis neurons carry their own units (drawn in nm); "
                             "coord_space applies to node tables only")
        self.nodes = nodes
        self.node_id_col = id_col
        self.vertex_attributes = tuple(vertex_attributes)
        # navis models fragmented neurons as several roots; tables must be one tree each
        self.several_roots = navis_input if several_roots is None else several_roots
        self.color_by = color_by
        self.nm_per_coordinate = nm_per_coordinate(coord_space)
        self.df = None
        self._ids: list[str] = []
        self._color_range: tuple[float, float] | None = None
        self._cache = SkeletonCache()
        self._bounds = None
        self.sources["skeleton"] = BoundSource(
            "skeleton",
            fingerprint=self._fingerprint,
            snapshot=self._snapshot,
            encode=self._encode,
        )
        if properties is None and navis_input:
            properties, label_col = self._navis_properties(nodes), label_col or "name"
        if properties is not None:
            self.bind_properties(properties, id_col=id_col, label_col=label_col,
                                 color_col=color_col, visible_col=visible_col,
                                 **property_keywords)

    def _navis_properties(self, nodes) -> pd.DataFrame:
        items = (nodes.items() if isinstance(nodes, Mapping)
                 else ((n.id, n) for n in _neurons(nodes)))
        rows = [(k, str(getattr(n, "name", None) or k), len(n.nodes)) for k, n in items]
        return pd.DataFrame(rows, columns=[self.node_id_col, "name", "n_nodes"])

    def _fingerprint(self) -> bytes:
        # the post-cell check: hash each neuron's or table's columns where they are,
        # without building the combined table (1k navis neurons: ~1.5 s to concatenate)
        nodes, cols = self.nodes, self._columns()
        if isinstance(nodes, pd.DataFrame):
            return frame_fingerprint(nodes, cols)
        items = (nodes.items() if isinstance(nodes, Mapping)
                 else ((n.id, n) for n in _neurons(nodes)) if _is_navis(nodes) else None)
        if items is None:
            return frame_fingerprint(self._table(), cols)
        h = hashlib.blake2b(digest_size=16)
        for key, part in items:
            # (not navis' ``units``: parsing it costs ~1 ms a neuron; a change of units
            # alone is picked up by ``update()``)
            table = part.nodes if hasattr(part, "nodes") else part
            h.update(repr((key, type(table).__name__)).encode())
            if isinstance(table, pd.DataFrame):
                _hash_nodes(h, table, cols)
            else:
                h.update(repr(table).encode())
        return h.digest()

    def _table(self) -> pd.DataFrame:
        return as_node_table(self.nodes, self.node_id_col, self._columns())

    def _columns(self) -> list[str]:
        return [self.node_id_col, *NODE_COLUMNS, *self.vertex_attributes]

    def _snapshot(self) -> pd.DataFrame:
        table = self._table()
        return table[[c for c in self._columns() if c in table.columns]].copy()

    def _encode(self, table: pd.DataFrame) -> dict[str, bytes]:
        # only skeletons whose rows changed are validated and encoded again
        files = self._cache.encode(
            table, id_col=self.node_id_col, key=(tuple(table.columns), self.several_roots),
            vertex_attributes=self.vertex_attributes,
            transform=np.hstack([np.diag(self.nm_per_coordinate), np.zeros((3, 1))]),
            several_roots=self.several_roots,
            as_float=True)  # the bundled client draws no integer attributes
        xyz = table[["x", "y", "z"]].to_numpy(np.float64) * self.nm_per_coordinate
        self._bounds = (xyz.min(axis=0), xyz.max(axis=0)) if len(xyz) else None
        ids = as_uint64_ids(table[self.node_id_col], column=self.node_id_col)
        self._ids = [str(i) for i in np.unique(ids).tolist()]
        if self.color_by:
            if self.color_by not in table.columns:
                raise ValueError(f"color_by={self.color_by!r} is not a vertex attribute of "
                                 f"the nodes; they have {list(table.columns)}")
            values = pd.to_numeric(table[self.color_by], errors="coerce").to_numpy(float)
            finite = values[np.isfinite(values)]
            self._color_range = ((float(finite.min()), float(finite.max())) if len(finite)
                                 else (0.0, 1.0))
        return files

    def update(self, df: pd.DataFrame | None = None, *, nodes=None, force: bool = False,
               wait: bool = True):
        """Regenerate from new or edited data.

        Parameters
        ----------
        df : DataFrame, optional
            A new properties table (else the bound one, re-read).
        nodes : optional
            New node tables or neurons (else the bound ones, re-read).
        force : bool
            Regenerate every source, changed or not (by default only what changed).
        wait : bool
            Block until the viewer has the new data and re-raise any error.
        """
        if df is not None:
            if "properties" in self.sources:
                self.df = df
            else:
                self.bind_properties(df, id_col=self.node_id_col)
        if nodes is not None:
            self.nodes = read_nodes(nodes)
        return self.refresh(force=force, retry_failed=True, wait=wait)

    def view_bounds(self):
        return self._bounds  # of the nodes last encoded (not converted again)

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        state = {"type": "segmentation", "source": [urls["skeleton"]]}
        if "properties" in urls:
            state["source"].append(urls["properties"])
        segments = self._visible_segments(self._ids, first)
        if segments is not None:
            state["segments"] = segments
        if self.color_by and self._color_range is not None:
            state["skeletonRendering"] = {
                "shader": skeleton_shader(self.color_by, *self._color_range)}
        state.update(self.state_parts.get("display", {}))
        return state
