"""Viewer lifetimes: what a viewer holds, released when it is closed, dropped or undisplayed.

A notebook session re-runs cells, clears outputs and re-creates viewers for hours, so a
viewer must not outlive its use. ipywidgets keeps every widget in a registry and its
comm holds the widget's message handler, which would keep a viewer (its Store, its
encoding thread and its Neuroglancer page) alive forever. nglive's Viewer holds itself
in that registry only while the front-end displays it; otherwise only real references
keep it. When the last view goes away, a viewer that only IPython's output history
(``Out``, ``_``) still refers to is collected. Whatever frees a viewer — :meth:`close`,
garbage collection, interpreter exit — runs :meth:`ViewerResources.release` once.
"""

from __future__ import annotations

import concurrent.futures
import gc
import re
import threading
import weakref

import neuroglancer.server

__all__ = ["ViewerResources", "collect_if_abandoned", "weak_method"]

_CACHE_NAME = re.compile(r"^_+$|^_\d+$")


class ViewerResources:
    """What a viewer owns outside itself; :meth:`release` frees it all, once.

    It holds no reference to the viewer, so a ``weakref.finalize`` on the viewer can
    release it after the viewer is gone.
    """

    def __init__(self, store, owns_store: bool, server, ng_token: str,
                 executor: concurrent.futures.ThreadPoolExecutor):
        self.store = store
        self.owns_store = owns_store
        self.server = server
        self.ng_token = ng_token
        self.executor = executor
        self._lock = threading.Lock()
        self.released = False

    def release(self) -> None:
        """Stop serving, unregister the Neuroglancer page, end the thread, free the data."""
        with self._lock:
            if self.released:
                return
            self.released = True
        self.server.close()
        ng_server = neuroglancer.server.global_server
        if ng_server is not None:
            # neuroglancer keeps viewers weakly, but a closed one may still be referenced
            # (by a layer handle, by Out[n]): its page must stop answering now.
            ng_server.viewers.pop(self.ng_token, None)
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.owns_store:  # a Store passed in by the user is theirs and stays usable
            self.store.close(delete=True)


def weak_method(method):
    """A callable that calls the bound ``method`` while its object lives (else nothing)."""
    ref = weakref.WeakMethod(method)

    def call(*args, **kwargs):
        m = ref()
        if m is not None:
            return m(*args, **kwargs)
        return None

    return call


def collect_if_abandoned(viewer_ref: weakref.ref) -> bool:
    """Collect an undisplayed viewer that only IPython's output history refers to.

    ``Out[n]``, ``_n``, ``_``, ``__`` and ``___`` entries of the viewer are taken out and
    the garbage collector run: if the viewer is gone, nothing else used it (its
    finalizer has released it); if not, something does and the entries are put back.
    Returns whether the viewer was collected.
    """
    viewer = viewer_ref()
    if viewer is None:
        return True
    # (holder, key, is a mapping): what to put back if the viewer is still used
    removed: list[tuple[object, object, bool]] = []
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        shell = None
    if shell is not None:
        ns = shell.user_ns
        # the displayhook pushes _, __, ___ and _N into both namespaces
        for space in (ns, getattr(shell, "user_ns_hidden", {})):
            for name in [k for k, v in list(space.items())
                         if v is viewer and isinstance(k, str) and _CACHE_NAME.match(k)]:
                del space[name]
                removed.append((space, name, True))
        out = ns.get("_oh")
        if isinstance(out, dict):
            for n in [k for k, v in list(out.items()) if v is viewer]:
                del out[n]
                removed.append((out, n, True))
        hook = getattr(shell, "displayhook", None)
        for attr in ("_", "__", "___"):
            if hook is not None and getattr(hook, attr, None) is viewer:
                setattr(hook, attr, "")
                removed.append((hook, attr, False))
    del viewer
    gc.collect()
    viewer = viewer_ref()
    if viewer is None:
        return True
    for holder, key, is_mapping in removed:
        if is_mapping:
            holder[key] = viewer
        else:
            setattr(holder, key, viewer)
    return False
