"""Shared fixtures for the binding tests."""

from __future__ import annotations

import pytest

import nglive


@pytest.fixture
def viewer():
    """A real Viewer (real server on loopback, real Store), closed after the test."""
    v = nglive.Viewer()
    yield v
    v.close()
