"""nglive: a live Neuroglancer viewer in Jupyter with layers bound to pandas DataFrames.

Names are imported on first use, so ``from nglive.formats import ...`` in a script or
a benchmark does not pay for the widget, the viewer and the server.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Viewer": "nglive.widget",
    "Store": "nglive.store",
    "DataServer": "nglive.server",
    "TableError": "nglive.formats.validation",
    "segment_properties": "nglive.formats.segment_properties",
    "segment_properties_json": "nglive.formats.segment_properties",
    "SegmentProperties": "nglive.formats.segment_properties",
    "write_annotations": "nglive.formats.annotations",
    "encode_annotations": "nglive.formats.annotations",
    "AlphaShaper": "nglive.mesh",
    "alpha_shape": "nglive.mesh",
    "mesh_from_groups": "nglive.mesh",
    "MeshLayer": "nglive.layers.meshes",
    "SkeletonLayer": "nglive.layers.skeletons",
    "encode_skeletons": "nglive.formats.skeletons",
    "SegmentPropertiesLayer": "nglive.layers.segment_properties",
    "AnnotationLayer": "nglive.layers.annotations",
    "LocalAnnotationLayer": "nglive.layers.local_annotations",
    "AlphaMeshLayer": "nglive.layers.alpha_meshes",
    "publish_store": "nglive.publish",
    "Published": "nglive.publish",
    "PublishError": "nglive.publish",
    "StaticServer": "nglive.static_server",
}
_SUBMODULES = {"live", "formats", "layers", "mesh", "demo_data", "widget", "store", "server",
               "cave", "publish"}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"nglive.{name}")
    raise AttributeError(f"module 'nglive' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
