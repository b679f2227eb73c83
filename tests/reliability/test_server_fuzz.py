"""Hostile and malformed requests over raw sockets: 4xx (never 5xx), no token in any log,
idle and half-sent connections closed, a bounded number of connections per client."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import time

import neuroglancer
import pytest

from nglive import server_security
from nglive.server import DataServer
from nglive.store import Store

from .conftest import nglive_threads, no_new_threads


@pytest.fixture(scope="module")
def target():
    store = Store()
    server = DataServer(store)
    gen = store.write_generation("layer/src", {"info": b'{"a": 1}', "blob": bytes(4096)})
    ng = neuroglancer.Viewer()  # a live Neuroglancer page: its token must not leak either
    yield server, gen, ng
    server.close()


@pytest.fixture
def captured_logs():
    """Every record tornado and nglive log while the test runs, as text."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    names = ["tornado.access", "tornado.application", "tornado.general", "nglive.server",
             "tornado"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes or stalls."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
    finally:
        sock.close()
    return out


def statuses(reply: bytes) -> list[int]:
    """Status codes of every response in ``reply`` (pipelined requests give several)."""
    codes = []
    for line in reply.split(b"\r\n"):
        if line.startswith(b"HTTP/1.") and len(line) >= 12 and line[9:12].isdigit():
            codes.append(int(line[9:12]))
    return codes


