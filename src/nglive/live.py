"""After every notebook cell, let bound layers notice in-place edits of their tables."""

from __future__ import annotations

import weakref

_viewers: weakref.WeakSet = weakref.WeakSet()
_hooked = False


def _after_cell(result=None) -> None:
    viewer = None
    for viewer in list(_viewers):
        for layer in list(viewer.layers.values()):
            try:
                layer.check()
            except Exception:  # noqa: BLE001 — shown in the widget; never break the cell
                pass
    del viewer
    # viewers whose outputs went while something still held them: freed once nothing
    # does (rate-limited: each check is a garbage collection)
    from .lifecycle import UNDISPLAYED

    UNDISPLAYED.check()


def register(viewer) -> None:
    """Watch ``viewer``'s layers after each cell (a no-op outside IPython)."""
    global _hooked
    _viewers.add(viewer)
    if _hooked:
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    ip.events.register("post_run_cell", _after_cell)
    _hooked = True


def unregister(viewer) -> None:
    """Stop watching ``viewer``."""
    _viewers.discard(viewer)


def check_all() -> None:
    """Run the post-cell check now (what IPython does after every cell)."""
    _after_cell()
