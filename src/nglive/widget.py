"""The Viewer: an anywidget embedding Neuroglancer, with layers bound to DataFrames."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

import anywidget
import neuroglancer
import numpy as np
import pandas as pd
import traitlets
from ipywidgets.widgets import widget as _ipywidget

from . import live, server_security
from .layers.alpha_meshes import AlphaMeshLayer
from .layers.annotations import AnnotationLayer
from .layers.base import Binding
from .layers.local_annotations import LocalAnnotationLayer
from .layers.meshes import MeshLayer
from .layers.segment_properties import SegmentPropertiesLayer
from .layers.skeletons import SkeletonLayer
from .lifecycle import UNDISPLAYED, ViewerResources, weak_method
from .server import DataServer
from .store import Store


def _front_end_file(name: str) -> Path:
    here = Path(__file__).parent
    for candidate in (here / "js" / name, here.parents[1] / "js" / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"nglive front-end file {name} is missing from the installation")


class Viewer(anywidget.AnyWidget):
    """A live Neuroglancer viewer in the notebook, with layers bound to tables.

    The viewer's client and its data are served by one in-kernel HTTP server. The
    browser side works out how to reach it (directly on a local machine, through
    jupyter-server-proxy on Binder/JupyterHub, through Colab's port proxy) and tells
    Python, which writes layer sources with that address.

    Parameters
    ----------
    store : Store or str, optional
        Where generated data lives: a :class:`Store`, a path/URL for one, or None for
        an in-memory store.
    height : str
        CSS height of the viewer (the widget can also be resized by dragging).
    connection : {"auto", "direct", "proxy", "colab"}
        How the browser reaches the kernel's server; "auto" decides in the browser.
    layout : str
        Neuroglancer layout ("xy-3d", "3d", "4panel", ...).
    log_requests : bool
        Keep a log of served data requests (``viewer.server.requests``).

    Examples
    --------
    >>> import nglive, trimesh, pandas as pd
    >>> v = nglive.Viewer()
    >>> df = pd.DataFrame({"segment_id": [1], "name": ["box"], "size": [2.0]})
    >>> layer = v.add_meshes("shapes", {1: trimesh.creation.box()}, df, label_col="name")
    >>> layer.generations
    {'mesh': 0, 'properties': 0}
    """

    # The text, not the path: for a path anywidget connects a file watcher to every
    # instance, a strong reference that kept each viewer alive for the whole session.
    _esm = _front_end_file("widget.js").read_text(encoding="utf-8")
    _css = _front_end_file("widget.css").read_text(encoding="utf-8")

    port = traitlets.Int(0).tag(sync=True)
    viewer_path = traitlets.Unicode("").tag(sync=True)
    direct_url = traitlets.Unicode("").tag(sync=True)
    connection = traitlets.Unicode("auto").tag(sync=True)
    height = traitlets.Unicode("600px").tag(sync=True)
    status = traitlets.Dict().tag(sync=True)
    # Set by the browser once it knows how to reach the server ("" until then).
    server_url = traitlets.Unicode("").tag(sync=True)
    # The origin of the page showing the widget (the Jupyter page), set by the browser.
    page_origin = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        height: str = "600px",
        connection: str = "auto",
        layout: str = "xy-3d",
        log_requests: bool = False,
    ):
        if connection not in ("auto", "direct", "proxy", "colab"):
            raise ValueError(
                f"connection={connection!r}; accepted: 'auto', 'direct', 'proxy', 'colab'"
            )
        owns_store = not isinstance(store, Store)
        self.store = Store(store) if owns_store else store
        self.server = DataServer(self.store, log_requests=log_requests)
        self.ng = neuroglancer.Viewer()
        self.layers: dict[str, Binding] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="nglive-encode"
        )
        self._status_lock = threading.Lock()
        self._last_error: str | None = None
        self._prefixes: set[str] = set()
        self._views: set[str] = set()
        self._kernel_loop = _kernel_loop()
        self._closed = False
        self._resources = ViewerResources(self.store, owns_store, self.server, self.ng.token,
                                          self._executor)
        # Released when the viewer is freed, even if close() is never called.
        self._finalizer = weakref.finalize(self, self._resources.release)
        super().__init__(
            port=self.server.port,
            viewer_path=f"/v/{self.ng.token}/",
            direct_url=self.server.server_url,
            connection=connection,
            height=height,
        )
        with self.ng.txn() as s:
            s.dimensions = neuroglancer.CoordinateSpace(
                names=["x", "y", "z"], units="nm", scales=[1, 1, 1]
            )
            s.layout = layout
        live.register(self)
        self.on_msg(self._on_front_end_message)
        self._publish_status()

    # -- lifetime (see nglive.lifecycle) -------------------------------------------------------

    @traitlets.observe("comm")
    def _comm_changed(self, change) -> None:
        # Replaces ipywidgets' handler: the comm calls back through a weak reference and
        # the widget registry holds the viewer only while it is displayed (_pin).
        if change["new"] is None:
            return
        self._model_id = self.model_id
        self.comm.on_msg(weak_method(self._handle_msg))

    def _pin(self) -> None:
        if self.comm is not None:
            _ipywidget._instances[self.model_id] = self

    def _unpin(self) -> None:
        if self.comm is not None and _ipywidget._instances.get(self.model_id) is self:
            del _ipywidget._instances[self.model_id]

    def _repr_mimebundle_(self, **kwargs):
        self._pin()  # displayed: the front-end may render it at any time from now on
        return super()._repr_mimebundle_(**kwargs)

    def _on_front_end_message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict) or "nglive_view" not in content:
            return
        view = str(content["nglive_view"])
        if content.get("open"):
            self._views.add(view)
            UNDISPLAYED.discard(self)
            self._pin()
            return
        self._views.discard(view)
        if not self._views:
            # No output shows it any more: keep it only while something refers to it
            # (checked soon, and after later cells: the reference may go later).
            self._unpin()
            UNDISPLAYED.add(self, self._kernel_loop)

    # -- public API ------------------------------------------------------------------------

    @property
    def state(self) -> neuroglancer.ViewerState:
        """The current Neuroglancer state (a copy; change it with :meth:`txn`)."""
        return self.ng.state

    def txn(self):
        """Context manager to change the Neuroglancer state atomically."""
        return self.ng.txn()

    @property
    def url(self) -> str:
        """The direct URL of this viewer (open it in a browser tab on this machine)."""
        return self.ng.get_viewer_url()

    def add_meshes(
        self,
        name: str,
        meshes: Mapping,
        properties: pd.DataFrame | None = None,
        *,
        id_col: str = "segment_id",
        label_col: str | None = None,
        color_col: str | None = None,
        visible_col: str | None = None,
        coord_space="xyz",
        format: str = "legacy",
        wait: bool = True,
        **property_keywords,
    ) -> MeshLayer:
        """Add a segmentation layer of meshes with segment properties from a table.

        Parameters
        ----------
        name : str
            Layer name.
        meshes : mapping
            ``{segment id: trimesh.Trimesh or (vertices, faces)}``, vertices in
            ``coord_space`` units (nm by default).
        properties : DataFrame, optional
            One row per segment: ``id_col``, a label column and numeric columns
            (numbers) and boolean columns (tags) by default; any keyword of
            :func:`nglive.segment_properties` chooses columns explicitly.
        id_col, label_col : str
            The id and label columns of ``properties``.
        color_col, visible_col : str, optional
            Columns of colours and booleans driving segment colours and visibility.
        coord_space
            Units and scales of the vertices, e.g. ``{"x": [8, "nm"], ...}`` for
            8 nm voxels; meshes are drawn in nm.
        format : {"legacy", "multires"}
            ``"legacy"`` sends each mesh whole; ``"multires"`` writes Neuroglancer's
            multi-resolution format (levels of detail by quadric decimation, Draco
            fragments): the viewer loads coarse levels first and detail where it looks.
            Multires costs about 10 s of encoding per million faces (only edited
            meshes are re-encoded) and pays off for large meshes viewed zoomed out,
            over slow links and in publications (about 8x fewer bytes).
        wait : bool
            Block until the first generation is written.

        Returns
        -------
        MeshLayer
            Call ``layer.update()`` after changes, or edit ``layer.df`` in place and
            let the post-cell check regenerate.
        """
        self._check_new_name(name)
        layer = MeshLayer(
            self, name, meshes, properties, id_col=id_col, label_col=label_col,
            color_col=color_col, visible_col=visible_col, coord_space=coord_space,
            format=format, **property_keywords,
        )
        return self._bind(layer, wait)

    def add_skeletons(
        self,
        name: str,
        nodes,
        properties: pd.DataFrame | None = None,
        *,
        id_col: str = "skeleton_id",
        vertex_attributes=("radius", "type"),
        several_roots: bool | None = None,
        coord_space="xyz",
        color_by: str | None = None,
        label_col: str | None = None,
        color_col: str | None = None,
        visible_col: str | None = None,
        wait: bool = True,
        **property_keywords,
    ) -> SkeletonLayer:
        """Add a segmentation layer of skeletons drawn from node tables, live.

        Parameters
        ----------
        name : str
            Layer name.
        nodes
            A node table (``id_col``, ``node_id``, ``parent_id`` (-1 or missing at the
            root), ``x, y, z`` and attribute columns), a dict ``{skeleton id: node
            table}``, navis ``TreeNeuron``/``NeuronList`` (coordinates converted to nm
            by their units), or SWC paths (read once, with navis).
        properties : DataFrame, optional
            One row per skeleton, keyed by ``id_col``: segment properties (labels,
            numbers, tags) as in :meth:`add_meshes`. navis neurons get their names.
        vertex_attributes
            Node columns written as per-vertex attributes (the defaults when present).
        several_roots : bool, optional
            Accept skeletons of several trees; by default only for navis neurons.
        coord_space
            Units and scales of the table's coordinates (nm by default).
        color_by : str, optional
            A vertex attribute (e.g. ``"radius"``) that colours the skeletons (jet
            colormap over its range).
        label_col, color_col, visible_col
            Columns of ``properties`` as in :meth:`add_meshes`.
        wait : bool
            Block until the first generation is written.

        Returns
        -------
        SkeletonLayer
            Edit the node table or ``layer.df`` in place and let the post-cell check
            regenerate, or call ``layer.update()``.
        """
        self._check_new_name(name)
        layer = SkeletonLayer(
            self, name, nodes, properties, id_col=id_col,
            vertex_attributes=vertex_attributes, several_roots=several_roots,
            coord_space=coord_space, color_by=color_by, label_col=label_col,
            color_col=color_col, visible_col=visible_col, **property_keywords,
        )
        return self._bind(layer, wait)

    def add_annotations(
        self,
        name: str,
        df: pd.DataFrame,
        annotation_type: str = "point",
        *,
        properties=(),
        relationships=(),
        coord_space="xyz",
        linked_segmentation: str | dict | None = None,
        polyline_points: pd.DataFrame | None = None,
        shader: str | None = None,
        wait: bool = True,
        **write_keywords,
    ) -> AnnotationLayer:
        """Add an annotation layer whose precomputed source is generated from ``df``, live.

        Parameters
        ----------
        name : str
            Layer name.
        df : DataFrame
            One row per annotation, indexed by annotation id; geometry columns named
            after ``coord_space`` (``x, y, z`` for points; ``xa … zb`` for lines and
            boxes; ``x … rz`` for ellipsoids). See :func:`nglive.write_annotations`.
        annotation_type : str
            "point", "line", "axis_aligned_bounding_box", "ellipsoid" or "polyline".
        properties, relationships
            Columns written as annotation properties and as related segment ids.
        coord_space
            "xyz", names, a dict or a ``neuroglancer.CoordinateSpace`` (units and
            scales of the coordinates in ``df``).
        linked_segmentation : str or dict, optional
            A segmentation layer name (linked through every relationship) or
            ``{relationship: layer name}``; selecting segments there filters these
            annotations.
        shader : str, optional
            Annotation shader; by default an rgb/rgba property sets the colour.
        **write_keywords
            Passed to the encoder (``write_sharded``, ``target_chunk_limit``, ...). By
            default every table is written sharded (a few shard files, fastest to
            regenerate at any size); ``write_sharded=False`` gives one file per key.
        """
        self._check_new_name(name)
        layer = AnnotationLayer(
            self, name, df, annotation_type, coord_space=coord_space, properties=properties,
            relationships=relationships, linked_segmentation=linked_segmentation,
            polyline_points=polyline_points, shader=shader, **write_keywords)
        return self._bind(layer, wait)

    def add_alpha_mesh(
        self,
        name: str,
        points_df: pd.DataFrame,
        group_col: str | None = None,
        alpha="auto",
        *,
        coord_space="xyz",
        fill_cavities: bool = False,
        repair: bool = True,
        format: str = "legacy",
        wait: bool = True,
    ) -> AlphaMeshLayer:
        """Add alpha-shape meshes of point groups, re-meshed live as the points change.

        Parameters
        ----------
        name : str
            Layer name.
        points_df : DataFrame
            Points with one column per ``coord_space`` name (``x, y, z``), and
            ``group_col`` if given. A local annotation layer bound to the same table
            (:meth:`add_local_annotations`) lets points be clicked in the viewer.
        group_col : str, optional
            One mesh (segment) per distinct value; without it, one mesh of all points.
        alpha : float, "auto", "optimal" or dict
            Initial alpha per group ("auto": the tracertools rule; "optimal": the
            smallest alpha giving one valid volume containing every point).
        coord_space
            Units and scales of the coordinates (meshes are drawn in nm).
        fill_cavities, repair : bool
            Fill sealed pockets; grow the shape around non-manifold spots so each mesh
            is a valid volume.
        format : {"legacy", "multires"}
            As in :meth:`add_meshes`.

        Returns
        -------
        AlphaMeshLayer
            ``set_alpha(group, alpha)``, ``reports()``, ``pin()`` and ``tuner()``.
        """
        self._check_new_name(name)
        layer = AlphaMeshLayer(self, name, points_df, group_col=group_col, alpha=alpha,
                               coord_space=coord_space, fill_cavities=fill_cavities,
                               repair=repair, format=format)
        return self._bind(layer, wait)

    def add_local_annotations(
        self,
        name: str,
        df: pd.DataFrame,
        annotation_type: str = "point",
        *,
        coord_space="xyz",
        defaults: dict | None = None,
        wait: bool = True,
    ) -> LocalAnnotationLayer:
        """Add editable annotations kept in the viewer state, synced both ways with ``df``.

        Points added, moved or deleted in Neuroglancer change the rows of ``df`` (new
        rows get the next integer id); edits of ``df`` show in the viewer after the
        cell. Geometry columns as in :meth:`add_annotations`. ``defaults`` gives values
        for the other columns of rows added in the viewer (e.g. ``{"region": "LH"}``);
        without one, integer and boolean columns become nullable so ids stay exact.
        Meant for small sets (hundreds to a few thousand annotations); use
        :meth:`add_annotations` for tables.
        """
        self._check_new_name(name)
        layer = LocalAnnotationLayer(self, name, df, annotation_type, coord_space=coord_space,
                                     defaults=defaults)
        return self._bind(layer, wait)

    def _check_layers(self) -> None:
        for layer in list(self.layers.values()):
            layer.check()

    def add_segment_properties(
        self,
        name_or_layer: str | Binding,
        df: pd.DataFrame,
        *,
        source: str | list | None = None,
        id_col: str = "pt_root_id",
        label_col: str | None = None,
        color_col: str | None = None,
        visible_col: str | None = None,
        wait: bool = True,
        **keywords,
    ) -> Binding:
        """Attach segment properties from ``df`` to a segmentation layer, live.

        Parameters
        ----------
        name_or_layer : str or MeshLayer
            A layer of this viewer: an nglive mesh layer (its properties are re-bound),
            or any segmentation layer in the Neuroglancer state (e.g. a CAVE
            ``graphene://`` or ``precomputed://`` segmentation), to which the
            properties are added as an extra data source. A new name needs ``source``.
        df : DataFrame
            One row per segment.
        source : str or list, optional
            Data source(s) of a new segmentation layer called ``name_or_layer``.
        id_col, label_col : str
            Id and label columns (nglui's defaults).
        color_col : str, optional
            Colours ('#rrggbb', '#rgb' or CSS names) that drive ``segmentColors``.
        visible_col : str, optional
            Booleans that choose the visible ``segments``.
        **keywords
            Any keyword of :func:`nglive.segment_properties` (``tag_value_cols``,
            ``number_cols``, ...).

        Returns
        -------
        Binding
            The layer handle; ``update()`` regenerates, in-place edits are noticed
            after each cell.
        """
        target = name_or_layer.name if isinstance(name_or_layer, Binding) else name_or_layer
        bound = self.layers.get(target)
        if isinstance(bound, MeshLayer):
            bound.bind_properties(df, id_col=id_col, label_col=label_col, color_col=color_col,
                                  visible_col=visible_col, **keywords)
            bound.refresh(force=True, wait=wait)
            return bound
        if bound is not None:
            raise ValueError(f"layer {target!r} is already bound to a table; use its update()")
        existing = self._layer_json(target)
        if existing is None and source is None:
            raise ValueError(
                f"no layer named {target!r} in the viewer; pass source= (e.g. "
                "'precomputed://gs://…' or a CAVE 'graphene://…' URL) to create one"
            )
        if existing is not None and existing.get("type") != "segmentation":
            raise ValueError(f"layer {target!r} is a {existing.get('type')!r} layer, "
                             "segment properties need a segmentation layer")
        layer = SegmentPropertiesLayer(
            self, target, df, source=source if existing is None else None, id_col=id_col,
            label_col=label_col, color_col=color_col, visible_col=visible_col, **keywords)
        return self._bind(layer, wait)

    # -- CAVE (nglive.cave; needs the [cave] extra) ----------------------------------------

    def add_datastack(self, client, *, image: bool | str = True, segmentation: bool | str = True,
                      skeletons: bool = True) -> str | None:
        """Add a CAVE datastack's image and graphene segmentation layers.

        The layers nglui's ``ViewerState().add_layers_from_client(client)`` writes
        (``imagery``, ``segmentation`` with the skeleton source if the datastack has
        one), in the live viewer; the viewer's dimensions become
        ``client.info.viewer_resolution()``. Graphene sources use the ``middleauth+``
        form, read with ``client``'s token.

        Parameters
        ----------
        client : caveclient.CAVEclient
            A client of the datastack (``CAVEclient("minnie65_public")``).
        image, segmentation : bool or str
            Add the layer (a string names it).
        skeletons : bool
            Add the datastack's skeleton source to the segmentation layer.

        Returns
        -------
        str or None
            The segmentation layer's name: CAVE tables link to it, and
            :meth:`add_segment_properties` attaches tables to it.
        """
        from .cave.datastack import add_datastack

        return add_datastack(self, client, image=image, segmentation=segmentation,
                             skeletons=skeletons)

    def add_cave_table(self, client, table: str, annotation_type: str = "point", *,
                       name: str | None = None, position=None, segment=None, properties=(),
                       materialization_version: int | None = None, timestamp=None,
                       linked_segmentation: str | dict | None = None,
                       shader: str | None = None, wait: bool = True,
                       write_keywords: dict | None = None, **query_keywords):
        """Query a CAVE table and bind it as a live annotation layer.

        Positions keep the table's voxel resolution, declared as the layer's coordinate
        space. Root-id columns become relationships linked to the datastack's
        segmentation layer, and are checked for freshness: ``layer.df["stale"]`` flags
        rows with outdated ids and the status line counts them.

        Parameters
        ----------
        client : caveclient.CAVEclient
            A client of the datastack.
        table : str
            The table (``client.materialize.get_tables()`` lists them).
        annotation_type : {"point", "line"}
            Points at ``position``, or lines between two positions (by default
            ``pre_pt_position`` → ``post_pt_position`` for synapses).
        name : str, optional
            Layer name (the table's by default).
        position : str or (str, str), optional
            Position column(s) without ``_x/_y/_z``: ``"pt_position"`` by default,
            ``"ctr_pt_position"`` for synapse points; ``"pre_pt_position"`` /
            ``"post_pt_position"`` are the other synapse choices.
        segment : str or list, optional
            Root-id columns to relate annotations to (every ``*root_id`` by default).
        properties : list
            Columns written as annotation properties (strings become enums).
        materialization_version, timestamp
            Query a version, or the state at a time (a live query); latest by default.
        linked_segmentation : str or dict, optional
            The segmentation layer to link (the one :meth:`add_datastack` added).
        write_keywords : dict, optional
            Encoder keywords, as :meth:`add_annotations` takes them.
        **query_keywords
            Passed to ``client.materialize.query_table``: ``filter_in_dict``,
            ``filter_equal_dict``, ``filter_spatial_dict``, ``select_columns``, ``limit``,
            ``desired_resolution``, ...

        Returns
        -------
        nglive.cave.CaveTableLayer
            ``.df`` (edit it like any bound table), ``.refresh(materialization_version=
            None, timestamp=None)``, ``.update_ids()``, ``.stale_ids``.
        """
        from .cave.tables import add_cave_table

        return add_cave_table(
            self, client, table, annotation_type, name=name, position=position,
            segment=segment, properties=properties,
            materialization_version=materialization_version, timestamp=timestamp,
            linked_segmentation=linked_segmentation, shader=shader, wait=wait,
            write_keywords=write_keywords, **query_keywords)

    def share(self, client, *, site: str | None = None, publish_to=None,
              publish_url: str | None = None, local_limit: int = 10_000):
        """Upload what the viewer shows to the datastack's state server; return a link.

        Segment properties go up with ``client.state.upload_property_json``; annotation
        layers of up to 10,000 rows become local annotations in the state; meshes and
        bigger layers are published to ``publish_to`` (see :meth:`publish`) — without
        it the call names them and says how. Nothing in the shared state points at
        this kernel.

        Parameters
        ----------
        client : caveclient.CAVEclient
            A client of the datastack (its state server stores the state).
        site : str, optional
            Viewer site of the link: the datastack's (Spelunker) by default.
        publish_to : str, optional
            A bucket or directory for layers that cannot travel inside a state.
        publish_url : str, optional
            The public URL of ``publish_to`` when it cannot be derived (directories).
        local_limit : int
            Annotation layers up to this many rows travel inside the state.

        Returns
        -------
        nglive.cave.SharedLink
            The link (a ``str``), with ``state_id`` and the uploaded ``state``.
        """
        from .cave.share import share

        return share(self, client, site=site, publish_to=publish_to,
                     publish_url=publish_url, local_limit=local_limit)

    def load_state(self, client, link_or_id) -> dict:
        """Open a shared state (a CAVE link or state id) in this viewer.

        Bound layers the state also names are replaced by the state's; others stay.
        Returns the state's JSON.
        """
        from .cave.share import load_state

        return load_state(self, client, link_or_id)

    def _bind(self, layer: Binding, wait: bool) -> Binding:
        self.layers[layer.name] = layer
        try:
            layer.refresh(force=True, wait=wait)
        except Exception:
            del self.layers[layer.name]
            layer.close()
            self._publish_status()
            raise
        return layer

    def _layer_json(self, name: str) -> dict | None:
        state = self.ng.state
        if name not in state.layers:
            return None
        return state.layers[name].layer.to_json()

    def remove_layer(self, name: str) -> None:
        """Remove a bound layer from the viewer and delete its data now.

        An update of the layer still under way is dropped: it neither brings the layer
        back nor leaves data behind.
        """
        layer = self.layers.pop(name)
        layer.close()
        with self.ng.txn() as s:
            if name in s.layers:
                del s.layers[name]
        self._publish_status()

    def publish(self, dest, *, layers=None, url: str | None = None,
                site: str = "https://neuroglancer-demo.appspot.com/", compress: bool = False,
                **options):
        """Publish the bound layers to a directory or bucket; returns a ``Published``.

        Copies the current generation of every bound source (or of ``layers``) to
        ``{layer}/{source}/`` under ``dest`` and returns the state that shows them from
        ``url`` (derived for ``gs://``/``s3://``, required for a directory), with
        ``.url(site)`` and ``.write_state(path)``. Publishing again writes only what
        changed. See :func:`nglive.publish_store` for every option.
        """
        from .publish import publish_store

        return publish_store(self, dest, layers=layers, url=url, site=site,
                             compress=compress, **options)

    def close(self) -> None:
        """Stop serving and syncing this viewer and free what it holds.

        Its Neuroglancer page and data URLs stop answering, its encoding thread ends and
        the data it generated is deleted (a :class:`Store` you passed in keeps its data).
        A viewer that is neither displayed nor referenced is closed by itself.
        """
        if getattr(self, "_closed", True):
            return
        self._closed = True
        live.unregister(self)
        for layer in list(self.layers.values()):
            layer.close(delete=False)
        self.layers.clear()
        self._views.clear()
        self._resources.release()
        super().close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the viewer was freed)."""
        return self._closed

    def wait(self, timeout: float | None = 60) -> None:
        """Block until every queued layer update has finished."""
        if self._closed:
            return
        self._executor.submit(lambda: None).result(timeout)

    # -- used by bindings --------------------------------------------------------------------

    def _check_new_name(self, name: str) -> None:
        if self._closed:
            raise RuntimeError("this viewer is closed; create a new nglive.Viewer()")
        if not isinstance(name, str) or not name:
            raise ValueError(f"layer name must be a non-empty string, got {name!r}")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"layer name {name!r} is not valid Unicode (a lone surrogate); "
                             "Neuroglancer's state cannot carry it") from None
        if name in self.layers:
            raise ValueError(
                f"a bound layer named {name!r} exists; use its update() or remove_layer()"
            )

    def _prefix_for(self, name: str) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "layer"
        prefix, i = slug, 1
        while prefix in self._prefixes:
            i += 1
            prefix = f"{slug}-{i}"
        self._prefixes.add(prefix)
        return prefix

    def _data_url(self, path: str) -> str:
        return self.server.url_for(path, server_url=self.server_url or None)

    def _set_layer(self, name: str, make: Callable[[bool], dict], bounds=None) -> None:
        with self.ng.txn() as s:
            if name in s.layers:
                # keep what the user changed in the viewer (colours, selection, shader)
                merged = s.layers[name].layer.to_json()
                merged.update(make(False))
                s.layers[name] = neuroglancer.viewer_state.make_layer(merged)
                return
            first_layer = len(s.layers) == 0
            s.layers[name] = neuroglancer.viewer_state.make_layer(make(True))
            if first_layer and bounds is not None:
                _fit_view(s, *bounds)

    @traitlets.observe("page_origin")
    def _page_origin_changed(self, change) -> None:
        if change["new"]:
            server_security.allow(change["new"])  # CORS for the Jupyter page

    @traitlets.observe("server_url")
    def _server_url_changed(self, change) -> None:
        if change["new"]:
            server_security.allow(change["new"])  # the host and origin the browser uses
        # The browser found another way to the server: rewrite every source URL, then
        # say so in the status (the front-end waits for that before loading the client,
        # so the client never starts on addresses it cannot reach).
        def rewrite():
            for layer in list(self.layers.values()):
                if layer.generations:
                    layer.apply()
            self._publish_status()

        if not self._closed:
            self._executor.submit(rewrite)

    def _note_error(self, layer: Binding, error: BaseException, tb: str) -> None:
        self._last_error = f"{layer.name}: {type(error).__name__}: {error}"
        self._publish_status()

    def _publish_status(self) -> None:
        with self._status_lock:
            layers = []
            for layer in self.layers.values():
                layers.append({
                    "name": layer.name,
                    "kind": layer.layer_kind,
                    "generations": dict(layer.generations),
                    "updated": _clock(layer.updated),
                    "updating": layer.updating,
                    "error": "; ".join(layer.problems()) or None,
                })
            errors = [la["error"] for la in layers if la["error"]]
            with contextlib.suppress(Exception):  # the comm may be closed
                self.status = {
                    "layers": layers,
                    "error": f"{errors[-1]}" if errors else None,
                    "server": self.server_url or self.server.server_url,
                }


def _kernel_loop():
    """The running event loop when made in a kernel's cell (its main thread), else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _fit_view(state: neuroglancer.ViewerState, lo, hi) -> None:
    """Centre the view on a bounding box (in nm) and zoom so all of it is visible."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    extent = float(max((hi - lo).max(), 1.0))
    state.position = ((lo + hi) / 2).tolist()
    state.projection_scale = extent * 1.5
    state.cross_section_scale = extent / 500


def _clock(t: float | None) -> str | None:
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(t).strftime("%H:%M:%S")