def hostile_requests(server, gen, ng) -> list[tuple[str, bytes, str]]:
    """(name, raw bytes, expectation): "4xx", "ok" (2xx/3xx) or "4xx-or-closed"."""
    host = f"127.0.0.1:{server.port}".encode()
    tok = server.token.encode()
    ngt = ng.token.encode()
    key = f"{gen.path}/blob".encode()
    data = b"/nglive/" + tok + b"/" + key

    def get(path: bytes, *headers: bytes, method: bytes = b"GET", body: bytes = b"") -> bytes:
        lines = [method + b" " + path + b" HTTP/1.1", b"Host: " + host, b"Connection: close",
                 *headers]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    cases = [
        ("valid get", get(data), "ok"),
        ("valid range", get(data, b"Range: bytes=0-9"), "ok"),
        ("garbage line", b"GARBAGE\r\n\r\n", "4xx"),
        ("http/0.9", b"GET /\r\n\r\n", "4xx-or-closed"),
        ("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "4xx-or-closed"),
        ("binary", bytes(range(256)) * 4 + b"\r\n\r\n", "4xx-or-closed"),
        ("no host", b"GET " + data + b" HTTP/1.1\r\nConnection: close\r\n\r\n", "4xx"),
        ("two hosts", get(data, b"Host: evil.test"), "4xx"),
        ("rebinding host", get(data).replace(b"Host: 127.0.0.1", b"Host: evil.test"), "4xx"),
        ("huge url", get(b"/nglive/" + tok + b"/" + b"a" * 200_000), "4xx-or-closed"),
        ("huge header", get(data, b"X-Big: " + b"a" * 200_000), "4xx-or-closed"),
        ("many headers", get(data, *[b"X-%d: v" % i for i in range(3000)]), "ok"),
        ("too many headers", get(data, *[b"X-%d: v" % i for i in range(20000)]),
         "4xx-or-closed"),
        ("bad header line", get(data, b"no colon here"), "4xx"),
        ("nul in header", get(data, b"X-A: a\x00b"), "4xx-or-closed"),
        ("huge content-length", get(data, b"Content-Length: 99999999999999999999"), "4xx"),
        ("negative content-length", get(data, b"Content-Length: -5"), "4xx"),
        ("body on get", get(data, b"Content-Length: 200000", body=b"x" * 200_000), "4xx"),
        ("bad chunked", get(data, b"Transfer-Encoding: chunked", body=b"zz\r\n"), "4xx"),
        ("cl and te", get(data, b"Content-Length: 3", b"Transfer-Encoding: chunked",
                          body=b"0\r\n\r\n"), "4xx"),
        ("post", get(data, b"Content-Length: 2", method=b"POST", body=b"{}"), "4xx"),
        ("put", get(data, b"Content-Length: 1", method=b"PUT", body=b"x"), "4xx"),
        ("delete", get(data, method=b"DELETE"), "4xx"),
        ("trace", get(data, method=b"TRACE"), "4xx"),
        ("connect", b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: " + host
         + b"\r\nConnection: close\r\n\r\n", "4xx"),
        ("made-up method", get(data, method=b"FROB"), "4xx"),
        ("lowercase method", get(data, method=b"get"), "4xx"),
        ("absolute uri", get(b"http://evil.test" + data), "4xx"),
        ("options star", get(b"*", method=b"OPTIONS"), "4xx"),
        ("percent ff", get(b"/nglive/" + tok + b"/%ff%fe"), "4xx"),
        ("nul in path", get(b"/nglive/" + tok + b"/a%00b"), "4xx"),
        ("traversal", get(b"/nglive/" + tok + b"/../../etc/passwd"), "4xx"),
        ("encoded traversal", get(b"/nglive/" + tok + b"/%2e%2e/%2e%2e/etc/passwd"), "4xx"),
        ("backslash", get(b"/nglive/" + tok + b"/..%5c..%5cetc"), "4xx"),
        ("long key", get(b"/nglive/" + tok + b"/" + b"k/" * 10_000 + b"x"), "4xx"),
        ("wrong token", get(b"/nglive/" + b"A" * 32 + b"/" + key), "4xx"),
        ("query and fragment", get(data + b"?x=1#frag"), "ok"),
        ("range: many", get(data, b"Range: bytes=" + b"0-1," * 2000 + b"0-1"), "ok"),
        ("range: huge numbers", get(data, b"Range: bytes=" + b"9" * 400 + b"-"), "4xx"),
        ("range: end huge", get(data, b"Range: bytes=0-" + b"9" * 400), "ok"),
        ("range: beyond int digits", get(data, b"Range: bytes=" + b"9" * 900 + b"-"), "ok"),
        ("range: negative", get(data, b"Range: bytes=-"), "4xx"),
        ("range: reversed", get(data, b"Range: bytes=10-2"), "4xx"),
        ("range: junk", get(data, b"Range: lines=1-2"), "ok"),
        ("range: unicode", get(data, "Range: bytes=١-٢".encode()), "ok"),
        ("if-none-match junk", get(data, b"If-None-Match: " + b'"x",' * 3000), "ok"),
        ("foreign origin", get(data, b"Origin: http://evil.test"), "4xx"),
        ("null origin", get(data, b"Origin: null"), "4xx"),
        ("bad origin", get(data, b"Origin: ::::"), "4xx"),
        ("ng state garbage", get(b"/state/" + ngt, b"Content-Length: 5", method=b"POST",
                                 body=b"{oops"), "4xx"),
        ("ng state wrong shape", get(b"/state/" + ngt, b"Content-Length: 2", method=b"POST",
                                     body=b"[]"), "4xx"),
        ("ng action garbage", get(b"/action/" + ngt, b"Content-Length: 4", method=b"POST",
                                  body=b"null"), "4xx"),
        ("ng events no args", get(b"/events/" + ngt), "4xx"),
        ("ng volume reply junk", get(b"/volume_response/" + ngt + b"/1/chunk?p=%7B",
                                     b"Content-Length: 1", method=b"POST", body=b"x"), "4xx"),
        ("ng wrong token", get(b"/state/" + b"f" * 40, b"Content-Length: 2", method=b"POST",
                               body=b"{}"), "4xx"),
        ("ng big body, no viewer", get(b"/state/" + b"f" * 40, b"Content-Length: 10000000",
                                       method=b"POST"), "4xx"),
        ("ng page traversal", get(b"/v/" + ngt + b"/../../../etc/passwd"), "4xx"),
        ("ng info bad token", get(b"/neuroglancer/info/" + b"x" * 50), "4xx"),
        ("ng mesh junk", get(b"/neuroglancer/mesh/" + ngt + b".x/99"), "4xx"),
        ("pipelined", get(data).replace(b"Connection: close\r\n", b"") * 3 + get(data), "ok"),
    ]
    # random bytes after a valid start line: whatever they are, never a 5xx
    rng = random.Random(13)
    for i in range(40):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        cases.append((f"random headers {i}", b"GET " + data + b" HTTP/1.1\r\nHost: " + host
                      + b"\r\n" + junk + b"\r\n\r\n", "any"))
    return cases


def test_hostile_requests_get_4xx_and_leave_no_token_in_logs(target, captured_logs):
    server, gen, ng = target
    threads = nglive_threads()
    failures = []
    for name, raw, expect in hostile_requests(server, gen, ng):
        reply = exchange(server.port, raw)
        codes = statuses(reply)
        if any(c >= 500 for c in codes):
            failures.append(f"{name}: {codes}")
        elif expect == "ok" and not (codes and all(200 <= c < 400 for c in codes)):
            failures.append(f"{name}: expected success, got {codes or reply[:80]}")
        elif expect == "4xx" and not (codes and all(400 <= c < 500 for c in codes)):
            failures.append(f"{name}: expected 4xx, got {codes or reply[:80]}")
        elif expect == "4xx-or-closed" and not all(400 <= c < 500 for c in codes):
            failures.append(f"{name}: expected 4xx or a closed connection, got {codes}")
        if b"root:" in reply or b"Traceback" in reply:
            failures.append(f"{name}: leaked {reply[:120]!r}")
    assert not failures, "\n".join(failures)
    # still serving normally
    reply = exchange(server.port, b"GET /nglive/" + server.token.encode() + b"/"
                     + f"{gen.path}/info".encode() + f" HTTP/1.1\r\nHost: 127.0.0.1:"
                     f"{server.port}\r\nConnection: close\r\n\r\n".encode())
    assert statuses(reply) == [200] and reply.endswith(b'{"a": 1}')
    assert no_new_threads(threads), nglive_threads()
    text = "\n".join(captured_logs)
    secrets = [server.token, ng.token, neuroglancer.server.global_server.token]
    leaked = [s for s in secrets if s in text]
    assert not leaked, [line for line in captured_logs if any(s in line for s in leaked)][:5]


def test_uncaught_errors_are_logged_without_the_token(target, captured_logs, monkeypatch):
    server, gen, _ng = target

    def broken_read(*args, **kwargs):
        raise OSError(f"disk on fire while reading /nglive/{server.token}/x")

    monkeypatch.setattr(server.store, "lookup", broken_read)
    reply = exchange(server.port, f"GET /nglive/{server.token}/{gen.path}/info HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n".encode())
    assert statuses(reply) == [503]
    text = "\n".join(captured_logs)
    assert "disk on fire" in text and server.token not in text


@pytest.fixture
def short_limits():
    old = {k: getattr(server_security.LIMITS, k) for k in vars(server_security.LIMITS)}
    server_security.configure(idle_timeout=1.0, body_timeout=1.0, max_connections_per_client=8)
    yield
    server_security.configure(**old)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_and_half_sent_connections_are_closed(target, short_limits):
    server, gen, _ng = target
    idle = socket.create_connection(("127.0.0.1", server.port))
    half_headers = socket.create_connection(("127.0.0.1", server.port))
    half_headers.sendall(b"GET /nglive/" + server.token.encode() + b"/x HTTP/1.1\r\nHost: 1")
    half_body = socket.create_connection(("127.0.0.1", server.port))
    half_body.sendall(f"GET /nglive/{server.token}/{gen.path}/info HTTP/1.1\r\nHost: "
                      f"127.0.0.1:{server.port}\r\nContent-Length: 100\r\n\r\nonly ten b"
                      .encode())
    t0 = time.monotonic()
    try:
        for sock in (idle, half_headers, half_body):
            assert closed_within(sock, 5.0)
        assert time.monotonic() - t0 < 5.0
    finally:
        for sock in (idle, half_headers, half_body):
            sock.close()


def test_connections_per_client_are_bounded(target, short_limits):
    server, gen, _ng = target
    request = (f"GET /nglive/{server.token}/{gen.path}/info HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{server.port}\r\n\r\n").encode()
    held = []
    try:
        for _ in range(8):  # keep-alive connections, each answered once and left open
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(request)
            assert b" 200 " in sock.recv(4096)
            held.append(sock)
        extra = exchange(server.port, request)
        assert statuses(extra) == [429]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert statuses(exchange(server.port, request)) == [200]


def test_service_recovers_once_slow_clients_time_out(target, short_limits):
    server, gen, _ng = target
    request = (f"GET /nglive/{server.token}/{gen.path}/blob HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{server.port}\r\nConnection: close\r\n\r\n").encode()
    slow = []
    try:
        for _ in range(8):  # slowloris: headers that never end, as many as allowed
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            slow.append(s)
        time.sleep(0.2)
        assert statuses(exchange(server.port, request)) == [429]
        deadline = time.monotonic() + 5
        while statuses(exchange(server.port, request)) != [200]:
            assert time.monotonic() < deadline, "slow connections were never timed out"
            time.sleep(0.2)
    finally:
        for s in slow:
            s.close()
