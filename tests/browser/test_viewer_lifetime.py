"""In JupyterLab: re-running the cell that makes a viewer frees the old one; clearing an
output frees a viewer nothing refers to, and keeps one that a variable still holds.

The widget tells the kernel when its views appear and go; the kernel then frees a viewer
that no output shows and only IPython's output history (``Out[n]``) refers to.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from .jupyter_fixtures import cell_errors, open_notebook, run_cells, wait_until

SETUP = """\
import gc, weakref
import nglive, pandas as pd
df = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [1.0, 2, 3, 5], "z": [1.0, 3, 2, 4]})
made = []
"""
VIEWER = """\
viewer = nglive.Viewer(height="250px")
viewer.add_annotations("pts", df)
made.append((weakref.ref(viewer), viewer.url))
viewer
"""
REPORT = """\
gc.collect()
print("STATE " + json.dumps([[r() is not None, url] for r, url in made]))
"""


def cell_text(page, index: int) -> str:
    return page.evaluate("""(i) => {
      const nb = window.jupyterapp.shell.currentWidget.content;
      return nb.widgets[i].model.outputs.toJSON().map(o => o.text || "").join("");
    }""", index)


def viewer_states(page, report_cell: int) -> list:
    run_cells(page, report_cell, report_cell + 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = cell_text(page, report_cell)
        if "STATE " in text:
            return json.loads(text.split("STATE ", 1)[1].splitlines()[0])
        time.sleep(0.2)
    raise AssertionError(f"no report: {cell_text(page, report_cell)!r}")


def alive_within(page, report_cell: int, expected: list, seconds: float = 12) -> list:
    """The viewers' states once they are ``expected`` (re-reported until then)."""
    deadline = time.monotonic() + seconds
    while True:
        states = viewer_states(page, report_cell)
        if [alive for alive, _ in states] == expected or time.monotonic() > deadline:
            return states
        time.sleep(1.0)


def page_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def test_rerun_and_cleared_outputs_free_viewers(jupyter_lab, page):
    lab = jupyter_lab()
    lab.write_notebook("lifetime.ipynb", [
        ("code", SETUP), ("code", VIEWER), ("code", "import json\n" + REPORT),
        ("code", "del viewer\n"),
    ])
    open_notebook(page, lab, "lifetime.ipynb")
    run_cells(page, 0, 2)
    page.locator("iframe.nglive-frame").first.wait_for(state="attached", timeout=30000)

    run_cells(page, 1, 2)  # re-run: the first viewer's output is replaced
    wait_until(lambda: page.locator("iframe.nglive-frame").count() == 1, 20,
               "the re-run cell should show one viewer")
    page.locator("iframe.nglive-frame").first.wait_for(state="attached", timeout=30000)
    states = alive_within(page, 2, [False, True])  # freed within seconds of the re-run
    assert [alive for alive, _ in states] == [False, True], states
    assert page_status(states[0][1]) == 404 and page_status(states[1][1]) == 200

    # clearing the output of a viewer a variable still holds keeps it
    page.evaluate("""() => {
      const app = window.jupyterapp;
      app.shell.currentWidget.content.activeCellIndex = 1;
      return app.commands.execute('notebook:clear-cell-output');
    }""")
    time.sleep(1.0)
    assert [alive for alive, _ in viewer_states(page, 2)] == [False, True]
    # once nothing refers to it either, it goes after a later cell (Out[n] does not
    # count); the check runs at most every few seconds
    run_cells(page, 3, 4)
    states = alive_within(page, 2, [False, False])
    assert [alive for alive, _ in states] == [False, False], states
    run_cells(page, 1, 2)  # a new one, shown, then unreferenced and its output cleared
    page.locator("iframe.nglive-frame").first.wait_for(state="attached", timeout=30000)
    run_cells(page, 3, 4)
    page.evaluate("""() => {
      const app = window.jupyterapp;
      app.shell.currentWidget.content.activeCellIndex = 1;
      return app.commands.execute('notebook:clear-cell-output');
    }""")
    states = alive_within(page, 2, [False, False, False])
    assert [alive for alive, _ in states] == [False, False, False], states
    assert page_status(states[2][1]) == 404
    assert not cell_errors(page), cell_errors(page)
