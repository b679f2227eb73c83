"""JupyterLab for browser tests: a private server per test, notebooks written to its root.

Everything Jupyter reads or writes (config, data, runtime, IPython profile) lives in the
test's tmp dir, so a user's own settings and kernels cannot change the result. The kernel
is this interpreter (a kernelspec written for ``sys.executable``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterLab:
    """A running JupyterLab server (loopback only)."""

    proc: subprocess.Popen
    port: int
    base_url: str  # "/" or e.g. "/user/test/"
    root_dir: Path
    log_path: Path
    kernel_pids: list[int] = field(default_factory=list)

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.base_url}{path.lstrip('/')}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url(f"api/{path}"), method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def write_notebook(self, name: str, cells: list[tuple[str, str]]) -> Path:
        """Write ``[(cell_type, source), ...]`` as an nbformat-4 notebook in the root dir."""
        nb = {
            "cells": [_cell(kind, src) for kind, src in cells],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python",
                               "name": "python3"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = self.root_dir / name
        path.write_text(json.dumps(nb, indent=1))
        return path

    def stop(self) -> None:
        # Kernels first, through the API (a clean kernel shutdown), then the server by PID.
        with contextlib.suppress(Exception):
            for kernel in self.api("kernels"):
                with contextlib.suppress(Exception):
                    self.api(f"kernels/{kernel['id']}", method="DELETE")
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _cell(kind: str, source: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source, "id": os.urandom(4).hex()}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def start_jupyter_lab(tmp: Path, *, base_url: str = "/", extra_args=(),
                      timeout: float = 60) -> JupyterLab:
    """Start JupyterLab on a free loopback port with private Jupyter dirs under ``tmp``."""
    tmp = Path(tmp)
    root = tmp / "root"
    dirs = {name: tmp / name for name in ("config", "data", "runtime", "path", "ipython")}
    for d in (root, *dirs.values()):
        d.mkdir(parents=True, exist_ok=True)
    (dirs["config"] / "labconfig").mkdir(exist_ok=True)
    (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(PAGE_CONFIG))
    _write_kernelspec(dirs["path"] / "kernels" / "python3")
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_PATH=str(dirs["path"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_TOKEN", None)
    log_path = tmp / "jupyterlab.log"
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = free_port()
        args = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.token=", "--ServerApp.password=",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
            f"--ServerApp.base_url={base_url}",
            "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
            "jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
            *extra_args,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--allow-root")
        log = log_path.open("ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        log.close()
        lab = JupyterLab(proc, port, base_url, root, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(lab.url("api/status"), timeout=2) as resp:
                    if resp.status == 200:
                        return lab
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.25)
        last_error = lab.log()
        lab.stop()
    pytest.fail(f"JupyterLab did not start; its log ends:\n{last_error}")


def _write_kernelspec(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (path / "kernel.json").write_text(json.dumps(spec))


# -- driving the JupyterLab page -------------------------------------------------------------

KERNEL_IDLE_JS = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return Boolean(k && k.status === 'idle' && w.content && w.content.widgets.length);
}"""


def open_notebook(page, lab: JupyterLab, name: str, host: str = "127.0.0.1",
                  timeout_ms: int = 45000) -> None:
    """Open ``name`` in JupyterLab and wait until its kernel is idle."""
    page.goto(lab.url(f"lab/tree/{name}", host=host), wait_until="domcontentloaded")
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_ms)


def run_cells(page, start: int, stop: int | None = None) -> None:
    """Run notebook cells ``start`` .. ``stop - 1`` (to the end without ``stop``) in order."""
    page.evaluate(
        """async ([start, stop]) => {
          const app = window.jupyterapp;
          const nb = app.shell.currentWidget.content;
          const end = stop === null ? nb.widgets.length : stop;
          for (let i = start; i < end; i++) {
            nb.activeCellIndex = i;
            await app.commands.execute('notebook:run-cell');
          }
        }""",
        [start, stop],
    )


def cell_errors(page) -> list[str]:
    """``ename: evalue`` of every error output in the open notebook (warnings excluded)."""
    return page.evaluate("""() => {
      const nb = window.jupyterapp.shell.currentWidget.content;
      const errors = [];
      for (const cell of nb.model.cells) {
        if (cell.type !== 'code') continue;
        for (let i = 0; i < cell.outputs.length; i++) {
          const out = cell.outputs.get(i).toJSON();
          if (out.output_type === 'error') errors.push(`${out.ename}: ${out.evalue}`);
        }
      }
      return errors;
    }""")


def read_request_log(path: Path) -> list[dict]:
    """Records written by the notebook's request hook (one JSON object a line)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def wait_for_logged(path: Path, predicate, timeout: float, what: str) -> dict:
    """Poll the request log until a record satisfies ``predicate``; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        for rec in read_request_log(path):
            if predicate(rec):
                return rec
        if time.monotonic() > deadline:
            keys = [f"{r['status']} {r['key']}" for r in read_request_log(path)]
            pytest.fail(f"the kernel's server never got {what}; it got: {keys}")
        time.sleep(0.25)


REQUEST_LOG_CELL = """\
import json as _json, pathlib as _pathlib

_request_log = _pathlib.Path({path!r})

def _log_request(record):
    with _request_log.open("a") as f:
        f.write(_json.dumps({{"status": record.status, "method": record.method,
                             "key": record.key, "range": record.range}}) + "\\n")
"""


@pytest.fixture
def jupyter_lab(tmp_path):
    """A factory: ``jupyter_lab(base_url="/", extra_args=())`` -> JupyterLab; stopped after."""
    started: list[JupyterLab] = []

    def start(base_url: str = "/", extra_args=()) -> JupyterLab:
        lab = start_jupyter_lab(tmp_path / f"lab{len(started)}", base_url=base_url,
                                extra_args=extra_args)
        started.append(lab)
        return lab

    yield start
    for lab in started:
        lab.stop()


# -- reading the Neuroglancer client inside the widget ----------------------------------------

def segment_labels(frame) -> set[str]:
    """Labels in the Seg. tab's segment list (without the ``#tag`` suffixes)."""
    texts = frame.locator(".neuroglancer-segment-list-entry-name").all_inner_texts()
    labels = {t.split(" #")[0].strip() for t in texts}
    return {t for t in labels if t.rstrip("▲▼") != "label"}  # the list's sort header


def wait_until(condition, timeout: float, message) -> None:
    """Poll ``condition()`` until true; fail with ``message()`` (or the string) at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        time.sleep(0.25)
