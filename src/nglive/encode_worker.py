"""Encoding big tables in a separate, low-priority process, so the kernel keeps serving.

The data server is a thread of the kernel process. Encoding 100k annotations holds the
interpreter lock for long stretches (dictionary building, numpy calls that keep it),
and on a busy 2-core machine competes for the CPU too: readers then waited up to
~130 ms at p99. In a worker process the encoder has its own interpreter lock and runs
at a lower scheduling priority, so the server thread is served first; the result comes
back as one buffer (:class:`~nglive.packed.PackedFiles`), cheap to receive.

Small tables are encoded in-process: below :data:`WORKER_ABOVE_ROWS` rows the process
hop costs more than it saves. The worker starts on first use (about a second) and
exits after :data:`IDLE_SECONDS` without work, giving its memory back.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping

from .packed import PackedFiles

__all__ = ["IDLE_SECONDS", "WORKER_ABOVE_ROWS", "run_encoder", "shutdown"]

#: Tables with at least this many rows are encoded in the worker process.
WORKER_ABOVE_ROWS = 20_000
#: The worker exits after this long without work.
IDLE_SECONDS = 60.0
#: Added to the worker's nice value: the kernel's server thread is scheduled first
#: (``NGLIVE_WORKER_NICE`` overrides it).
NICENESS = int(os.environ.get("NGLIVE_WORKER_NICE", "5"))

_lock = threading.Lock()
_executor: concurrent.futures.ProcessPoolExecutor | None = None
_idle_timer: threading.Timer | None = None
_running = 0


def run_encoder(func: Callable, *args, rows: int, **kwargs):
    """``func(*args, **kwargs)``: in the worker process for ``rows`` at or above
    :data:`WORKER_ABOVE_ROWS`, else here.

    ``func`` must be importable by name and its arguments picklable; errors it raises
    (a :class:`~nglive.formats.validation.TableError`, say) are raised here. A mapping
    of files comes back as :class:`~nglive.packed.PackedFiles`.

    Examples
    --------
    >>> from nglive.formats.legacy_mesh import encode_legacy_meshes
    >>> files = run_encoder(encode_legacy_meshes, {}, rows=0)
    >>> sorted(files)
    ['info']
    """
    if rows < WORKER_ABOVE_ROWS or os.environ.get("NGLIVE_ENCODE_IN_PROCESS"):
        return func(*args, **kwargs)
    executor = _acquire()
    try:
        future = executor.submit(_encode_packed, func, args, kwargs)
    except RuntimeError:  # shut down meanwhile (interpreter exit): encode here
        return func(*args, **kwargs)
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool:
        _discard(executor)  # the worker died (killed, out of memory): encode here
        return func(*args, **kwargs)
    finally:
        _release()


def shutdown() -> None:
    """Stop the worker process now (it starts again when needed)."""
    global _executor, _idle_timer
    with _lock:
        executor, _executor = _executor, None
        timer, _idle_timer = _idle_timer, None
    if timer is not None:
        timer.cancel()
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)


def _acquire() -> concurrent.futures.ProcessPoolExecutor:
    global _executor, _idle_timer, _running
    with _lock:
        if _idle_timer is not None:
            _idle_timer.cancel()
            _idle_timer = None
        if _executor is None:
            # spawn, not fork: the kernel has threads (tornado, tensorstore) that a
            # forked child would inherit mid-operation
            _executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority)
            with _main_module_hidden():  # the worker process starts here
                _executor.submit(os.getpid).result()
        _running += 1
        return _executor


def _release() -> None:
    global _idle_timer, _running
    with _lock:
        _running -= 1
        if _running == 0 and _executor is not None:
            _idle_timer = threading.Timer(IDLE_SECONDS, _stop_if_idle)
            _idle_timer.name = "nglive-encode-worker-idle"
            _idle_timer.daemon = True
            _idle_timer.start()


def _stop_if_idle() -> None:
    global _executor, _idle_timer
    with _lock:
        if _running or _executor is None:
            return
        executor, _executor = _executor, None
        _idle_timer = None
    executor.shutdown(wait=True)


def _discard(executor) -> None:
    global _executor
    with _lock:
        if _executor is executor:
            _executor = None
    executor.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _main_module_hidden():
    """Start processes without the parent's ``__main__``.

    A spawned child re-imports the parent's main script to find what it needs; a user's
    script without an ``if __name__ == "__main__":`` guard would then run again in the
    worker, top to bottom (a second viewer, second uploads). The worker only runs
    nglive's own functions, so it does not need the script: hide it while starting.
    """
    main = sys.modules.get("__main__")
    saved = {a: getattr(main, a) for a in ("__file__", "__spec__") if hasattr(main, a)}
    try:
        if main is not None:
            main.__spec__ = None
            if "__file__" in saved:
                del main.__file__
        yield
    finally:
        for attr, value in saved.items():
            setattr(main, attr, value)


def _lower_priority() -> None:
    # Jupyter interrupts a kernel by signalling its whole process group: the worker
    # must finish (or drop) its work, not die, when the user interrupts a cell.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:  # pragma: no cover - not permitted: run at the same priority
        pass


def _encode_packed(func, args, kwargs):
    result = func(*args, **kwargs)
    return PackedFiles.pack(result) if isinstance(result, Mapping) else result


atexit.register(shutdown)
