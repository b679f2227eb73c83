"""Every notebook in notebooks/ runs top to bottom without an error (no browser: Python side)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.fixture(scope="module")
def kernel_manager_factory(tmp_path_factory):
    """Kernels run this interpreter, whatever kernelspecs the machine has installed."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "python3").mkdir()
    (kernels / "python3" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this environment)",
        "language": "python",
    }))

    def make():
        ksm = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
        return KernelManager(kernel_name="python3", kernel_spec_manager=ksm)

    return make


@contextlib.contextmanager
def fake_cave(home: Path, monkeypatch):
    """The CAVE tutorial's server: a fake deployment on loopback, and a home directory
    holding its token where caveclient looks (as ``CAVEclient.setup_token`` leaves it)."""
    pytest.importorskip("caveclient")
    from cave.fake_server import synthetic  # tests/ is on sys.path

    server = synthetic().start()
    secrets = home / ".cloudvolume" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "cave-secret.json").write_text(json.dumps({"token": server.token}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NGLIVE_CAVE_SERVER", server.base_url)
    try:
        yield server
    finally:
        server.stop()


# Notebooks that need a server of their own while they run.
SERVERS = {"05-cave.ipynb": fake_cave}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_manager_factory, tmp_path, monkeypatch):
    with contextlib.ExitStack() as stack:
        if path.name in SERVERS:
            stack.enter_context(SERVERS[path.name](tmp_path / "home", monkeypatch))
        run_notebook(path, kernel_manager_factory, tmp_path)


def run_notebook(path, kernel_manager_factory, tmp_path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: commit notebooks without outputs"
    client = nbclient.NotebookClient(
        nb,
        km=kernel_manager_factory(),
        timeout=120,
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    errors = [
        out for cell in nb.cells for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors
