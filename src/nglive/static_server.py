"""``nglive serve DIR``: a static server for a published directory, as a bucket would
serve it (CORS, byte ranges, JSON content types), for checking a publication locally."""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from dataclasses import dataclass

import tornado.httpserver
import tornado.netutil
import tornado.web

from .publish.record import RECORD_KEY


@dataclass(frozen=True)
class Served:
    """One request answered (kept when request logging is on)."""

    method: str
    path: str
    status: int
    range: str | None


class _PublishedFileHandler(tornado.web.StaticFileHandler):
    """Files under the root only: no symlinks out, no temporary or hidden files."""

    def set_default_headers(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.set_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Range, If-None-Match")
        self.set_header("Access-Control-Expose-Headers",
                        "Content-Range, Content-Length, ETag, Accept-Ranges")

    def options(self, *args) -> None:
        self.set_status(204)
        self.finish()

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        real_root = os.path.realpath(root)
        real = os.path.realpath(absolute_path)
        name = os.path.basename(absolute_path)
        if (os.path.commonpath([real_root, real]) != real_root or name.startswith(".")
                or name == RECORD_KEY):
            raise tornado.web.HTTPError(404)
        if os.path.isdir(real):
            raise tornado.web.HTTPError(404)  # no listings
        return super().validate_absolute_path(root, absolute_path)

    def compute_etag(self) -> str | None:
        # tornado's default hashes the whole file once and caches it by path: a
        # re-published info would keep its old ETag. Size and mtime change with it.
        st = os.stat(self.absolute_path)
        return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'

    def get_content_type(self) -> str:
        name = os.path.basename(self.absolute_path)
        if name == "info" or name.endswith(":0") or name.endswith(".json"):
            return "application/json"
        return "application/octet-stream"

    def get_cache_time(self, path, modified, mime_type) -> int:
        return 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")

    def on_finish(self) -> None:
        log = self.application.settings.get("nglive_log")
        if log is not None:
            log(Served(self.request.method, self.request.path, self.get_status(),
                       self.request.headers.get("Range")))

    def log_exception(self, typ, value, tb) -> None:
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)


class StaticServer:
    """Serve ``root`` over HTTP from a background thread until :meth:`close`.

    Parameters
    ----------
    root : str or path
        The published directory.
    port : int
        0 for any free port.
    bind_address : str
        Loopback by default.
    log_requests : bool
        Keep the served requests in :attr:`requests`.

    Examples
    --------
    >>> import tempfile, pathlib, urllib.request
    >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "info").write_text("{}")
    >>> with StaticServer(root) as server:
    ...     urllib.request.urlopen(server.url + "/info").read()
    b'{}'
    """

    def __init__(self, root, *, port: int = 0, bind_address: str = "127.0.0.1",
                 log_requests: bool = False, on_request=None):
        self.root = os.path.abspath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"{self.root} is not a directory")
        self.requests: deque[Served] = deque(maxlen=100_000)
        self._on_request = on_request
        self._log_requests = log_requests
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port, bind_address),
                                        name="nglive-serve", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        self.url = f"http://{_url_host(bind_address)}:{self.port}"

    def _record(self, served: Served) -> None:
        if self._log_requests:
            self.requests.append(served)
        if self._on_request is not None:
            self._on_request(served)

    def _run(self, port: int, bind_address: str) -> None:
        async def main():
            app = tornado.web.Application(
                [(r"/(.*)", _PublishedFileHandler, {"path": self.root})],
                nglive_log=self._record)
            try:
                self._server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=60)
                sockets = tornado.netutil.bind_sockets(port, bind_address)
                self._server.add_sockets(sockets)
                self.port = sockets[0].getsockname()[1]
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                self._error = e
                self._started.set()
                return
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self._stop.wait()
            self._server.stop()
            await self._server.close_all_connections()

        asyncio.run(main())

    def close(self) -> None:
        """Stop serving."""
        if self._error is None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _url_host(bind_address: str) -> str:
    if bind_address in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{bind_address}]" if ":" in bind_address else bind_address


