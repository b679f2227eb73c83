"""A CAVE table in the real client: a fake-CAVE table renders as points, the graphene
source is read with the CAVE token the kernel handed over (middleauth), and after the
server gains rows ``refresh()`` makes the client fetch the new generation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cave.fake_server import FakeTable, synthetic  # tests/ is on sys.path

import nglive

from .imaging import colour_pixels
from .waiting import poll

pytest.importorskip("caveclient")

RED = "void main() {\n  setColor(vec3(1.0, 0.0, 0.0));\n}\n"


def points(n, x0, rng, sv_ids):
    """Points at one z section, ``x0 <= x < x0 + 2000`` voxels."""
    return pd.DataFrame({
        "id": np.arange(1, n + 1), "created": 0.0,
        "pt_position_x": rng.integers(x0, x0 + 2000, n),
        "pt_position_y": rng.integers(20000, 22000, n),
        "pt_position_z": np.full(n, 20000),
        "pt_supervoxel_id": rng.choice(sv_ids, n),
    })


@pytest.fixture
def cave(tmp_path, monkeypatch):
    # https, as real CAVE: Neuroglancer reads middleauth sources over https only
    server = synthetic(n_synapses=10, tls_dir=str(tmp_path))
    rng = np.random.default_rng(3)
    rows = points(300, 20000, rng, server.graph.sv_ids)
    rows["created"] = server.t0
    server.add_table(FakeTable("somas", "cell_type_local", rows))
    server.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.cert_file)  # caveclient trusts it
    yield server
    server.stop()


@pytest.fixture
def page(browser):
    # the browser trusts the fake server's self-signed certificate
    context = browser.new_context(viewport={"width": 1000, "height": 800},
                                  ignore_https_errors=True)
    yield context.new_page()
    context.close()


def test_cave_table_renders_and_refresh_fetches_new_rows(cave, page):
    from caveclient import CAVEclient

    client = CAVEclient(cave.datastack, server_address=cave.base_url, auth_token=cave.token,
                        write_server_cache=False)
    viewer = nglive.Viewer(log_requests=True, layout="xy")
    try:
        seg = viewer.add_datastack(client, image=False)
        layer = viewer.add_cave_table(client, "somas", shader=RED)
        with viewer.txn() as s:
            s.position = [21000, 21000, 20000]  # voxels of the datastack's 4x4x40 nm
            s.cross_section_scale = 10
            s.layers[seg].segments = set()
        page.goto(viewer.url)
        before = poll(lambda: colour_pixels(page.screenshot(), 0), lambda v: v > 500)
        assert before > 500
        keys = [r.key for r in viewer.server.requests]
        assert "somas/annotations/0/info" in keys
        assert any(k.startswith("somas/annotations/0/by_spatial_level_0/") for k in keys)
        # the graphene source was read with the token caveclient holds (middleauth+)
        info = f"/segmentation/table/{cave.pcg_table}/info"
        assert poll(lambda: [ok for _, p, ok in cave.requests if p == info],
                    lambda v: any(v), timeout=20) and all(
            ok for _, p, ok in cave.requests if p == info)

        new = points(300, 22000, np.random.default_rng(4), cave.graph.sv_ids)
        cave.add_rows("somas", new.drop(columns=["id", "created"]).assign(id=0, created=0))
        cave.materialize()
        assert layer.refresh() == {"annotations": 1}
        assert viewer.server.wait_for_request(
            lambda r: r.key.startswith("somas/annotations/1/by_spatial_level_0/"), timeout=30)
        after = poll(lambda: colour_pixels(page.screenshot(), 0), lambda v: v > 1.5 * before)
        assert after > 1.5 * before
    finally:
        viewer.close()
