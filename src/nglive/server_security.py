"""Hardening of the kernel's tornado server: Host and Origin checks, limits, quiet logs.

nglive serves data from the tornado server the ``neuroglancer`` package runs in the
kernel; any page open in the user's browser can try that port. This module applies to
the whole server (Neuroglancer's own routes included):

- **Host**: a request must name the server as it is really reached. A browser that
  connects to the port directly sends that port in ``Host``, so a page of another site
  whose name was re-pointed at 127.0.0.1 (DNS rebinding) arrives as
  ``evil.example:{port}`` and gets 403. Accepted: IP literals (they cannot be rebound),
  ``localhost``, the hosts learned from the widget (the address the browser uses) or
  configured, and requests naming another port, which reached the kernel through a
  proxy that checked the host itself (jupyter-server-proxy forwards the Jupyter page's
  ``Host``; Colab's proxy its own).
- **Origin** (:func:`origin_allowed`, used by the data handler for CORS): the page's
  own origin, the Jupyter page's origin and the server's address as learned from the
  widget, the server's direct loopback address, and configured ones; never ``*``.
- **Limits**: request bodies are refused beyond a small size except on Neuroglancer's
  POST routes of a live viewer (screenshots are large); idle and half-sent
  connections time out; each client address may hold a bounded number of connections;
  oversized request headers get 431.
- **Headers**: every response carries ``Referrer-Policy: no-referrer`` (tokens are in
  URLs) and ``X-Content-Type-Options: nosniff``.
- **Logs**: tornado's log records never contain a token: known tokens and the token
  segment of every token-carrying route are replaced by ``<token>``.

Hosts and origins can be added with :func:`allow` or the ``NGLIVE_ALLOWED_HOSTS`` /
``NGLIVE_ALLOWED_ORIGINS`` environment variables (comma-separated), e.g. for a server
bound to a network address and opened by a DNS name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass

import tornado.iostream
import tornado.routing
import tornado.web

__all__ = ["Limits", "allow", "configure", "harden", "host_allowed", "origin_allowed",
           "redact"]


@dataclass
class Limits:
    """Connection limits applied to the server (see :func:`configure`)."""

    #: Seconds a connection may sit between requests or in the middle of its headers.
    idle_timeout: float = 30.0
    #: Seconds a request body may take to arrive.
    body_timeout: float = 60.0
    #: Open connections per client address (a browser opens ~6 per host and one event
    #: stream per viewer; jupyter-server-proxy's requests come from the same address).
    max_connections_per_client: int = 64
    #: Body bytes accepted outside Neuroglancer's POST routes (nglive's routes take none).
    max_small_body: int = 64 * 1024


LIMITS = Limits()
_lock = threading.Lock()
_hosts: set[str] = set()  # lower-case host names (no port)
_origins: set[str] = set()  # scheme://host[:port], lower-case
_hardened: set[int] = set()

# Neuroglancer's routes whose second path segment is a secret token, and nglive's.
_TOKEN_ROUTE = re.compile(
    r"(/(?:nglive|v|events|state|action|credentials|volume_response|skeletoninfo"
    r"|neuroglancer/info|neuroglancer/skeletoninfo|neuroglancer/[^/\s]+)/)[^/\s?#\"'<>]+")
# Neuroglancer's POST routes: they may carry large bodies (screenshots, states).
_NG_POST = re.compile(r"^/(?:action|state|credentials|volume_response)/([^/]+)")
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
              b"Content-Length: 0\r\n\r\n")
_TOO_MANY = (b"HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n"
             b"Content-Length: 0\r\nRetry-After: 1\r\n\r\n")


def configure(**limits) -> Limits:
    """Change :data:`LIMITS` (``idle_timeout``, ``body_timeout``,
    ``max_connections_per_client``, ``max_small_body``) for connections from now on.

    Examples
    --------
    >>> old = configure(idle_timeout=30.0)
    >>> old.idle_timeout
    30.0
    """
    for name, value in limits.items():
        if not hasattr(LIMITS, name):
            raise TypeError(f"unknown limit {name!r}; known: {list(vars(LIMITS))}")
        setattr(LIMITS, name, type(getattr(LIMITS, name))(value))
    for server in _servers():
        _apply_timeouts(server)
    return LIMITS


def allow(url_or_host: str) -> None:
    """Accept requests naming this host, and CORS requests from this origin.

    Parameters
    ----------
    url_or_host : str
        A URL (``https://hub.example.org/user/me/proxy/8888``: its host and origin) or a
        bare host name.

    Examples
    --------
    >>> allow("https://hub.example.org/user/me/")
    >>> host_allowed("hub.example.org:9999", server_port=1234)
    True
    """
    if "://" in url_or_host:
        u = urllib.parse.urlsplit(url_or_host)
        if not u.hostname:
            return
        with _lock:
            _hosts.add(u.hostname.lower())
            _origins.add(_origin_of(u))
    elif url_or_host:
        with _lock:
            _hosts.add(url_or_host.lower().strip("[]"))


def _origin_of(u: urllib.parse.SplitResult) -> str:
    host = u.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = u.port
    default = {"http": 80, "https": 443}.get(u.scheme)
    return f"{u.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def _split_host(value: str) -> tuple[str, int | None] | None:
    """(host name, port or None) from a ``Host`` header, or None when malformed."""
    value = value.strip()
    if not value or any(c in value for c in " /\\@?#"):
        return None
    try:
        u = urllib.parse.urlsplit("//" + value)
        return (u.hostname or "").lower(), u.port
    except ValueError:
        return None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _configured(var: str) -> set[str]:
    return {v.strip().lower() for v in os.environ.get(var, "").split(",") if v.strip()}


def host_allowed(host_header: str | None, server_port: int) -> bool:
    """Whether a request's ``Host`` names this server as a browser may legitimately reach it.

    Examples
    --------
    >>> host_allowed("127.0.0.1:8000", 8000), host_allowed("localhost:8000", 8000)
    (True, True)
    >>> host_allowed("evil.example:8000", 8000)  # DNS rebinding: our port, foreign name
    False
    >>> host_allowed("jupyter.example:8888", 8000)  # through a proxy on another port
    True
    """
    parsed = _split_host(host_header or "")
    if parsed is None:
        return False
    name, port = parsed
    if not name:
        return False
    if _is_ip(name) or name == "localhost" or name.endswith(".localhost"):
        return True
    if port is None:
        port = 80
    if port != server_port:
        return True  # reached through a proxy listening elsewhere
    with _lock:
        if name in _hosts:
            return True
    return name in _configured("NGLIVE_ALLOWED_HOSTS")


def origin_allowed(origin: str, host_header: str | None, server_port: int) -> bool:
    """Whether a page at ``origin`` may read data from this server (CORS).

    Examples
    --------
    >>> origin_allowed("http://jupyter.example:8888", "jupyter.example:8888", 8000)
    True
    >>> origin_allowed("http://evil.example:8000", "127.0.0.1:8000", 8000)
    False
    """
    if not origin or origin == "null":
        return False
    try:
        u = urllib.parse.urlsplit(origin)
        if u.scheme not in ("http", "https") or not u.hostname:
            return False
        normal = _origin_of(u)
        own = urllib.parse.urlsplit(f"{u.scheme}://{(host_header or '').strip()}")
        if own.hostname and _origin_of(own) == normal:
            return True  # the page's own origin (also through a proxy that keeps Host)
    except ValueError:
        return False
    direct = {f"http://{h}:{server_port}" for h in ("127.0.0.1", "localhost", "[::1]")}
    if normal in direct:
        return True
    with _lock:
        if normal in _origins:
            return True
    return normal in _configured("NGLIVE_ALLOWED_ORIGINS")


def redact(text: str) -> str:
    """``text`` with every token replaced by ``<token>``.

    Examples
    --------
    >>> redact("404 GET /nglive/AbCdEf123/x/info (127.0.0.1)")
    '404 GET /nglive/<token>/x/info (127.0.0.1)'
    """
    text = _TOKEN_ROUTE.sub(r"\1<token>", text)
    for token in _known_tokens():
        if token and token in text:
            text = text.replace(token, "<token>")
    return text


def _known_tokens() -> list[str]:
    from . import server as _server

    tokens = list(_server._SERVERS)
    ng = _ng_server()
    if ng is not None:
        tokens.append(ng.token)
        with contextlib.suppress(RuntimeError):  # resized while we copy: skip this once
            tokens.extend(list(ng.viewers.keys()))
    return tokens


def _ng_server():
    import neuroglancer.server

    return neuroglancer.server.global_server


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — a broken record: let logging report it
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactTokens()
for _name in ("tornado.access", "tornado.application", "tornado.general"):
    logging.getLogger(_name).addFilter(_FILTER)


# -- applying it to the server ---------------------------------------------------------


class _Refuse(tornado.web.RequestHandler):
    """Answers a request the guard refused, with the status it chose."""

    def prepare(self) -> None:
        self.set_status(int(self.path_kwargs["status"]))
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self.path_kwargs["why"])

    def log_exception(self, typ, value, tb) -> None:  # refusals are not errors
        pass


class _Guard(tornado.routing.Matcher):
    """Runs first for every request: refuses foreign hosts, caps request bodies."""

    def __init__(self, ng_server):
        self.ng_server = ng_server

    def match(self, request):
        if not host_allowed(request.headers.get("Host"), self.ng_server.port):
            return {"path_args": [], "path_kwargs": {
                "status": "403",
                "why": "this server answers only to the address it is reached by; "
                       "set NGLIVE_ALLOWED_HOSTS to add a host name\n"}}
        m = _NG_POST.match(request.path or "")
        large = m is not None and m.group(1) in self.ng_server.viewers
        conn = request.connection
        if not large and hasattr(conn, "set_max_body_size"):
            conn.set_max_body_size(LIMITS.max_small_body)
        return None


class _SecurityHeaders(tornado.web.OutputTransform):
    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        return status_code, headers, chunk


def _client_errors_are_400(handler_class) -> None:
    """Neuroglancer's POST handlers parse JSON bodies without a guard: a malformed body
    raises there and would be a 500. Such errors come from the request: answer 400."""
    if getattr(handler_class, "_nglive_guarded", False):
        return
    original = handler_class._handle_request_exception

    def _handle_request_exception(self, e):
        if isinstance(e, ValueError | KeyError | TypeError | IndexError):
            if not self._finished:
                self.send_error(400)  # the client's mistake: nothing to log
            return None
        return original(self, e)

    handler_class._handle_request_exception = _handle_request_exception
    handler_class._nglive_guarded = True


def _apply_timeouts(ng_server) -> None:
    params = ng_server.http_server.conn_params
    params.header_timeout = LIMITS.idle_timeout  # also the wait between keep-alive requests
    params.body_timeout = LIMITS.body_timeout


def _servers() -> list:
    ng = _ng_server()
    return [ng] if ng is not None and id(ng) in _hardened else []


def harden(ng_server) -> None:
    """Apply the checks above to neuroglancer's server (once; on its event loop thread)."""
    if id(ng_server) in _hardened:
        return
    _hardened.add(id(ng_server))
    app = ng_server.app
    app.default_router.rules.insert(0, tornado.routing.Rule(_Guard(ng_server), _Refuse))
    for rule in app.wildcard_router.rules:
        target = rule.target
        if (isinstance(target, type) and issubclass(target, tornado.web.RequestHandler)
                and target.__module__.startswith("neuroglancer")):
            _client_errors_are_400(target)
    app.transforms.append(_SecurityHeaders)
    _apply_timeouts(ng_server)
    if ng_server._bind_address not in ("127.0.0.1", "localhost", "::1"):
        # bound to the network on purpose: the machine's own names reach it too
        for name in {socket.gethostname(), socket.getfqdn()}:
            allow(name)
    http_server = ng_server.http_server
    handle_stream = http_server.handle_stream

    def guarded_handle_stream(stream, address):
        ip = address[0] if isinstance(address, tuple) else str(address)
        open_here = sum(1 for c in list(http_server._connections)
                        if getattr(c.context, "remote_ip", None) == ip)
        if open_here >= LIMITS.max_connections_per_client:
            _refuse_connection(stream)
            return
        _answer_oversized_headers(stream)
        handle_stream(stream, address)

    http_server.handle_stream = guarded_handle_stream


def _refuse_connection(stream: tornado.iostream.IOStream) -> None:
    try:
        future = stream.write(_TOO_MANY)
    except tornado.iostream.StreamClosedError:
        return
    future.add_done_callback(lambda _f: stream.close())


def _answer_oversized_headers(stream: tornado.iostream.IOStream) -> None:
    # tornado closes the connection without a word when a request's headers exceed its
    # limit; say 431 first (a direct send: the stream is about to be closed).
    check = getattr(stream, "_check_max_bytes", None)
    if check is None:
        return

    def checked(delimiter, size):
        try:
            check(delimiter, size)
        except tornado.iostream.UnsatisfiableReadError:
            with contextlib.suppress(OSError):
                stream.socket.send(_TOO_LARGE)
                _drain(stream.socket)
            raise

    stream._check_max_bytes = checked


def _drain(sock, limit: int = 1 << 20) -> None:
    """Read what the client already sent, so closing does not reset the connection
    before it reads the 431 (unread data makes the kernel send RST)."""
    got = 0
    while got < limit:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            return
        got += len(data)
