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
import time
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


def collect_if_abandoned(*viewer_refs: weakref.ref) -> int:
    """Collect undisplayed viewers that only IPython's output history refers to.

    Their ``Out[n]``, ``_n``, ``_``, ``__`` and ``___`` entries are taken out and the
    garbage collector run once: a viewer that is gone was used by nothing else (its
    finalizer released it); for one that survives, something does and its entries are
    put back. Returns how many were collected.
    """
    pairs = [(r, r()) for r in viewer_refs]
    viewers = [v for _, v in pairs if v is not None]
    if not viewers:
        return len(viewer_refs)
    ids = {id(v): r for r, v in pairs if v is not None}
    del pairs
    # (holder, key, is a mapping, the viewer's weakref): what to put back if still used
    removed: list[tuple[object, object, bool, weakref.ref]] = []
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
                         if id(v) in ids and isinstance(k, str) and _CACHE_NAME.match(k)]:
                removed.append((space, name, True, ids[id(space.pop(name))]))
        out = ns.get("_oh")
        if isinstance(out, dict):
            for n in [k for k, v in list(out.items()) if id(v) in ids]:
                removed.append((out, n, True, ids[id(out.pop(n))]))
        hook = getattr(shell, "displayhook", None)
        for attr in ("_", "__", "___"):
            if hook is not None and id(getattr(hook, attr, None)) in ids:
                removed.append((hook, attr, False, ids[id(getattr(hook, attr))]))
                setattr(hook, attr, "")
    del viewers
    gc.collect()
    for holder, key, is_mapping, ref in removed:
        viewer = ref()
        if viewer is None:
            continue
        if is_mapping:
            holder[key] = viewer
        else:
            setattr(holder, key, viewer)
    return sum(r() is None for r in viewer_refs)


class Undisplayed:
    """Viewers that were displayed and no longer are, checked until they go or show again.

    Checks run on the kernel's main thread, never two at once (each holds the viewers it
    checks): a few times soon after a view goes (:attr:`retries`; a re-run cell removes
    its old output while it runs, before its name is re-bound), after the next cell,
    then after cells at most every :attr:`interval` seconds (each check is a garbage
    collection).
    """

    interval = 5.0
    retries = (0.3, 1.5, 4.0)

    def __init__(self):
        self._viewers: weakref.WeakSet = weakref.WeakSet()
        self._last = 0.0
        self._fresh = False
        self._lock = threading.Lock()

    def add(self, viewer, loop=None) -> None:
        """Watch ``viewer``; ``loop``: the kernel's event loop, to check on it soon."""
        self._viewers.add(viewer)
        self._fresh = True
        # a few times: a reference may be in flight at first (the cell that replaced
        # the output still finishing, the message handler's frames)
        for delay in self.retries:
            if loop is not None and loop.is_running():
                # callbacks on the kernel's loop run on its thread, between statements
                loop.call_soon_threadsafe(loop.call_later, delay, self._check_now)
            else:  # no kernel (a script, the tests): a short-lived thread
                timer = threading.Timer(delay, self._check_now)
                timer.name = "nglive-collect"
                timer.daemon = True
                timer.start()

    def _check_now(self) -> None:
        self.check(force=True)

    def discard(self, viewer) -> None:
        self._viewers.discard(viewer)

    def check(self, *, force: bool = False) -> int:
        """Collect the ones nothing refers to any more; return how many went."""
        now = time.monotonic()
        due = force or self._fresh or now - self._last >= self.interval
        if not self._viewers or not due or not self._lock.acquire(blocking=False):
            return 0
        try:
            self._last, self._fresh = now, False
            refs = [weakref.ref(v) for v in list(self._viewers)]
            return collect_if_abandoned(*refs)
        finally:
            self._lock.release()


UNDISPLAYED = Undisplayed()
