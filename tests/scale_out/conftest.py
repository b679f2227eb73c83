"""Fixtures for the Dask tests: a LocalCluster of two worker processes (shared by the
module), and the loopback S3 server of the publishing tests (tests/publish/conftest.py)."""

from __future__ import annotations

import pytest
from publish.conftest import S3_ENV, s3_server  # noqa: F401 - re-exported fixture


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes: data really crosses processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", memory_limit="2GiB") as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture
def s3_credentials(monkeypatch):
    """Credentials of the loopback S3 server, in this process's environment."""
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
