"""Fixtures for the publishing tests: a real S3-compatible server (moto) on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "nglive-test",
    "AWS_SECRET_ACCESS_KEY": "nglive-test-secret",
    "AWS_SESSION_TOKEN": "",
    "AWS_DEFAULT_REGION": "us-east-1",
    # never let a credential chain probe the EC2 metadata address: loopback only here
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def viewer():
    """A real Viewer (real server on loopback, real Store), closed after the test."""
    import nglive

    v = nglive.Viewer()
    yield v
    v.close()


@pytest.fixture(scope="session")
def s3_server():
    """``moto_server`` on 127.0.0.1 (a real HTTP S3 API); yields its endpoint URL."""
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable),
                                                      "moto_server")
    if not os.path.exists(exe):
        pytest.fail("moto_server is missing: pip install 'moto[server]' (part of .[test])")
    port = _free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_env(monkeypatch):
    """Credentials for the loopback server in the environment, and no secrets files."""
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    _forget_cloudfiles_credentials()
    yield
    _forget_cloudfiles_credentials()


def _forget_cloudfiles_credentials():
    try:
        from cloudfiles import secrets
    except ImportError:
        return
    for cache in (getattr(secrets, "AWS_CREDENTIALS_CACHE", None),):
        if isinstance(cache, dict):
            for v in cache.values():
                if isinstance(v, dict):
                    v.clear()
    try:
        from cloudfiles import interfaces

        interfaces.S3_POOL.clear()
    except (ImportError, AttributeError):
        pass


@pytest.fixture
def bucket(s3_server, s3_env):
    """A fresh bucket on the loopback S3 server; yields (boto3 client, bucket name)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])
    name = f"pub-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name
