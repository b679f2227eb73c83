"""nglive: a live Neuroglancer viewer in Jupyter with layers bound to pandas DataFrames."""

from .formats.validation import TableError
from .layers.meshes import MeshLayer
from .server import DataServer
from .store import Store
from .widget import Viewer

__version__ = "0.1.0"

__all__ = ["DataServer", "MeshLayer", "Store", "TableError", "Viewer", "__version__"]
