"""nglive: a live Neuroglancer viewer in Jupyter with layers bound to pandas DataFrames."""

from .formats.segment_properties import (
    SegmentProperties,
    segment_properties,
    segment_properties_json,
)
from .formats.validation import TableError
from .layers.meshes import MeshLayer
from .layers.segment_properties import SegmentPropertiesLayer
from .server import DataServer
from .store import Store
from .widget import Viewer

__version__ = "0.1.0"

__all__ = [
    "DataServer",
    "MeshLayer",
    "SegmentProperties",
    "SegmentPropertiesLayer",
    "Store",
    "TableError",
    "Viewer",
    "__version__",
    "segment_properties",
    "segment_properties_json",
]
