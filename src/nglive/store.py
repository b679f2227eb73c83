"""The Store: immutable, numbered generations per layer, in memory or in a tensorstore KvStore."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

import tensorstore as ts

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
# Any key (one per line) that is empty, absolute, has an empty, '.' or '..' segment,
# a backslash or a NUL: checked over all keys of a generation in one pass.
_BAD_KEY_LINE = re.compile(r"^$|^/|/$|//|(?:^|/)\.\.?(?:/|$)|\\|\x00", re.MULTILINE)


@dataclass(frozen=True)
class Generation:
    """One immutable, fully written set of files under ``{prefix}/{number}/``."""

    prefix: str
    number: int
    keys: tuple[str, ...]
    created: float
    nbytes: int = 0

    @property
    def path(self) -> str:
        """The key prefix of this generation, without a trailing slash."""
        return f"{self.prefix}/{self.number}"


def _kvstore_spec(location: str | os.PathLike | None) -> str:
    if location is None:
        return "memory://"
    location = os.fspath(location)
    if "://" in location:
        return location if location.endswith("/") else location + "/"
    return "file://" + os.path.abspath(location) + "/"


class Store:
    """Where layers write immutable generations, served to the viewer and published.

    Every regeneration of a layer is written under ``{prefix}/{n}/``; only once it is
    complete does :meth:`write_generation` make it the prefix's current generation, so
    a reader that follows ``current`` never sees a half-written generation.
    Superseded generations are deleted after ``grace_seconds`` (a browser may still be
    fetching from them) by a timer, and sooner beyond ``max_retired_generations`` per
    prefix or ``max_retired_bytes`` in all, so memory stays bounded however often a
    table is edited.

    In memory (the default) a generation is kept as the mapping of its files, handed
    over whole: writing 100k small files is then one dictionary copy instead of 100k
    tensorstore writes, which held the interpreter lock for ~0.25 s per regeneration
    and stalled the server thread that answers the browser. On disk and in buckets a
    tensorstore KvStore is written in one transaction.

    Parameters
    ----------
    location : str or path, optional
        ``None`` for an in-memory store (the default: nothing to set up), a local
        directory path, or any tensorstore kvstore URL (``file://``, ``gs://``,
        ``s3://``; ``memory://`` is the default in-memory store).
    grace_seconds : float
        How long a superseded generation stays readable.
    max_retired_bytes : int
        Bound on the bytes held by superseded generations: beyond it the oldest are
        deleted before their grace ends, so memory stays bounded at any edit rate.
    max_retired_generations : int
        Superseded generations kept per prefix (the newest); older ones are deleted
        before their grace ends. A browser only ever lags a generation or two behind.

    Examples
    --------
    >>> store = Store()
    >>> gen = store.write_generation("demo/props", {"info": b"{}"})
    >>> store.read(f"{gen.path}/info")
    b'{}'
    """

    def __init__(self, location: str | os.PathLike | None = None, *, grace_seconds: float = 30.0,
                 max_retired_bytes: int = 64 * 2**20, max_retired_generations: int = 3):
        self.url = _kvstore_spec(location)
        self.in_memory = self.url.startswith("memory://")
        # The tensorstore KvStore of an on-disk or bucket store (unused in memory).
        self.kvstore = ts.KvStore.open(self.url).result()
        self.grace_seconds = float(grace_seconds)
        self.max_retired_bytes = int(max_retired_bytes)
        self.max_retired_generations = int(max_retired_generations)
        # A random id folded into ETags: two Stores never share validators.
        self.instance_id = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._current: dict[str, Generation] = {}
        self._next_number: dict[str, int] = {}
        self._retired: list[tuple[float, Generation]] = []
        self._sizes: dict[str, int] = {}  # on disk / in buckets: key -> bytes
        self._files: dict[str, Mapping[str, bytes]] = {}  # in memory: gen path -> files
        self._timer: threading.Timer | None = None
        self._closed = False
        # A file:// store's root, to refuse serving anything that resolves outside it.
        self.root = os.path.realpath(self.url[len("file://"):]) if self.url.startswith(
            "file://") else None

    def __repr__(self) -> str:
        return f"Store({self.url!r}, layers={sorted(self._current)})"

    # -- writing -------------------------------------------------------------------------

    def write_generation(self, prefix: str, files: Mapping[str, bytes]) -> Generation:
        """Write ``files`` as a new generation of ``prefix`` and make it current.

        Either every file is stored or none is (a transaction on disk and in buckets).
        The generation becomes current only once complete, so readers following
        :meth:`current` never see part of it.
        """
        if not _PREFIX_RE.match(prefix) or any(p in (".", "..") for p in prefix.split("/")):
            raise ValueError(
                f"prefix {prefix!r} is not a plain relative path "
                "(letters, digits, '_', '-', '.', separated by '/')"
            )
        _check_keys(files)
        with self._lock:
            if self._closed:
                raise RuntimeError("this Store is closed")
            number = self._claim_number(prefix)
        base = f"{prefix}/{number}/"
        if self.in_memory:
            # a copy of the mapping, not of the values: the caller may reuse its dict
            if _is_packed(files):
                stored, nbytes = files, files.nbytes
                _ = stored.index  # built here, not by the server thread's first read
            else:
                stored = dict(files)
                nbytes = sum(map(len, stored.values()))
        else:
            # On disk or in a bucket a transaction makes a failed write leave nothing.
            txn = ts.Transaction()
            kv = self.kvstore.with_transaction(txn)
            for key, value in files.items():
                kv[base + key] = value
            txn.commit_async().result()
            nbytes = sum(map(len, files.values()))
        gen = Generation(prefix, number, tuple(files), time.time(), nbytes)
        with self._lock:
            if self.in_memory:
                self._files[gen.path] = stored
            else:
                for key, value in files.items():
                    self._sizes[base + key] = len(value)
            old = self._current.get(prefix)
            if old is None or old.number < number:
                self._current[prefix] = gen
                if old is not None:
                    self._retired.append((time.monotonic(), old))
            else:  # a slower writer finished after a newer one: it was never current
                self._retired.append((time.monotonic(), gen))
        self.collect_garbage()
        return gen

    def _claim_number(self, prefix: str) -> int:
        if prefix not in self._next_number:
            self._next_number[prefix] = self._first_free_number(prefix)
        number = self._next_number[prefix]
        self._next_number[prefix] = number + 1
        return number

    def _first_free_number(self, prefix: str) -> int:
        # A file:// store may hold generations from an earlier session: never reuse them.
        if self.in_memory:
            return 0
        keys = self.kvstore.list(ts.KvStore.KeyRange(prefix + "/", prefix + "0")).result()
        numbers = [
            int(part)
            for key in keys
            if (part := key.decode()[len(prefix) + 1 :].split("/", 1)[0]).isdigit()
        ]
        return max(numbers, default=-1) + 1

    def collect_garbage(self, *, now: float | None = None, force: bool = False) -> int:
        """Delete superseded generations whose grace has ended; return how many.

        Also deletes the oldest ones early while superseded generations hold more than
        ``max_retired_bytes``, and schedules a timer for the next one due, so nothing
        waits for another write to be freed.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [g for t, g in self._retired if force or now - t >= self.grace_seconds]
            per_prefix: dict[str, int] = {}
            for _, g in reversed(self._retired):  # newest first
                per_prefix[g.prefix] = per_prefix.get(g.prefix, 0) + 1
                if per_prefix[g.prefix] > self.max_retired_generations and g not in due:
                    due.append(g)
            kept = [(t, g) for t, g in self._retired if g not in due]
            held = sum(g.nbytes for _, g in kept)
            while kept and held > self.max_retired_bytes:  # oldest first
                _, g = kept.pop(0)
                due.append(g)
                held -= g.nbytes
            self._retired = kept
        for gen in due:
            self._delete_generation(gen)
        self._schedule_collection()
        return len(due)

    def stored_bytes(self) -> int:
        """Bytes held by every generation still readable (current and superseded)."""
        with self._lock:
            return (sum(g.nbytes for g in self._current.values())
                    + sum(g.nbytes for _, g in self._retired))

    def retired_bytes(self) -> int:
        """Bytes held by superseded generations that are still readable."""
        with self._lock:
            return sum(g.nbytes for _, g in self._retired)

    def _delete_generation(self, gen: Generation) -> None:
        base = gen.path + "/"
        if self.in_memory:
            with self._lock:
                self._files.pop(gen.path, None)
            return
        self.kvstore.delete_range(ts.KvStore.KeyRange(base, base[:-1] + "0")).result()
        with self._lock:
            for key in gen.keys:
                self._sizes.pop(base + key, None)

    def _schedule_collection(self) -> None:
        with self._lock:
            if self._closed or not self._retired or self._timer is not None:
                return
            wait = max(0.0, self._retired[0][0] + self.grace_seconds - time.monotonic())
            # The timer holds the Store weakly: a dropped Store is freed, not kept by it.
            timer = threading.Timer(wait + 0.01, _collect_later, (weakref.ref(self),))
            timer.name = "nglive-store-gc"
            timer.daemon = True
            self._timer = timer
        timer.start()

    def remove(self, prefix: str) -> int:
        """Delete every generation under ``prefix`` (e.g. a removed layer's); return how
        many keys were deleted. Numbers are not reused if the prefix is written again."""
        prefix = prefix.rstrip("/")
        under = prefix + "/"
        with self._lock:
            for p in [p for p in self._current if p == prefix or p.startswith(under)]:
                del self._current[p]
            self._retired = [(t, g) for t, g in self._retired
                             if not (g.prefix == prefix or g.prefix.startswith(under))]
            if self.in_memory:
                paths = [p for p in self._files if p.startswith(under)]
                gone = sum(len(self._files.pop(p)) for p in paths)
                return gone
            keys = [k for k in self._sizes if k.startswith(under)]
            for k in keys:
                del self._sizes[k]
        self.kvstore.delete_range(ts.KvStore.KeyRange(under, _prefix_end(under))).result()
        return len(keys)

    def close(self, *, delete: bool = False) -> None:
        """Stop the collection timer; with ``delete``, delete everything this Store wrote.

        A Viewer closes the Store it created with ``delete=True`` (its data is of no use
        without it); a Store you passed in is yours and keeps its data.
        """
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
            prefixes = {g.prefix.split("/", 1)[0] for g in self._current.values()}
            prefixes |= {g.prefix.split("/", 1)[0] for _, g in self._retired}
        if timer is not None:
            timer.cancel()
        if delete:
            for p in prefixes:
                self.remove(p)

    # -- reading -------------------------------------------------------------------------

    def current(self, prefix: str) -> Generation | None:
        """The current generation of ``prefix``, or None if none was written."""
        with self._lock:
            return self._current.get(prefix)

    def prefixes(self) -> list[str]:
        """Every prefix with a current generation."""
        with self._lock:
            return sorted(self._current)

    def size(self, key: str) -> int | None:
        """The byte size of ``key`` if this Store wrote it (no read needed)."""
        if self.in_memory:
            found = self._locate(key)
            return None if found is None else len(found[0])
        with self._lock:
            return self._sizes.get(key)

    def read(self, key: str) -> bytes | None:
        """The value of ``key``, or None if it is missing."""
        _check_key(key)
        if self.in_memory:
            found = self._locate(key)
            return None if found is None else bytes(found[0])
        result = self.kvstore.read(key).result()
        return result.value if result.state == "value" else None

    def lookup(self, key: str) -> tuple[bytes, str] | None:
        """An in-memory store's value of ``key`` and its ETag (no copy), or None.

        Values never change once written, so the generation identifies the content.
        """
        found = self._locate(key)
        if found is None:
            return None
        value, path = found
        return value, f'"{self.instance_id}-{path}"'

    def _locate(self, key: str) -> tuple[bytes, str] | None:
        # "{prefix}/{number}/{name}": the generation is the first "/"-prefix of the
        # key that names one (prefixes and names may hold "/" too)
        files_by_path = self._files
        i = key.find("/")
        while i > 0:
            files = files_by_path.get(key[:i])
            if files is not None:
                value = files.get(key[i + 1:])
                if value is not None:
                    return value, key[:i]
            i = key.find("/", i + 1)
        return None

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted."""
        if self.in_memory:
            with self._lock:
                items = list(self._files.items())
            keys = []
            for path, files in items:
                base = path + "/"
                if base.startswith(prefix) or prefix.startswith(base):
                    keys.extend(k for k in (base + n for n in files) if k.startswith(prefix))
            return sorted(keys)
        keys = self.kvstore.list(ts.KvStore.KeyRange(prefix, _prefix_end(prefix))).result()
        return sorted(k.decode() for k in keys)


def _is_packed(files) -> bool:
    from .packed import PackedFiles

    return isinstance(files, PackedFiles)


def _collect_later(store_ref) -> None:
    store = store_ref()
    if store is None:
        return
    with store._lock:
        store._timer = None
    try:
        store.collect_garbage()
    except Exception:  # noqa: BLE001 — a failed delete is retried on the next write
        pass


def _prefix_end(prefix: str) -> str:
    if not prefix:
        return ""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _check_keys(files: Mapping[str, bytes]) -> None:
    """Reject any key that could mean something outside the store on a file:// backend
    (checked in one pass over all keys: a generation may have 100k of them)."""
    keys = list(files)
    try:
        text = "\n".join(keys)
    except TypeError:
        text = None
    if text is not None and text.count("\n") == len(keys) - 1 and keys:
        if _BAD_KEY_LINE.search(text) is None:
            return
    for key in keys:  # something is wrong: find it and say which
        _check_key(key)
        if "\n" in key:
            raise ValueError(f"store key {key!r} has a line break")


def _check_key(key: str) -> None:
    """Reject keys that could mean something outside the store on a file:// backend."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise ValueError(f"store key {key!r} has an empty, '.' or '..' segment or a backslash")
