"""The Store: a tensorstore KvStore holding immutable, numbered generations per layer."""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import tensorstore as ts

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


@dataclass(frozen=True)
class Generation:
    """One immutable, fully written set of files under ``{prefix}/{number}/``."""

    prefix: str
    number: int
    keys: tuple[str, ...]
    created: float

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
    """A tensorstore key-value store that layers write immutable generations into.

    Every regeneration of a layer is written under ``{prefix}/{n}/`` in one
    tensorstore transaction; only after the commit does :meth:`write_generation`
    make it the prefix's current generation, so a reader that follows ``current``
    never sees a half-written generation. Superseded generations are deleted after
    ``grace_seconds`` (a browser may still be fetching from them), so memory stays
    bounded however often a table is edited.

    Parameters
    ----------
    location : str or path, optional
        ``None`` for an in-memory store (the default: nothing to set up), a local
        directory path, or any tensorstore kvstore URL (``file://``, ``gs://``,
        ``s3://``, ``memory://``).
    grace_seconds : float
        How long a superseded generation stays readable.

    Examples
    --------
    >>> store = Store()
    >>> gen = store.write_generation("demo/props", {"info": b"{}"})
    >>> store.read(f"{gen.path}/info")
    b'{}'
    """

    def __init__(self, location: str | os.PathLike | None = None, *, grace_seconds: float = 30.0):
        self.url = _kvstore_spec(location)
        self.kvstore = ts.KvStore.open(self.url).result()
        self.grace_seconds = float(grace_seconds)
        # A random id folded into ETags: two Stores never share validators.
        self.instance_id = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._current: dict[str, Generation] = {}
        self._next_number: dict[str, int] = {}
        self._retired: list[tuple[float, Generation]] = []
        self._sizes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Store({self.url!r}, layers={sorted(self._current)})"

    # -- writing -------------------------------------------------------------------------

    def write_generation(self, prefix: str, files: Mapping[str, bytes]) -> Generation:
        """Write ``files`` as a new generation of ``prefix`` and make it current.

        Either every file is stored or none is (a transaction on disk and in buckets;
        in memory, plain writes cleaned up on failure). The generation becomes current
        only once complete, so readers following :meth:`current` never see part of it.
        """
        if not _PREFIX_RE.match(prefix) or any(p in (".", "..") for p in prefix.split("/")):
            raise ValueError(
                f"prefix {prefix!r} is not a plain relative path "
                "(letters, digits, '_', '-', '.', separated by '/')"
            )
        for key in files:
            _check_key(key)
        with self._lock:
            number = self._claim_number(prefix)
        base = f"{prefix}/{number}/"
        if self.url.startswith("memory://"):
            # Nothing reads a generation before it is made current below, so plain
            # writes are safe here, and 2-3x faster than a transaction in memory.
            try:
                for key, value in files.items():
                    self.kvstore[base + key] = value
            except BaseException:
                self.kvstore.delete_range(ts.KvStore.KeyRange(base, base[:-1] + "0")).result()
                raise
        else:
            # On disk or in a bucket a transaction makes a failed write leave nothing.
            txn = ts.Transaction()
            kv = self.kvstore.with_transaction(txn)
            for key, value in files.items():
                kv[base + key] = value
            txn.commit_async().result()
        gen = Generation(prefix, number, tuple(files), time.time())
        with self._lock:
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
        keys = self.kvstore.list(ts.KvStore.KeyRange(prefix + "/", prefix + "0")).result()
        numbers = [
            int(part)
            for key in keys
            if (part := key.decode()[len(prefix) + 1 :].split("/", 1)[0]).isdigit()
        ]
        return max(numbers, default=-1) + 1

    def collect_garbage(self, *, now: float | None = None, force: bool = False) -> int:
        """Delete superseded generations older than the grace period; return how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [g for t, g in self._retired if force or now - t >= self.grace_seconds]
            self._retired = [(t, g) for t, g in self._retired if g not in due]
        for gen in due:
            base = gen.path + "/"
            self.kvstore.delete_range(ts.KvStore.KeyRange(base, base[:-1] + "0")).result()
            with self._lock:
                for key in gen.keys:
                    self._sizes.pop(base + key, None)
        return len(due)

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
        with self._lock:
            return self._sizes.get(key)

    def read(self, key: str) -> bytes | None:
        """The value of ``key``, or None if it is missing."""
        _check_key(key)
        result = self.kvstore.read(key).result()
        return result.value if result.state == "value" else None

    def list(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted."""
        keys = self.kvstore.list(ts.KvStore.KeyRange(prefix, _prefix_end(prefix))).result()
        return sorted(k.decode() for k in keys)


def _prefix_end(prefix: str) -> str:
    if not prefix:
        return ""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _check_key(key: str) -> None:
    """Reject keys that could mean something outside the store on a file:// backend."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise ValueError(f"store key {key!r} has an empty, '.' or '..' segment or a backslash")
