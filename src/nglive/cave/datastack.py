"""A CAVE datastack's image and segmentation layers, and the viewer's coordinate space.

The layers are the ones nglui's ``ViewerState().add_layers_from_client(client)`` writes:
``imagery`` from ``client.info.image_source()``, ``segmentation`` from the graphene
source (plus the skeleton source when the datastack has one), every source with its
output dimensions at ``client.info.viewer_resolution()``, which also becomes the viewer's
dimensions. Graphene and skeleton sources get the ``middleauth+`` form: it is what
Spelunker reads, and nglive hands caveclient's token to the embedded client for it
(:mod:`nglive.cave.credentials`), so the same state works in the notebook and in a link.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import neuroglancer
import numpy as np

from .credentials import remember_token
from .errors import cave_call, require_caveclient

if TYPE_CHECKING:
    from ..widget import Viewer

IMAGE_LAYER = "imagery"
SEGMENTATION_LAYER = "segmentation"

# What add_datastack added to each viewer: {"segmentation": name, "server": ..., ...}
_datastacks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def with_middleauth(url: str | None) -> str | None:
    """A CAVE source in the ``middleauth+`` form Spelunker and nglui write.

    Graphene sources get ``middleauth+`` after ``graphene://``; ``graphene://`` image
    sources become ``precomputed://middleauth+``; anything else (public buckets,
    sources that already say ``middleauth+``) is left as it is.

    Examples
    --------
    >>> with_middleauth("graphene://https://minnie.microns-daf.com/segmentation/table/t")
    'graphene://middleauth+https://minnie.microns-daf.com/segmentation/table/t'
    >>> with_middleauth("precomputed://gs://bucket/em")
    'precomputed://gs://bucket/em'
    """
    if not url:
        return url
    if url.startswith(("gs://", "s3://", "http://", "https://")):
        return "precomputed://" + url
    if url.startswith("graphene://") and not url.startswith("graphene://middleauth+"):
        return "graphene://middleauth+" + url[len("graphene://"):]
    return url


def coordinate_space(resolution) -> neuroglancer.CoordinateSpace:
    """x, y, z in nanometres at ``resolution`` (nm per voxel).

    Examples
    --------
    >>> import json; json.dumps(coordinate_space([4, 4, 40]).to_json())
    '{"x": [4e-09, "m"], "y": [4e-09, "m"], "z": [4e-08, "m"]}'
    """
    scales = [float(r) for r in np.asarray(resolution, float).tolist()]
    if len(scales) != 3 or not all(s > 0 for s in scales):
        raise ValueError(f"a resolution needs three positive numbers (nm per voxel), "
                         f"got {list(resolution)}")
    return neuroglancer.CoordinateSpace(names=["x", "y", "z"], units="nm", scales=scales)


def datastack_sources(client) -> dict:
    """The datastack's image, segmentation and skeleton sources and viewer resolution.

    Returns ``{"image": url or None, "segmentation": url or None, "skeletons": url or
    None, "resolution": [x, y, z] nm, "viewer_site": url or None}``.
    """
    require_caveclient()
    name = getattr(client, "datastack_name", None)
    if not name:
        raise ValueError("the CAVEclient has no datastack: create it with "
                         "CAVEclient('<datastack>') (see caveclient's docs)")
    with cave_call(f"info of datastack {name!r}", server=client.server_address):
        info = client.info.get_datastack_info()
        image = client.info.image_source()
        resolution = client.info.viewer_resolution()
    return {
        "image": with_middleauth(image),
        "segmentation": with_middleauth(info.get("segmentation_source")),
        "skeletons": info.get("skeleton_source") or None,
        "resolution": [float(r) for r in resolution],
        "viewer_site": info.get("viewer_site") or None,
    }


def add_datastack(viewer: Viewer, client, *, image: bool | str = True,
                  segmentation: bool | str = True, skeletons: bool = True) -> str | None:
    """Add a datastack's image and graphene segmentation layers to ``viewer``.

    The viewer's dimensions become the datastack's viewer resolution. Returns the
    segmentation layer's name (None without one); CAVE tables added later link to it.
    See :meth:`nglive.Viewer.add_datastack`.

    Examples
    --------
    >>> add_datastack(viewer, CAVEclient("minnie65_public"))  # doctest: +SKIP
    'segmentation'
    """
    sources = datastack_sources(client)
    space = coordinate_space(sources["resolution"])
    remember_token(client)
    image_name = image if isinstance(image, str) else IMAGE_LAYER
    seg_name = segmentation if isinstance(segmentation, str) else SEGMENTATION_LAYER
    if image and sources["image"] is None:
        raise ValueError(f"datastack {client.datastack_name!r} has no image source; "
                         "pass image=False")
    if segmentation and sources["segmentation"] is None:
        raise ValueError(f"datastack {client.datastack_name!r} has no segmentation source; "
                         "pass segmentation=False")
    for name in (image_name if image else None, seg_name if segmentation else None):
        if name is not None and name in viewer.layers:
            raise ValueError(f"a bound layer named {name!r} exists; pass another name, "
                             f"e.g. add_datastack(client, segmentation='cave_seg')")

    def source(url):
        return {"url": url, "transform": {"outputDimensions": space.to_json()}}

    with viewer.txn() as s:
        s.dimensions = space
        if image:
            s.layers[image_name] = neuroglancer.ImageLayer(source=[source(sources["image"])])
        if segmentation:
            seg_sources = [source(sources["segmentation"])]
            if skeletons and sources["skeletons"]:
                seg_sources.append(source(sources["skeletons"]))
            s.layers[seg_name] = neuroglancer.SegmentationLayer(source=seg_sources)
    if segmentation:
        _datastacks[viewer] = {"segmentation": seg_name, "datastack": client.datastack_name,
                               "viewer_site": sources["viewer_site"]}
    return seg_name if segmentation else None


def datastack_segmentation(viewer: Viewer) -> str | None:
    """The segmentation layer :func:`add_datastack` added to ``viewer``, if still there."""
    entry = _datastacks.get(viewer)
    if entry is None or entry["segmentation"] not in viewer.state.layers:
        return None
    return entry["segmentation"]
