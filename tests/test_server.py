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


def test_cors_for_the_pages_that_need_it(served):
    server, key = served
    port = server.port
    allowed = [
        f"http://127.0.0.1:{port}",  # the viewer page served by this server
        f"http://localhost:{port}",
    ]
    for origin in allowed:
        resp, body = request(server, "GET", data_path(server, key), {"Origin": origin})
        assert resp.status == 200 and body == BODY
        assert resp.getheader("Access-Control-Allow-Origin") == origin
        assert "Content-Range" in resp.getheader("Access-Control-Expose-Headers")
        assert "Origin" in resp.getheader("Vary")
    # through a proxy that keeps the page's Host (jupyter-server-proxy): its own origin
    resp, _ = request(server, "GET", data_path(server, key), {
        "Host": "jupyter.test:8888", "Origin": "http://jupyter.test:8888"})
    assert resp.status == 200
    assert resp.getheader("Access-Control-Allow-Origin") == "http://jupyter.test:8888"
    pre, _ = request(server, "OPTIONS", data_path(server, key), {
        "Origin": allowed[0], "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert pre.status == 204
    assert "Range" in pre.getheader("Access-Control-Allow-Headers")


@pytest.mark.parametrize("origin", ["http://example.org", "null", "http://127.0.0.1:1",
                                    "http://evil.test:8888"])
def test_foreign_origins_get_nothing(served, origin):
    server, key = served
    resp, body = request(server, "GET", data_path(server, key), {"Origin": origin})
    assert resp.status == 403 and body == b""
    assert resp.getheader("Access-Control-Allow-Origin") is None
    pre, _ = request(server, "OPTIONS", data_path(server, key), {
        "Origin": origin, "Access-Control-Request-Method": "GET"})
    assert pre.status == 403 and pre.getheader("Access-Control-Allow-Origin") is None


def test_learned_origin_is_allowed(served):
    from nglive import server_security

    server, key = served
    origin = "https://hub.example.test"
    assert request(server, "GET", data_path(server, key), {"Origin": origin})[0].status == 403
    server_security.allow(origin + "/user/me/proxy/1234")
    resp, _ = request(server, "GET", data_path(server, key), {"Origin": origin})
    assert resp.status == 200 and resp.getheader("Access-Control-Allow-Origin") == origin


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:{port}", True), ("localhost:{port}", True), ("[::1]:{port}", True),
    ("jupyter.test:8888", True),  # a proxy listening on another port forwarded it
    ("hub.example.test", True),  # https through a hub's proxy (port 443)
    ("evil.test:{port}", False),  # DNS rebinding: a foreign name on our port
    ("EVIL.test:{port}", False), ("", False), ("a b:{port}", False),
    ("evil.test@127.0.0.1:{port}", False),
])
def test_host_header_must_name_the_server(served, host, ok):
    server, key = served
    headers = {"Host": host.format(port=server.port)}
    resp, body = request(server, "GET", data_path(server, key), headers)
    page, _ = request(server, "GET", "/v/no-such-viewer/", headers)  # Neuroglancer's route
    if ok:
        assert (resp.status, body, page.status) == (200, BODY, 404)
    else:
        assert resp.status in (400, 403) and page.status in (400, 403)
        assert body != BODY and b"<html" not in body


def test_every_response_keeps_tokens_out_of_referrers(served):
    server, key = served
    for path in (data_path(server, key), "/nglive/wrong/x", "/v/wrong/", "/nothing"):
        resp, _ = request(server, "GET", path)
        assert resp.getheader("Referrer-Policy") == "no-referrer", path


def test_file_store_serves_only_what_it_wrote(tmp_path):
    import os

    (tmp_path / "outside.txt").write_bytes(b"outside secret")
    store = Store(tmp_path / "store")
    server = DataServer(store)
    gen = store.write_generation("p", {"info": b"ok", "data": b"mine"})
    root = tmp_path / "store"
    (root / "stray.txt").write_bytes(b"stray")  # a file nglive did not write
    (root / "p" / "0" / "extra").write_bytes(b"extra")
    os.symlink(tmp_path / "outside.txt", root / "p" / "0" / "link")
    os.replace(root / "p" / "0" / "data", root / "p" / "0" / "data.bak")
    os.symlink(tmp_path / "outside.txt", root / "p" / "0" / "data")  # swapped for a link
    try:
        assert request(server, "GET", data_path(server, f"{gen.path}/info"))[1] == b"ok"
        for k in ("stray.txt", "p/0/extra", "p/0/link", "p/0/data"):
            resp, body = request(server, "GET", data_path(server, k))
            assert resp.status == 404 and b"secret" not in body, k
    finally:
        server.close()


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
