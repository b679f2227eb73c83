"""Precomputed annotation sources from DataFrames: ``encode_annotations``, ``write_annotations``."""

from .writer import encode_annotations, write_annotations

__all__ = ["encode_annotations", "write_annotations"]
