"""Fixtures for the CAVE tests: a fake deployment on loopback and caveclient pointed at it."""

from __future__ import annotations

import pytest

pytest.importorskip("caveclient")

from .fake_server import synthetic  # noqa: E402


@pytest.fixture
def cave():
    """A fake minnie65_public-like deployment, running until the test ends."""
    server = synthetic().start()
    yield server
    server.stop()


def make_client(cave, **keywords):
    from caveclient import CAVEclient

    return CAVEclient(cave.datastack, server_address=cave.base_url, auth_token=cave.token,
                      write_server_cache=False, **keywords)


@pytest.fixture
def client(cave):
    return make_client(cave)


@pytest.fixture
def viewer():
    """A real Viewer (real server on loopback, real Store), closed after the test."""
    import nglive

    v = nglive.Viewer()
    yield v
    v.close()
