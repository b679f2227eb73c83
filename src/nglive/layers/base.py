"""The base binding: snapshot bound data, encode off the kernel thread, switch generations."""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..widget import Viewer


@dataclass
class BoundSource:
    """One data source of a layer, regenerated as a whole when its inputs change.

    ``fingerprint`` is cheap and runs in the kernel thread after every cell;
    ``snapshot`` copies what ``encode`` needs (kernel thread, so later edits can't
    tear it); ``encode`` is pure and runs on the worker thread.
    ``fingerprint_snapshot``, when given, fingerprints a snapshot (the same digest
    ``fingerprint`` gives for the data it copied), so the fingerprint recorded for a
    generation describes exactly what was encoded, even if the table changed between
    the check and the copy.
    """

    key: str
    fingerprint: Callable[[], bytes]
    snapshot: Callable[[], Any]
    encode: Callable[[Any], dict]
    # False for sources that only change the layer's state (colours, visible segments):
    # ``encode`` then returns layer-state JSON instead of files, and nothing is written.
    writes_files: bool = True
    last_fingerprint: bytes | None = None
    # The inputs of the last failed encode: not retried after every cell until edited.
    failed_fingerprint: bytes | None = None
    fingerprint_snapshot: Callable[[Any], bytes] | None = None

    def take_snapshot(self, fingerprint: bytes) -> tuple[Any, bytes]:
        """A snapshot and the fingerprint of exactly what it holds.

        Without ``fingerprint_snapshot``, the inputs are fingerprinted again after the
        copy and the copy retried if they changed meanwhile.
        """
        if self.fingerprint_snapshot is not None:
            snap = self.snapshot()
            return snap, self.fingerprint_snapshot(snap)
        for _ in range(3):
            snap = self.snapshot()
            after = self.fingerprint()
            if after == fingerprint:
                break
            fingerprint = after
        return snap, fingerprint


def frame_fingerprint(df: pd.DataFrame | None, columns=None) -> bytes:
    """A content hash of ``df`` restricted to ``columns`` (and its index).

    Hashing only the bound columns, one column at a time (no copy of the frame), keeps
    the post-cell check at a few ms per 100k rows.
    """
    if df is None:
        return b"none"
    cols = [c for c in (columns if columns is not None else df.columns) if c in df.columns]
    h = hashlib.blake2b(digest_size=16)
    series = []
    for col in cols:
        s = df[col]
        if isinstance(s, pd.DataFrame):  # a repeated column name: each of them, in order
            series.extend(s.iloc[:, i] for i in range(s.shape[1]))
        else:
            series.append(s)
    h.update(repr((list(map(str, cols)), [str(s.dtype) for s in series])).encode())
    index = df.index
    if isinstance(index, pd.RangeIndex):  # the common case: three numbers say it all
        h.update(repr(("range", index.start, index.stop, index.step)).encode())
    else:
        h.update(pd.util.hash_pandas_object(index).to_numpy().tobytes())
    for s in series:
        _hash_column(h, s)
    return h.digest()


def _hash_column(h, series: pd.Series) -> None:
    values = series.to_numpy()
    if values.dtype == object:
        # Joining strings is ~50x faster than pandas' per-object hash; anything that
        # is not all strings (None, NaN, numbers, lists) takes the general path.
        try:
            h.update("\x1f".join(values).encode("utf-8", "surrogatepass"))
            h.update(len(values).to_bytes(8, "little"))
            return
        except TypeError:
            pass
        try:
            rows = pd.util.hash_pandas_object(series, index=False).to_numpy()
        except TypeError:  # unhashable cells (lists): their text
            rows = pd.util.hash_pandas_object(series.astype(str), index=False).to_numpy()
        h.update(rows.tobytes())
    elif isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        h.update(pd.util.hash_pandas_object(series, index=False).to_numpy().tobytes())
    else:
        h.update(np.ascontiguousarray(values).view(np.uint8).tobytes())


