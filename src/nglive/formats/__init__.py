"""Pure encoders from DataFrames and arrays to Neuroglancer's precomputed formats."""
