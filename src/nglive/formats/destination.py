"""Where encoded files go: a local directory or any tensorstore kvstore, one whole file
per write, so a source can be written file by file as it is encoded."""

from __future__ import annotations

import os
import secrets
from collections import deque

# writes in flight to a kvstore are bounded by bytes, so streaming output stays bounded
MAX_BYTES_IN_FLIGHT = 256 << 20


def is_local_path(output) -> bool:
    """True for a plain path (no ``scheme://``) or an ``os.PathLike``."""
    return isinstance(output, os.PathLike) or (isinstance(output, str) and "://" not in output)


class LocalDirectory:
    """Files under a local directory. With ``atomic``, each file is written to a
    temporary name and renamed, so a reader (or a retried writer) never sees part of it."""

    def __init__(self, root, *, atomic: bool = False):
        self.root = os.fspath(root)
        self.atomic = atomic
        self._made: set[str] = set()

    @property
    def location(self) -> str:
        return self.root

    def write(self, key: str, data: bytes) -> None:
        path = os.path.join(self.root, key)
        folder = os.path.dirname(path)
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        if not self.atomic:
            with open(path, "wb") as f:
                f.write(data)
            return
        tmp = f"{path}.tmp-{secrets.token_hex(6)}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def flush(self) -> None:
        """Nothing is buffered: every write has returned when it is done."""


class KvStoreDestination:
    """Files in a tensorstore kvstore (``file://``, ``gs://``, ``s3://``, ``memory://``).

    A kvstore write replaces a whole value (a single PUT in a bucket, a rename on
    disk), so each file is written whole or not at all. Writes run asynchronously,
    with at most ``MAX_BYTES_IN_FLIGHT`` bytes pending.
    """

    def __init__(self, output):
        import tensorstore as ts

        kv = output if isinstance(output, ts.KvStore) else ts.KvStore.open(output).result()
        if kv.path and not kv.path.endswith("/"):
            kv = ts.KvStore.open({**kv.spec().to_json(), "path": kv.path + "/"}).result()
        self.kvstore = kv
        self._location = kv.url if isinstance(output, ts.KvStore) else str(output)
        self._pending: deque = deque()
        self._pending_bytes = 0

    @property
    def location(self) -> str:
        return self._location

    def write(self, key: str, data: bytes) -> None:
        self._pending.append((self.kvstore.write(key, data), len(data)))
        self._pending_bytes += len(data)
        while self._pending_bytes > MAX_BYTES_IN_FLIGHT:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        future, size = self._pending.popleft()
        self._pending_bytes -= size
        future.result()

    def flush(self) -> None:
        """Wait until every write so far is stored (raising the first failure)."""
        while self._pending:
            self._wait_oldest()


def open_destination(output, *, atomic: bool = False):
    """A destination for ``output``: a local path, a tensorstore URL or spec dict, or an
    open ``tensorstore.KvStore``.

    Examples
    --------
    >>> import tempfile
    >>> d = open_destination(tempfile.mkdtemp())
    >>> d.write("a/b", b"1"); d.flush()
    >>> open(f"{d.location}/a/b", "rb").read()
    b'1'
    """
    if is_local_path(output):
        return LocalDirectory(output, atomic=atomic)
    return KvStoreDestination(output)
