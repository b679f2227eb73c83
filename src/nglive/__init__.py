"""nglive: a live Neuroglancer viewer in Jupyter with layers bound to pandas DataFrames."""

__version__ = "0.1.0"
