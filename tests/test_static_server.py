"""``nglive serve DIR``: the static server for published directories, over real HTTP."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import time
import urllib.parse

import pytest

from nglive.static_server import StaticServer

BODY = bytes(range(256)) * 8


@pytest.fixture
def root(tmp_path):
    (tmp_path / "layer" / "mesh").mkdir(parents=True)
    (tmp_path / "layer" / "mesh" / "info").write_text('{"@type": "neuroglancer_legacy_mesh"}')
    (tmp_path / "layer" / "mesh" / "7:0").write_text('{"fragments": []}')
    (tmp_path / "layer" / "data.shard").write_bytes(BODY)
    (tmp_path / ".hidden").write_text("secret")
    (tmp_path / "nglive-publication.json").write_text("{}")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("outside")
    os.symlink(outside, tmp_path / "link")
    return tmp_path


def get(url, path, headers=None, method="GET"):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_serves_ranges_cors_and_json(root):
    with StaticServer(root, log_requests=True) as server:
        resp, body = get(server.url, "/layer/data.shard", {"Range": "bytes=10-19"})
        assert resp.status == 206 and body == BODY[10:20]
        assert resp.getheader("Content-Range") == f"bytes 10-19/{len(BODY)}"
        assert resp.getheader("Access-Control-Allow-Origin") == "*"
        resp, body = get(server.url, "/layer/mesh/7:0")
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        resp, _ = get(server.url, "/layer/mesh/info", method="OPTIONS")
        assert resp.status == 204
        assert [r.status for r in server.requests][:2] == [206, 200]


def test_etag_changes_when_a_file_is_republished(root):
    with StaticServer(root) as server:
        first, _ = get(server.url, "/layer/mesh/info")
        time.sleep(0.01)
        (root / "layer" / "mesh" / "info").write_text('{"@type": "neuroglancer_legacy_mesh"} ')
        second, body = get(server.url, "/layer/mesh/info",
                           {"If-None-Match": first.getheader("ETag")})
        assert second.status == 200 and body.endswith(b" ")


@pytest.mark.parametrize("path", ["/.hidden", "/link", "/nglive-publication.json", "/layer",
                                  "/../x", "/layer/%2e%2e/%2e%2e/etc/passwd", "/missing"])
def test_serves_nothing_else(root, path):
    with StaticServer(root) as server:
        resp, body = get(server.url, path)
        assert 400 <= resp.status < 500, (path, resp.status)
        assert b"secret" not in body and b"outside" not in body


def test_command_line_serves_a_directory(root):
    proc = subprocess.Popen(
        [sys.executable, "-m", "nglive.cli", "serve", str(root), "--port", "0",
         "--log-requests"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.match(r"^(http://127\.0\.0\.1:\d+)$", line.strip())
            url = m.group(1) if m else None
        assert url, "nglive serve printed no URL"
        resp, body = get(url, "/layer/data.shard", {"Range": "bytes=-4"})
        assert resp.status == 206 and body == BODY[-4:]
        logged = proc.stderr.readline()  # written once the response is finished
        assert logged.strip() == "206 GET /layer/data.shard bytes=-4"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_command_line_reports_a_missing_directory(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nglive.cli", "serve", str(tmp_path / "no")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "is not a directory" in out.stderr
