"""Bindings: one module per bound layer kind, over the shared machinery in ``base``."""
