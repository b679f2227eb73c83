"""CAVE in the loop: datastack layers, materialization tables as live layers, stale root
ids, and sharing through the state server. Needs caveclient (``pip install 'nglive[cave]'``);
nglive imports and works without it.

The Viewer's doors (:meth:`nglive.Viewer.add_datastack`, ``add_cave_table``, ``share``,
``load_state``) call into this package; ``update_ids`` works on any table of root ids.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "add_datastack": "nglive.cave.datastack",
    "datastack_sources": "nglive.cave.datastack",
    "add_cave_table": "nglive.cave.tables",
    "query_table": "nglive.cave.tables",
    "CaveTableLayer": "nglive.cave.tables",
    "update_ids": "nglive.cave.ids",
    "is_current": "nglive.cave.ids",
    "share": "nglive.cave.share",
    "load_state": "nglive.cave.share",
    "SharedLink": "nglive.cave.share",
    "connect": "nglive.cave.connect",
    "CaveError": "nglive.cave.errors",
    "CaveNotFoundError": "nglive.cave.errors",
    "CaveAuthError": "nglive.cave.errors",
    "CaveServerError": "nglive.cave.errors",
    "PropertySizeError": "nglive.cave.errors",
    "NeedsBucketError": "nglive.cave.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nglive.cave' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
