"""The in-kernel HTTP server that serves a Store to the Neuroglancer client.

It mounts on the tornado server that the ``neuroglancer`` package already runs in a
background thread, so the viewer and its data share one port (and one proxy rule on
Binder). Every data URL is ``{server}/nglive/{token}/{key}``; the token is random per
server and required. :mod:`nglive.server_security` hardens the whole server (Host and
Origin checks, limits, token-free logs).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

import neuroglancer
import neuroglancer.server
import tornado.web

from . import server_security
from .store import Store

_log = logging.getLogger("nglive.server")

DATA_ROUTE = "nglive"
_RANGE_RE = re.compile(r"^bytes=([0-9]{0,400})-([0-9]{0,400})$")  # ASCII digits only


@dataclass(frozen=True)
class RequestRecord:
    """One served request, kept when request logging is on."""

    time: float
    method: str
    key: str
    status: int
    range: str | None


class DataServer:
    """Serves one Store over HTTP from neuroglancer's background server thread.

    GET and HEAD; single ``Range`` requests (206, 416 on unsatisfiable ranges); CORS
    for the origins that need it (:func:`nglive.server_security.origin_allowed`);
    ``ETag`` from the tensorstore storage generation and 304 on ``If-None-Match``;
    404 for missing keys; 403 without the token or from a foreign origin. It serves
    only keys its Store wrote, read through the Store's kvstore (on disk, never through
    a link that leads out of the store's directory).

    Parameters
    ----------
    store : Store
        What to serve.
    log_requests : bool
        Keep a record of every request in :attr:`requests` (bounded) — tests and the
        latency benchmark read it.
    bind_address : str
        Used only if neuroglancer's server is not running yet. Loopback by default.

    Examples
    --------
    >>> server = DataServer(Store())
    >>> server.base_url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(
        self,
        store: Store,
        *,
        log_requests: bool = False,
        bind_address: str = "127.0.0.1",
        max_log: int = 100_000,
    ):
        self.store = store
        self.token = secrets.token_urlsafe(24)
        self.log_requests = log_requests
        self.requests: deque[RequestRecord] = deque(maxlen=max_log)
        self.on_request = None  # optional callable(RequestRecord), e.g. to print a log
        self._request_event = threading.Condition()
        ng_server = _ensure_neuroglancer_server(bind_address)
        self.port: int = ng_server.port
        self.server_url: str = ng_server.regular_server_url
        _register(self)

    @property
    def base_url(self) -> str:
        """The direct URL of this server's data root, without a trailing slash."""
        return f"{self.server_url}/{DATA_ROUTE}/{self.token}"

    def url_for(self, key: str, server_url: str | None = None) -> str:
        """The URL of ``key``; ``server_url`` replaces the direct one (e.g. a proxy)."""
        root = (server_url or self.server_url).rstrip("/")
        return f"{root}/{DATA_ROUTE}/{self.token}/{key}"

    def close(self) -> None:
        """Stop serving this Store (the shared tornado server keeps running)."""
        _SERVERS.pop(self.token, None)

    # -- request log -------------------------------------------------------------------

    def _record(self, record: RequestRecord) -> None:
        if self.on_request is not None:
            self.on_request(record)
        if self.log_requests:
            with self._request_event:
                self.requests.append(record)
                self._request_event.notify_all()

    def wait_for_request(self, predicate, timeout: float = 10.0) -> RequestRecord | None:
        """Block until a logged request satisfies ``predicate``; return it or None."""
        deadline = time.monotonic() + timeout
        with self._request_event:
            while True:
                for rec in list(self.requests):
                    if predicate(rec):
                        return rec
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._request_event.wait(remaining)


# Servers by token; the tornado handler looks the token up here.
_SERVERS: dict[str, DataServer] = {}
_MOUNT_LOCK = threading.Lock()
_MOUNTED_ON: set[int] = set()


def _ensure_neuroglancer_server(bind_address: str):
    if not neuroglancer.server.is_server_running():
        neuroglancer.set_server_bind_address(bind_address)
        neuroglancer.server.start()
    return neuroglancer.server.global_server


def _register(server: DataServer) -> None:
    ng_server = neuroglancer.server.global_server
    with _MOUNT_LOCK:
        if id(ng_server) not in _MOUNTED_ON:
            done = threading.Event()

            def mount():
                # Tornado tries host rules in order and falls through when a rule's
                # routes do not match, so neuroglancer's own routes stay intact.
                try:
                    ng_server.app.add_handlers(
                        r".*",
                        [(rf"^/{DATA_ROUTE}/(?P<token>[^/]*)(?:/(?P<key>.*))?$",
                          StoreHandler)],
                    )
                    server_security.harden(ng_server)
                finally:
                    done.set()

            ng_server.loop.call_soon_threadsafe(mount)
            done.wait(10)
            _MOUNTED_ON.add(id(ng_server))
    _SERVERS[server.token] = server