class Binding:
    """One bound layer of a Viewer.

    Subclasses declare their :class:`BoundSource` objects and how the layer's
    Neuroglancer state is built from the URLs of their current generations.
    """

    layer_kind = "layer"

    def __init__(self, viewer: Viewer, name: str):
        self.viewer = viewer
        self.name = name
        self.prefix = viewer._prefix_for(name)
        self.sources: dict[str, BoundSource] = {}
        self.generations: dict[str, int] = {}
        self.state_parts: dict[str, dict] = {}
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.updated: float | None = None
        self.updating = False
        self._sequence = 0
        # Serialises switching the viewer to new generations with removing the layer.
        self._lock = threading.RLock()
        self._closed = False
        self._last_future: concurrent.futures.Future | None = None
        self._known_ids: set[str] | None = None  # segment ids of the last layer state

    def __repr__(self) -> str:
        gens = ", ".join(f"{k}={v}" for k, v in self.generations.items())
        err = f", error={self.error!r}" if self.error else ""
        return f"<{type(self).__name__} {self.name!r} generations({gens}){err}>"

    # -- subclasses ------------------------------------------------------------------------

    def layer_state(self, urls: dict[str, str], first: bool) -> dict:
        """Neuroglancer layer JSON for the current source ``urls`` (``first``: new layer)."""
        raise NotImplementedError

    def _visible_segments(self, ids: list[str], first: bool) -> list[str] | None:
        """Segments to show for a layer whose ids are now ``ids``: all of them on a new
        layer; later, the ones the user had shown, minus ids that went, plus new ids
        (None: the ids did not change, so the user's selection stays as it is)."""
        now, known = set(ids), self._known_ids
        self._known_ids = now
        if first or known is None:
            return list(ids)
        if now == known:
            return None
        current = self.viewer._layer_json(self.name) or {}
        shown = {str(s) for s in current.get("segments", [])}
        return sorted((shown - (known - now)) | (now - known), key=int)

    # -- updating --------------------------------------------------------------------------

    def _changed_sources(self, force: bool, retry_failed: bool = False
                         ) -> dict[str, tuple[BoundSource, bytes]]:
        changed = {}
        for key, src in self.sources.items():
            fp = src.fingerprint()
            failed_before = fp == src.failed_fingerprint and not retry_failed
            if force or (fp != src.last_fingerprint and not failed_before):
                changed[key] = (src, fp)
        return changed

    def refresh(self, *, force: bool = False, wait: bool = True,
                retry_failed: bool = False):
        """Regenerate every source whose inputs changed (all of them with ``force``).

        Inputs that failed to encode are not retried after every cell until they
        change, but an explicit ``update()`` (``retry_failed``) tries them again.

        Snapshots are taken now, in the calling thread; encoding, writing and the
        switch of the viewer happen on the Viewer's worker thread. With ``wait`` the
        call blocks and re-raises an encoding error (the viewer keeps its last good
        data either way; the widget's status line shows the error).

        Returns the layer's generations (``{source: number}``) with ``wait``, else a
        ``concurrent.futures.Future`` of them.
        """
        if self._closed:
            raise RuntimeError(f"layer {self.name!r} was removed from its viewer")
        changed = self._changed_sources(force, retry_failed)
        try:
            snapshots = {}
            for key, (src, fp) in changed.items():
                snap, fp = src.take_snapshot(fp)
                if force or fp != src.last_fingerprint:  # else: changed back meanwhile
                    snapshots[key] = (src, fp, snap)
        except Exception as e:
            self._fail(e)
            if wait:
                raise
            fut = concurrent.futures.Future()
            fut.set_exception(e)
            return fut
        if not snapshots:
            return self._unchanged(retry_failed, wait)
        with self._lock:
            self._sequence += 1
            seq = self._sequence
            self.updating = True
        self.viewer._publish_status()
        fut = self.viewer._executor.submit(self._regenerate, seq, snapshots)
        self._last_future = fut
        if wait:
            return fut.result()
        return fut

    def _unchanged(self, retry_failed: bool, wait: bool):
        if retry_failed and self.error is not None:
            # every source matches what is on screen: the old error no longer applies
            self.error = self.exception = None
            self.viewer._publish_status()
        pending = self._last_future
        if wait:
            if pending is not None and not pending.done():
                pending.result()  # an update already under way: wait for it too
            return self.generations.copy()
        if pending is not None and not pending.done():
            return pending
        fut: concurrent.futures.Future = concurrent.futures.Future()
        fut.set_result(self.generations.copy())
        return fut

    def _regenerate(self, seq: int, snapshots) -> dict[str, int]:
        if seq != self._sequence or self._closed:
            return self.generations.copy()  # a newer edit is queued, or the layer is gone
        try:
            encoded = {key: src.encode(snap) for key, (src, _fp, snap) in snapshots.items()}
            store = self.viewer.store
            written = {}
            for key, out in encoded.items():
                if snapshots[key][0].writes_files:
                    written[key] = store.write_generation(f"{self.prefix}/{key}", out).number
            with self._lock:
                if self._closed:  # removed while encoding: leave nothing behind
                    self._delete_data()
                    return self.generations.copy()
                self.generations.update(written)
                for key, out in encoded.items():
                    if not snapshots[key][0].writes_files:
                        self.state_parts[key] = out
                for src, fp, _snap in snapshots.values():
                    src.last_fingerprint = fp
                self.apply()
        except Exception as e:
            if self._closed:
                return self.generations.copy()
            for src, fp, _snap in snapshots.values():
                src.failed_fingerprint = fp
            self._fail(e)
            raise
        else:
            self.error = None
            self.exception = None
            self.updated = time.time()
        finally:
            if seq == self._sequence:
                self.updating = False
            if not self._closed:
                self.viewer._publish_status()
        return self.generations.copy()

    def _fail(self, e: BaseException) -> None:
        self.exception = e
        self.error = f"{type(e).__name__}: {e}"
        self.updating = False
        self.viewer._note_error(self, e, traceback.format_exc())

    def apply(self) -> None:
        """Point the Neuroglancer layer at the current generations (one state txn)."""
        with self._lock:
            if self._closed:
                return
            urls = {key: self.source_url(key) for key in self.generations
                    if key in self.sources}
            if len(urls) < sum(src.writes_files for src in self.sources.values()):
                return
            self.viewer._set_layer(self.name, lambda first: self.layer_state(urls, first),
                                   bounds=self.view_bounds())

    def close(self, *, delete: bool = True) -> None:
        """Detach this layer from its viewer: updates under way are dropped, and with
        ``delete`` its generations are deleted from the store now."""
        with self._lock:
            self._closed = True
            self._sequence += 1  # queued updates see they are stale
            self.updating = False
        if delete:
            self._delete_data()

    def _delete_data(self) -> None:
        self.viewer.store.remove(self.prefix)

    @property
    def closed(self) -> bool:
        """Whether the layer was removed from its viewer (or the viewer closed)."""
        return self._closed

    def view_bounds(self):
        """(lo, hi) corners in nm to fit the view to when this is the first layer."""
        return None

    def source_url(self, key: str) -> str:
        """The ``precomputed://`` URL of source ``key``'s current generation."""
        path = f"{self.prefix}/{key}/{self.generations[key]}"
        return "precomputed://" + self.viewer._data_url(path)

    def check(self) -> None:
        """Post-cell check: regenerate in the background if bound data changed."""
        self.refresh(wait=False)

    def problems(self) -> list[str]:
        """What the status line should show as wrong with this layer."""
        return [self.error] if self.error else []

    def wait(self, timeout: float | None = 60) -> None:
        """Block until the last update finished; re-raise its error if it failed."""
        if self._last_future is not None:
            self._last_future.result(timeout)
