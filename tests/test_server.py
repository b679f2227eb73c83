"""The in-kernel data server, exercised over real HTTP on loopback."""

from __future__ import annotations

import http.client
import urllib.parse

import pytest

from nglive.server import DataServer
from nglive.store import Store

BODY = bytes(range(256)) * 4  # 1 KiB, every byte distinct per 256


@pytest.fixture(scope="module")
def served():
    store = Store()
    server = DataServer(store, log_requests=True)
    gen = store.write_generation("layer/mesh", {"info": b'{"@type": "x"}', "blob": BODY})
    yield server, f"{gen.path}/blob"
    server.close()


def request(server, method, path, headers=None):
    u = urllib.parse.urlparse(server.server_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def data_path(server, key):
    return f"/nglive/{server.token}/{key}"


def test_get_whole_key(served):
    server, key = served
    resp, body = request(server, "GET", data_path(server, key))
    assert resp.status == 200
    assert body == BODY
    assert resp.getheader("Content-Length") == str(len(BODY))
    assert resp.getheader("Accept-Ranges") == "bytes"


def test_server_binds_loopback(served):
    server, _ = served
    assert server.server_url.startswith("http://127.0.0.1:")


def test_head_has_headers_no_body(served):
    server, key = served
    resp, body = request(server, "HEAD", data_path(server, key))
    assert resp.status == 200
    assert body == b""
    assert resp.getheader("Content-Length") == str(len(BODY))
    assert resp.getheader("ETag")


@pytest.mark.parametrize(
    "header, start, stop",
    [
        ("bytes=0-9", 0, 10),  # first
        ("bytes=1014-1023", 1014, 1024),  # last
        ("bytes=300-555", 300, 556),  # middle
        ("bytes=-7", 1017, 1024),  # suffix
        ("bytes=1000-", 1000, 1024),  # open-ended
        ("bytes=1000-5000", 1000, 1024),  # end clipped to the size
        ("bytes=-5000", 0, 1024),  # suffix longer than the value
    ],
)
def test_range_requests(served, header, start, stop):
    server, key = served
    resp, body = request(server, "GET", data_path(server, key), {"Range": header})
    assert resp.status == 206
    assert body == BODY[start:stop]
    assert resp.getheader("Content-Range") == f"bytes {start}-{stop - 1}/{len(BODY)}"


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=2000-3000", "bytes=5-2", "bytes=-0"])
def test_unsatisfiable_range_is_416(served, header):
    server, key = served
    resp, _ = request(server, "GET", data_path(server, key), {"Range": header})
    assert resp.status == 416
    assert resp.getheader("Content-Range") == f"bytes */{len(BODY)}"


def test_etag_and_304(served):
    server, key = served
    resp, _ = request(server, "GET", data_path(server, key))
    etag = resp.getheader("ETag")
    resp2, body2 = request(server, "GET", data_path(server, key), {"If-None-Match": etag})
    assert resp2.status == 304
    assert body2 == b""
    resp3, _ = request(server, "GET", data_path(server, key), {"If-None-Match": '"other"'})
    assert resp3.status == 200


def test_etag_differs_between_generations():
    store = Store()
    server = DataServer(store)
    g0 = store.write_generation("p", {"info": b"a"})
    g1 = store.write_generation("p", {"info": b"b"})
    e0 = request(server, "GET", data_path(server, f"{g0.path}/info"))[0].getheader("ETag")
    e1 = request(server, "GET", data_path(server, f"{g1.path}/info"))[0].getheader("ETag")
    assert e0 != e1
    server.close()


def test_cors_headers_and_preflight(served):
    server, key = served
    resp, _ = request(server, "GET", data_path(server, key), {"Origin": "http://example.org"})
    assert resp.getheader("Access-Control-Allow-Origin") == "*"
    assert "Content-Range" in resp.getheader("Access-Control-Expose-Headers")
    pre, _ = request(server, "OPTIONS", data_path(server, key), {
        "Origin": "http://example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert pre.status == 204
    assert "Range" in pre.getheader("Access-Control-Allow-Headers")


def test_wrong_or_missing_token_is_403(served):
    server, key = served
    assert request(server, "GET", f"/nglive/not-the-token/{key}")[0].status == 403
    assert request(server, "GET", f"/nglive//{key}")[0].status == 403
    assert request(server, "GET", "/nglive/")[0].status == 403


def test_missing_key_is_404(served):
    server, _ = served
    resp, _ = request(server, "GET", data_path(server, "layer/mesh/0/nope"))
    assert resp.status == 404
    resp, _ = request(server, "GET", data_path(server, "no/such/generation/info"))
    assert resp.status == 404


@pytest.mark.parametrize(
    "suffix",
    [
        "../../etc/passwd",
        "layer/../../etc/passwd",
        "layer/mesh/0/..%2F..%2F..%2Fetc%2Fpasswd",
        "%2E%2E/%2E%2E/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "layer//mesh",
        "%2Fetc%2Fpasswd",
        "..%5C..%5Cetc%5Cpasswd",
    ],
)
def test_path_traversal_never_serves_a_file(served, suffix):
    server, _ = served
    resp, body = request(server, "GET", f"/nglive/{server.token}/{suffix}")
    assert 400 <= resp.status < 500
    assert b"root:" not in body


def test_traversal_out_of_file_store(tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    store = Store(tmp_path / "store")
    server = DataServer(store)
    store.write_generation("p", {"info": b"ok"})
    for suffix in ["../secret.txt", "p/..%2F..%2Fsecret.txt", "%2E%2E%2Fsecret.txt"]:
        resp, body = request(server, "GET", f"/nglive/{server.token}/{suffix}")
        assert 400 <= resp.status < 500, suffix
        assert b"secret" not in body
    assert request(server, "GET", data_path(server, "p/0/info"))[1] == b"ok"
    server.close()


def test_request_log(served):
    server, key = served
    request(server, "GET", data_path(server, key), {"Range": "bytes=0-1"})
    rec = server.wait_for_request(lambda r: r.range == "bytes=0-1", timeout=5)
    assert rec is not None and rec.status == 206 and rec.key == key


def test_closed_server_stops_serving():
    store = Store()
    server = DataServer(store)
    gen = store.write_generation("p", {"info": b"x"})
    path = data_path(server, f"{gen.path}/info")
    assert request(server, "GET", path)[0].status == 200
    server.close()
    assert request(server, "GET", path)[0].status == 403
