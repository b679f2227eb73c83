"""Every example in the package's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import nglive

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(nglive.__path__, "nglive.")
    if not m.name.endswith("__main__")
)


def test_modules_were_found():
    expected = {"nglive.formats.segment_properties", "nglive.layers.base", "nglive.mesh.alpha"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
