"""The Binder path: the quickstart through jupyter-server-proxy under a non-root base_url.

JupyterLab runs as on mybinder.org (jupyter-server-proxy, ``base_url=/user/test/``) and
the page is opened through a host name that does not look like loopback
(``jupyter.test``, mapped to 127.0.0.1 inside Chromium only), so the widget's automatic
mode must choose ``{baseUrl}proxy/{port}/``. The viewer page and every data request
must go through that proxy, the kernel's server must log them, and the meshes must be
drawn.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import CHROMIUM_ARGS
from .imaging import non_background_fraction
from .jupyter_fixtures import (
    REQUEST_LOG_CELL,
    cell_errors,
    open_notebook,
    read_request_log,
    run_cells,
    segment_labels,
    wait_for_logged,
    wait_until,
)

HOST = "jupyter.test"
BASE_URL = "/user/test/"
QUICKSTART = Path(__file__).parents[2] / "notebooks" / "01-quickstart.ipynb"

# Prepended to the quickstart: log every request the kernel's data server answers.
HOOK_CELL = REQUEST_LOG_CELL + """
import nglive.server as _server

_record = _server.DataServer._record

def _logging_record(self, record):
    _log_request(record)
    _record(self, record)

_server.DataServer._record = _logging_record
"""


def test_quickstart_through_jupyter_server_proxy(jupyter_lab, playwright_instance,
                                                chromium_executable, tmp_path):
    lab = jupyter_lab(base_url=BASE_URL, extra_args=[
        # accept the Host header of the non-loopback name (the server still binds 127.0.0.1)
        f"--ServerApp.local_hostnames=['localhost','{HOST}']",
        "--ServerApp.jpserver_extensions={'jupyter_server_proxy': True}",
    ])
    log_path = lab.root_dir / "requests.jsonl"
    quickstart = json.loads(QUICKSTART.read_text())
    cells = [("code", HOOK_CELL.format(path=str(log_path)))] + [
        (c["cell_type"], "".join(c["source"])) for c in quickstart["cells"]
    ]
    lab.write_notebook("quickstart.ipynb", cells)

    # Neuroglancer fetches meshes from a web worker, whose requests Playwright does not
    # report; Chromium's net log records every request the browser makes.
    net_log = tmp_path / "netlog.json"
    browser = playwright_instance.chromium.launch(
        executable_path=chromium_executable, headless=True,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
              f"--log-net-log={net_log}"],
    )
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        seen: list[str] = []
        context.on("request", lambda r: seen.append(r.url))
        page = context.new_page()
        open_notebook(page, lab, "quickstart.ipynb", host=HOST)
        run_cells(page, 0)

        frame_el = page.locator("iframe.nglive-frame")
        frame_el.wait_for(state="attached", timeout=30000)
        frame_el.scroll_into_view_if_needed()
        wait_until(lambda: bool(frame_el.get_attribute("src")), 20, "the iframe got no src")
        src = frame_el.get_attribute("src")
        proxy_root = re.escape(f"http://{HOST}:{lab.port}{BASE_URL}proxy/")
        m = re.match(rf"{proxy_root}(\d+)/v/[^/]+/$", src)
        assert m, f"the viewer is not loaded through the proxy: {src}"
        proxied_data = f"http://{HOST}:{lab.port}{BASE_URL}proxy/{m.group(1)}/nglive/"

        # the kernel's server answers the mesh, property and fragment requests
        for key in ("neurons/mesh/", "neurons/properties/"):
            wait_for_logged(log_path, lambda r, key=key: r["key"].startswith(key)
                            and r["status"] == 200, 40, f"a request for {key}*")
        wait_for_logged(log_path, lambda r: "/fragment/" in r["key"] and r["status"] == 200,
                        30, "a mesh fragment request")
        # Playwright's request events: the viewer page came through the proxy and no data
        # request went around it (they miss the web worker's requests: see the net log below)
        assert any(u.startswith(src) for u in seen), "no request event for the viewer page"
        direct = [u for u in seen if "/nglive/" in u and not u.startswith(proxied_data)]
        assert not direct, f"data requests that bypassed the proxy: {direct[:5]}"

        frame = page.frame_locator("iframe.nglive-frame")
        # the quickstart renamed a neuron in place: the Seg. tab shows the new label
        frame.get_by_text("Seg.", exact=True).click(timeout=30000)
        renamed = "my favourite DA1"
        wait_until(lambda: renamed in segment_labels(frame), 30,
                   lambda: f"the Seg. tab lists {segment_labels(frame)}, not {renamed!r}")

        # the neurons are drawn: the 3-D panel (left of the side panel) is not background
        def drawn() -> float:
            box = frame_el.bounding_box()
            png = frame_el.screenshot()
            return non_background_fraction(png, region=(0, 50, int(box["width"] * 0.55),
                                                        int(box["height"]) - 30))
        wait_until(lambda: drawn() > 0.02, 30,
                   lambda: f"the neurons are not visible: {drawn():.3f} of the panel is drawn")
        assert not cell_errors(page), cell_errors(page)
        context.close()
    finally:
        browser.close()  # also completes the net log

    # every request the kernel's server logged came through the proxy, none directly
    urls = set(re.findall(r'"(https?://[^"\s]+/nglive/[^"\s]+)"', net_log.read_text()))
    direct = sorted(u for u in urls if not u.startswith(proxied_data))
    assert not direct, f"data requests that bypassed the proxy: {direct[:5]}"
    proxied = {u[len(proxied_data):].split("/", 1)[1] for u in urls}
    logged = {r["key"] for r in read_request_log(log_path)}
    assert logged <= proxied, f"logged but not requested through the proxy: {logged - proxied}"
