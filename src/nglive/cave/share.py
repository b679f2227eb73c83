"""What the viewer shows, as a link anyone with CAVE access can open (``share``), and back
(``load_state``).

The kernel's data server goes away with the kernel, so a shared state may not point at
it. Each bound layer travels the way CAVE users share things today:

- segment properties: uploaded to the datastack's state server
  (``client.state.upload_property_json``, at most 2.5 MB of JSON) and read back by
  Neuroglancer from ``precomputed://middleauth+…/nglstate/api/v1/property/{id}``;
- annotation layers of up to ``local_limit`` rows (10,000 by default: a few MB of state
  JSON, which the state server and Spelunker handle well): local annotations inside the
  state, with their properties and relationships;
- anything else (meshes, alpha meshes, bigger annotation layers, properties over the
  limit): published to a bucket with ``viewer.publish(publish_to, ...)``; without
  ``publish_to`` the call names those layers and says how.

Layers nglive does not bind (the datastack's image and segmentation) go as they are.
The state is uploaded with ``client.state.upload_state_json`` and the link is built for
the datastack's viewer site (Spelunker by default).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import TYPE_CHECKING

import neuroglancer
import numpy as np

from ..formats.annotations.columns import read_table
from ..layers.annotations import AnnotationLayer
from ..layers.local_annotations import LocalAnnotationLayer
from ..layers.segment_properties import SegmentPropertiesLayer
from .credentials import remember_token
from .errors import CaveError, NeedsBucketError, PropertySizeError, cave_call, require_caveclient

if TYPE_CHECKING:
    from ..widget import Viewer

LOCAL_ANNOTATION_LIMIT = 10_000
PROPERTY_LIMIT = 2_500_000  # bytes of JSON the state server takes (caveclient's max_size)
SPELUNKER = "https://spelunker.cave-explorer.org"
_GEOMETRY = {"point": ("point",), "line": ("pointA", "pointB"),
             "axis_aligned_bounding_box": ("pointA", "pointB"),
             "ellipsoid": ("center", "radii")}


class SharedLink(str):
    """The link ``share`` returns (a ``str``), with what was uploaded.

    Attributes: ``state_id``, ``state`` (the uploaded JSON), ``property_ids``
    (``{layer: state-server id}``), ``published`` (the ``Published`` of a bucket, if any).
    """

    state_id: int
    state: dict
    property_ids: dict
    published: object

    def _repr_html_(self) -> str:
        return f'<a href="{self}" target="_blank">{self}</a>'


def state_source(link_or_id) -> int | str:
    """The state id (or the state JSON's URL) a share link or id names.

    Examples
    --------
    >>> state_source(42)
    42
    >>> state_source("https://spelunker.cave-explorer.org/#!middleauth+"
    ...              "https://global.daf-apis.com/nglstate/api/v1/5724")
    'https://global.daf-apis.com/nglstate/api/v1/5724'
    >>> state_source("https://ngl.example/?json_url=https://global.daf-apis.com/nglstate/17")
    'https://global.daf-apis.com/nglstate/17'
    """
    if isinstance(link_or_id, int | np.integer):
        return int(link_or_id)
    text = str(link_or_id).strip()
    if text.isdigit():
        return int(text)
    m = re.search(r"(https?://[^\s#?&]+/nglstate/(?:api/v1/)?(?:raw/)?\d+)", text)
    if m is None:
        raise ValueError(f"{link_or_id!r} is neither a state id nor a link to a CAVE state "
                         "(…/nglstate/api/v1/<id>)")
    return m.group(1)


def kernel_markers(viewer: Viewer) -> list[str]:
    """Strings that only a URL of this kernel's servers contains."""
    marks = [viewer.server.token, viewer.ng.token, "python://"]
    for url in (viewer.server.server_url, viewer.server_url):
        if url:
            marks.append(url.rstrip("/"))
    return [m for m in marks if m]


def check_no_kernel_urls(viewer: Viewer, state: dict) -> None:
    """Raise if any layer of ``state`` points at this kernel's servers."""
    marks = kernel_markers(viewer)
    bad = [layer.get("name") for layer in state.get("layers", [])
           if any(m in json.dumps(layer) for m in marks)]
    rest = {k: v for k, v in state.items() if k != "layers"}
    if bad or any(m in json.dumps(rest) for m in marks):
        raise CaveError(f"layers {bad} point at this kernel's server, which a colleague "
                        "cannot reach; remove them or publish them "
                        "(viewer.share(client, publish_to='gs://bucket/path'))")


def _color_hex(values: np.ndarray) -> list[str]:
    return ["#" + bytes(row).hex() for row in values]


def local_annotation_layer(layer: AnnotationLayer, layer_json: dict) -> dict:
    """``layer_json`` with its precomputed source replaced by local annotations holding
    every row, with properties and relationships (what Neuroglancer's JSON carries)."""
    frame = layer.encoding_frame(layer.df) if hasattr(layer, "encoding_frame") else layer.df
    table = read_table(frame, layer.coord_space, layer.annotation_type, layer.properties,
                       layer.relationships, layer.polyline_points)
    n = len(table)
    kind = table.annotation_type
    ids = [str(i) for i in table.ids.tolist()]
    if kind == "polyline":
        off = table.vertex_offsets
        verts = table.geometry.tolist()
        geometry = [{"points": verts[off[i]:off[i + 1]]} for i in range(n)]
    else:
        keys = _GEOMETRY[kind]
        rank = table.space.rank
        parts = [table.geometry[:, j * rank:(j + 1) * rank].tolist() for j in range(len(keys))]
        geometry = [{k: parts[j][i] for j, k in enumerate(keys)} for i in range(n)]
    props = []
    for p in table.properties:
        if p.type in ("rgb", "rgba"):
            props.append(_color_hex(p.values))
        elif p.type == "float32" and not np.isfinite(p.values).all():
            # JSON has no NaN: a missing value travels as null
            props.append([v if np.isfinite(v) else None for v in p.values.tolist()])
        else:
            props.append(p.values.tolist())
    segments = []
    for r in table.relationships:
        split = np.split(r.values, r.offsets[1:-1]) if n else []
        segments.append([[str(s) for s in part.tolist()] for part in split])
    annotations = []
    for i in range(n):
        a = {"type": kind, "id": ids[i], **geometry[i]}
        if props:
            a["props"] = [values[i] for values in props]
        if segments:
            a["segments"] = [rel[i] for rel in segments]
        annotations.append(a)
    out = {k: v for k, v in layer_json.items() if k != "source"}
    out["type"] = "annotation"
    out["source"] = {"url": "local://annotations", "transform": {
        "outputDimensions": neuroglancer.CoordinateSpace(
            names=list(table.space.names), units=list(table.space.units),
            scales=list(table.space.scales)).to_json()}}
    out["annotationProperties"] = [p.spec for p in table.properties]
    out["annotationRelationships"] = [r.name for r in table.relationships]
    out["annotations"] = annotations
    return out


def _properties_json(viewer: Viewer, layer: SegmentPropertiesLayer) -> dict:
    key = f"{layer.prefix}/properties/{layer.generations['properties']}/info"
    data = viewer.store.read(key)
    if data is None:
        raise CaveError(f"layer {layer.name!r}: its segment properties are gone from the "
                        "store; call its update() and share again")
    return json.loads(bytes(data))


def _own_source(viewer: Viewer, layer, source) -> bool:
    url = source if isinstance(source, str) else source.get("url", "")
    return f"/{viewer.server.token}/{layer.prefix}/" in url


def _sources(layer_json: dict) -> list:
    src = layer_json.get("source")
    if src is None:
        return []
    return [src] if isinstance(src, str | dict) else list(src)


def share(viewer: Viewer, client, *, site: str | None = None, publish_to=None,
          publish_url: str | None = None,
          local_limit: int = LOCAL_ANNOTATION_LIMIT) -> SharedLink:
    """Upload what ``viewer`` shows to the datastack's state server; return a link.

    See :meth:`nglive.Viewer.share`.

    Examples
    --------
    >>> link = share(viewer, client)  # doctest: +SKIP
    >>> link  # doctest: +SKIP
    'https://spelunker.cave-explorer.org/#!middleauth+https://global.daf-apis.com/nglstate/api/v1/...'
    """
    require_caveclient()
    remember_token(client)
    for layer in list(viewer.layers.values()):
        with contextlib.suppress(Exception):  # a failed edit keeps its last good data
            layer.wait()  # share what the last edit produced
    state = viewer.state.to_json()
    layers = list(state.get("layers", []))
    plan: dict[str, str] = {}
    property_docs: dict[str, dict] = {}
    for lj in layers:
        binding = viewer.layers.get(lj.get("name"))
        if binding is None or isinstance(binding, LocalAnnotationLayer):
            continue
        if isinstance(binding, SegmentPropertiesLayer):
            doc = _properties_json(viewer, binding)
            size = len(json.dumps(doc).encode())
            if size <= PROPERTY_LIMIT:
                plan[binding.name], property_docs[binding.name] = "state server", doc
            elif publish_to is not None:
                plan[binding.name] = "bucket"
            else:
                raise PropertySizeError(
                    f"segment properties of layer {binding.name!r} are {size / 1e6:.1f} MB "
                    f"of JSON; the CAVE state server takes at most {PROPERTY_LIMIT / 1e6} MB. "
                    "Publish them to a bucket: viewer.share(client, publish_to='gs://bucket/"
                    "path'), or bind fewer rows or columns")
        elif isinstance(binding, AnnotationLayer) and binding.df is not None and \
                len(binding.df) <= local_limit:
            plan[binding.name] = "local"
        else:
            plan[binding.name] = "bucket"
    bucket = [name for name, how in plan.items() if how == "bucket"]
    if bucket and publish_to is None:
        raise NeedsBucketError(
            f"layers {bucket} need a bucket to be shared (meshes, or annotation layers over "
            f"{local_limit} rows, or properties over {PROPERTY_LIMIT / 1e6} MB); pass "
            "publish_to='gs://bucket/path' (or s3://…, with publish_url= for other "
            "destinations) to publish them with viewer.publish, or remove them "
            "(viewer.remove_layer(name))")
    published = None
    if bucket:
        published = viewer.publish(publish_to, layers=bucket, url=publish_url)
        public = {lj["name"]: lj for lj in published.state.get("layers", [])}
    property_ids = {}
    with cave_call("upload of segment properties to the state server",
                   server=client.server_address):
        for name, doc in property_docs.items():
            property_ids[name] = client.state.upload_property_json(doc)
    shared_layers = []
    for lj in layers:
        name = lj.get("name")
        how = plan.get(name)
        binding = viewer.layers.get(name)
        if how == "bucket":
            lj = public[name]
        elif how == "local":
            lj = local_annotation_layer(binding, lj)
        elif how == "state server":
            url = client.state.build_neuroglancer_url(property_ids[name], target_site="spelunker",
                                                      format_properties=True)
            lj = dict(lj)
            lj["source"] = [s for s in _sources(lj) if not _own_source(viewer, binding, s)]
            lj["source"].append(url)
        shared_layers.append(lj)
    state["layers"] = shared_layers
    check_no_kernel_urls(viewer, state)
    with cave_call("upload of the state to the state server", server=client.server_address):
        state_id = client.state.upload_state_json(state)
        ngl_url = _site(client, site)
        link = SharedLink(client.state.build_neuroglancer_url(
            state_id, ngl_url=ngl_url, target_site="spelunker"))
    link.state_id, link.state, link.property_ids, link.published = (
        state_id, state, property_ids, published)
    return link


def _site(client, site: str | None) -> str:
    """The viewer site of the link: the datastack's (Spelunker if it names none)."""
    if site is None:
        site = client.info.viewer_site() or SPELUNKER
    elif site == "spelunker":
        site = SPELUNKER
    return site.rstrip("/")


def load_state(viewer: Viewer, client, link_or_id) -> dict:
    """Open a shared state (a link or a state id) in ``viewer``; return its JSON.

    See :meth:`nglive.Viewer.load_state`.

    Examples
    --------
    >>> state = load_state(viewer, client, link)  # doctest: +SKIP
    """
    require_caveclient()
    source = state_source(link_or_id)
    with cave_call(f"state {source}", server=client.server_address):
        state = client.state.get_state_json(source)
    if not isinstance(state, dict) or "layers" not in state:
        raise CaveError(f"state {source} is not a Neuroglancer state (no 'layers')")
    remember_token(client)
    incoming = {layer.get("name") for layer in state["layers"]}
    for name in [n for n in viewer.layers if n in incoming]:
        viewer.remove_layer(name)  # the shared layer takes the name
    viewer.ng.set_state(neuroglancer.ViewerState(state))
    for layer in list(viewer.layers.values()):
        if layer.generations or layer.state_parts:
            layer.apply()  # bound layers the shared state does not have stay on screen
    return state