class StoreHandler(tornado.web.RequestHandler):
    """GET/HEAD/OPTIONS for ``/nglive/{token}/{key}``."""

    def prepare(self) -> None:
        # Small responses wait ~40 ms for delayed ACKs under Nagle's algorithm otherwise.
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)

    def set_default_headers(self) -> None:
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Vary", "Origin")
        origin = self.request.headers.get("Origin")
        if origin and self._origin_ok(origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.set_header("Access-Control-Allow-Headers", "Range, If-None-Match")
            self.set_header("Access-Control-Expose-Headers",
                            "Content-Range, Content-Length, ETag, Accept-Ranges")
            self.set_header("Access-Control-Max-Age", "600")

    def _origin_ok(self, origin: str) -> bool:
        port = neuroglancer.server.global_server.port
        return server_security.origin_allowed(origin, self.request.headers.get("Host"), port)

    def _foreign_origin(self) -> bool:
        origin = self.request.headers.get("Origin")
        return origin is not None and not self._origin_ok(origin)

    def options(self, token: str, key: str | None = None) -> None:
        self._finish_status(403 if self._foreign_origin() else 204)

    async def head(self, token: str, key: str | None = None) -> None:
        await self._serve(token, key, with_body=False)

    async def get(self, token: str, key: str | None = None) -> None:
        await self._serve(token, key, with_body=True)

    def log_exception(self, typ, value, tb) -> None:
        # Client errors are not the kernel's problem; anything else is logged without
        # the request line (it holds the token).
        if not isinstance(value, tornado.web.HTTPError):
            _log.error("nglive data server: %s while answering a request", typ.__name__,
                       exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs) -> None:
        self.finish()  # no HTML page, no traceback

    async def _serve(self, token: str, key: str | None, *, with_body: bool) -> None:
        server = _SERVERS.get(token) if token else None
        if server is None or self._foreign_origin():
            self._finish_status(403)
            return
        range_header = self.request.headers.get("Range")
        try:
            status = await self._serve_key(server.store, key or "", range_header, with_body)
        except Exception as e:  # noqa: BLE001 — a store that failed to read: try again later
            _log.warning("nglive data server: reading a key failed: %s: %s",
                         type(e).__name__, server_security.redact(str(e)))
            self.clear_header("Content-Range")
            self.set_header("Retry-After", "1")
            status = self._finish_status(503)
        server._record(
            RequestRecord(time.time(), self.request.method, key or "", status, range_header)
        )

    def _finish_status(self, status: int) -> int:
        self.set_status(status)
        self.finish()
        return status

    async def _serve_key(self, store: Store, key: str, range_header, with_body: bool) -> int:
        if not _is_safe_key(key):
            return self._finish_status(400 if key else 404)
        if store.in_memory:
            found = store.lookup(key)
            if found is None:
                return self._finish_status(404)
            value, etag = found
            total = len(value)
        else:
            total = store.size(key)
            if total is None or not _inside_root(store, key):
                # Only keys this Store wrote: nothing else that happens to lie in a
                # file:// store's directory, and never through a link out of it.
                return self._finish_status(404)
            value = etag = None
        byte_range = _parse_range(range_header, total) if range_header else None
        if byte_range == "invalid":
            self.set_header("Content-Range", f"bytes */{total}")
            return self._finish_status(416)
        if value is not None:
            body = value[slice(*byte_range)] if byte_range else value
        else:
            read_range = slice(*byte_range) if byte_range else None
            result = await _wrap(store.kvstore.read(key, byte_range=read_range))
            if result.state != "value":
                return self._finish_status(404)
            body = result.value
            etag = f'"{store.instance_id}-{result.stamp.generation.hex()}"'
        self.set_header("ETag", etag)
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Type", _content_type(key))
        if_none_match = self.request.headers.get("If-None-Match")
        if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
            return self._finish_status(304)
        status = 200
        if byte_range:
            status = 206
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {byte_range[0]}-{byte_range[1] - 1}/{total}")
        self.set_header("Content-Length", str(len(body)))
        if with_body:
            self.write(bytes(body) if not isinstance(body, bytes) else body)
        self.finish()
        return status


def _inside_root(store: Store, key: str) -> bool:
    """On a file:// store, whether ``key`` is a regular file that resolves inside it."""
    if store.root is None:
        return True
    path = os.path.join(store.root, *key.split("/"))
    real = os.path.realpath(path)
    return real.startswith(store.root + os.sep) and os.path.isfile(real) and real == path


async def _wrap(ts_future):
    # The memory driver usually completes at once: skip the thread hop then.
    if ts_future.done():
        return ts_future.result()
    return await ts_future


def _is_safe_key(key: str) -> bool:
    if not key:
        return False
    parts = key.split("/")
    return not any(p in ("", ".", "..") for p in parts) and "\\" not in key and "\x00" not in key


def _parse_range(header: str, total: int):
    """A half-open (start, stop) for one ``bytes=`` range, None to ignore it, or "invalid"."""
    if len(header) > 1000:
        return None  # no single range is this long: RFC 9110 lets us send the whole value
    m = _RANGE_RE.match(header.strip())
    if m is None:
        return None  # multi-range or another unit: RFC 9110 lets us send the whole body
    first, last = m.groups()
    if first == "" and last == "":
        return "invalid"
    if first == "":
        length = int(last)
        if length == 0 or total == 0:
            return "invalid"
        return (max(total - length, 0), total)
    start = int(first)
    stop = total if last == "" else min(int(last) + 1, total)
    if start >= total or (last != "" and int(last) < start):
        return "invalid"
    return (start, stop)


def _content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if name == "info" or name.endswith(":0") or name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"
