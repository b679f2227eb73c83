"""Pages of other sites in a real browser cannot read the kernel's data; the viewer still can.

Chromium maps ``evil.test`` to 127.0.0.1 (``--host-resolver-rules``), as a DNS-rebinding
attacker would arrange. A tiny loopback server plays the attacker's site. The token is
assumed leaked: the attacks use it.
"""

from __future__ import annotations

import http.server
import threading

import pytest
import trimesh

import nglive

from .conftest import CHROMIUM_ARGS

EVIL = "evil.test"

ATTACK_PAGE = """<!doctype html><title>attack</title><script>
window.results = {};
async function attempt(name, url, options) {
  try {
    const r = await fetch(url, options);
    const text = r.type === "opaque" ? "" : await r.text();
    window.results[name] = {type: r.type, status: r.status, body: text.slice(0, 200)};
  } catch (e) {
    window.results[name] = {error: String(e)};
  }
}
window.attack = async (direct, rebound) => {
  await attempt("cors", direct);
  await attempt("no-cors", direct, {mode: "no-cors"});
  await attempt("rebound cross-port", rebound);
  window.done = true;
};
</script>"""


@pytest.fixture
def attacker_site():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = ATTACK_PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_other_sites_cannot_read_data_and_the_viewer_still_works(
        playwright_instance, chromium_executable, attacker_site):
    viewer = nglive.Viewer(log_requests=True)
    browser = playwright_instance.chromium.launch(
        executable_path=chromium_executable, headless=True,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {EVIL} 127.0.0.1"])
    try:
        viewer.add_meshes("shapes", {1: trimesh.creation.box(extents=(100, 100, 100))})
        source = viewer.state.layers["shapes"].source[0].url.removeprefix("precomputed://")
        info_url = source + "/info"
        key = info_url.split(f"/nglive/{viewer.server.token}/", 1)[1]
        port = viewer.server.port
        context = browser.new_context(viewport={"width": 900, "height": 700})
        page = context.new_page()

        # 1. a page of another site (its own server) with the leaked URL
        page.goto(f"http://{EVIL}:{attacker_site}/")
        page.evaluate("([a, b]) => window.attack(a, b)",
                      [info_url, f"http://{EVIL}:{port}/nglive/{viewer.server.token}/{key}"])
        page.wait_for_function("window.done === true", timeout=20000)
        results = page.evaluate("window.results")
        assert "error" in results["cors"], results  # CORS refused: nothing readable
        assert results["no-cors"].get("type") == "opaque", results
        assert "error" in results["rebound cross-port"], results

        # 2. after DNS rebinding: the attacker's script runs in the origin evil.test:{port}
        # and its requests are same-origin to the kernel's server
        resp = page.goto(f"http://{EVIL}:{port}/")
        assert resp.status == 403
        rebound = page.evaluate(
            "async (path) => { const r = await fetch(path); "
            "return {status: r.status, body: (await r.text()).slice(0, 200)}; }",
            f"/nglive/{viewer.server.token}/{key}")
        assert rebound["status"] == 403 and "neuroglancer" not in rebound["body"], rebound
        page_resp = page.goto(f"http://{EVIL}:{port}/v/{viewer.ng.token}/")
        assert page_resp.status == 403  # nor the Neuroglancer client with its state

        # 3. the legitimate viewer still loads its data, and its page sends no referrer
        viewer_page = context.new_page()
        viewer_page.goto(viewer.url)
        served = viewer.server.wait_for_request(
            lambda r: r.key == key and r.status == 200, timeout=60)
        assert served is not None, "the viewer never loaded its layer"
        referrers = []
        viewer_page.on("request", lambda r: referrers.append(r.headers.get("referer")))
        viewer_page.evaluate("(u) => fetch(u).then(r => r.text())", info_url)
        assert referrers and not any(referrers), referrers
        context.close()
    finally:
        browser.close()
        viewer.close()
