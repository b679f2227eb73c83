"""The alpha tuner: per-group sliders, auto/optimal buttons, a spectrum plot, best/test pins."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import ipywidgets as w
import numpy as np

from ..mesh.spectrum import default_alphas

if TYPE_CHECKING:
    from .alpha_meshes import AlphaMeshLayer


# spectra take ~1-2 s per group at 100k points: computed off the kernel thread, one at
# a time, so the panel appears at once and the plot fills in when ready
_SPECTRA = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nglive-spectrum")
SPECTRUM_SAMPLES = 32


def snap_to_critical(value: float, critical: np.ndarray) -> float:
    """The smallest alpha just above the critical alpha nearest to ``value`` (log scale).

    Between two critical alphas the shape does not change, so the slider snaps to the
    points where it does: just above a circumradius, where that tetrahedron joins.
    """
    if critical.size == 0 or not np.isfinite(value) or value <= 0:
        return float(value)
    logs = np.log(critical)
    i = int(np.argmin(np.abs(logs - np.log(value))))
    return float(np.nextafter(critical[i], np.inf))


def spectrum_svg(table, alpha: float | None, width: int = 260, height: int = 90) -> str:
    """Volume against log alpha as a tiny SVG; watertight samples green, others red."""
    a = table["alpha"].to_numpy(dtype=float)
    v = table["volume"].to_numpy(dtype=float)
    ok = table["watertight"].to_numpy(dtype=bool) & table["is_volume"].to_numpy(dtype=bool)
    if len(a) < 2 or not np.isfinite(v).any():
        return "<svg></svg>"
    la = np.log(a)
    x = (la - la.min()) / max(np.ptp(la), 1e-12) * (width - 10) + 5
    vmax = max(float(np.nanmax(v)), 1e-12)
    y = height - 5 - np.nan_to_num(v) / vmax * (height - 10)
    line = " ".join(f"{xi:.1f},{yi:.1f}" for xi, yi in zip(x, y, strict=True))
    dots = "".join(
        f'<circle cx="{xi:.1f}" cy="{yi:.1f}" r="2" fill="{"#2e7d32" if good else "#c62828"}"/>'
        for xi, yi, good in zip(x, y, ok, strict=True))
    marker = ""
    if alpha is not None and alpha > 0:
        xa = (np.log(alpha) - la.min()) / max(np.ptp(la), 1e-12) * (width - 10) + 5
        marker = (f'<line x1="{xa:.1f}" x2="{xa:.1f}" y1="0" y2="{height}" '
                  'stroke="#1565c0" stroke-dasharray="3,2"/>')
    return (f'<svg width="{width}" height="{height}" style="background:#fafafa">'
            f'<polyline points="{line}" fill="none" stroke="#555"/>{dots}{marker}'
            '<text x="4" y="12" font-size="10">volume vs log α (green: valid volume)</text>'
            "</svg>")


class GroupTuner(w.VBox):
    """Controls for one group of an alpha-mesh layer."""

    def __init__(self, layer: AlphaMeshLayer, label):
        self.layer = layer
        self.label = label
        g = layer.groups[label]
        shaper = layer.shaper(label)
        self.critical = shaper.critical_alphas[np.isfinite(shaper.critical_alphas)]
        alphas = default_alphas(shaper, SPECTRUM_SAMPLES)
        self.table = None  # the spectrum, once computed
        lo, hi = float(alphas.min()), float(alphas.max())
        self.slider = w.FloatLogSlider(
            value=float(np.clip(g.alpha, lo, hi)), base=10, min=np.log10(lo),
            max=np.log10(hi), step=(np.log10(hi) - np.log10(lo)) / 400,
            description=str(label), continuous_update=False, readout_format=".4g",
            layout=w.Layout(width="420px"))
        self.auto = w.Button(description="auto", tooltip="tracertools rule")
        self.optimal = w.Button(description="optimal",
                                tooltip="smallest alpha: one valid volume holding every point")
        self.pin = w.Button(description="pin as best", tooltip="keep a copy to compare")
        self.info = w.HTML()
        self.plot = w.HTML()
        self.slider.observe(self._slid, "value")
        self.auto.on_click(lambda _b: self._set("auto"))
        self.optimal.on_click(lambda _b: self._set("optimal"))
        self.pin.on_click(lambda _b: layer.pin())
        super().__init__([w.HBox([self.slider, self.auto, self.optimal, self.pin]),
                          w.HBox([self.plot, self.info])])
        self.refresh_view()
        self.spectrum: Future = _SPECTRA.submit(shaper.spectrum, alphas)
        self.spectrum.add_done_callback(self._spectrum_done)

    def _spectrum_done(self, future: Future) -> None:
        if future.exception() is not None:
            self.plot.value = f"<pre>spectrum failed: {future.exception()}</pre>"
            return
        self.table = future.result().table
        self.refresh_view()

    def _slid(self, change) -> None:
        snapped = snap_to_critical(change["new"], self.critical)
        if abs(snapped - change["new"]) > 1e-12 * snapped:
            self.slider.value = snapped  # fires again with the snapped value
            return
        self._set(snapped)

    def _set(self, alpha) -> None:
        future = self.layer.set_alpha(self.label, alpha, wait=False)
        future.add_done_callback(lambda _f: self.refresh_view())

    def refresh_view(self) -> None:
        g = self.layer.groups.get(self.label)
        if g is None:
            return
        r = g.report
        if g.alpha is not None and abs(self.slider.value - g.alpha) > 1e-9 * g.alpha:
            self.slider.unobserve(self._slid, "value")
            self.slider.value = float(np.clip(g.alpha, 10 ** self.slider.min,
                                              10 ** self.slider.max))
            self.slider.observe(self._slid, "value")
        state = "valid volume" if r.get("is_volume") else (
            "watertight" if r.get("watertight") else "not watertight")
        self.info.value = (
            f"<pre style='margin:0 8px'>α = {g.alpha:.4g}  {state}\n"
            f"components {r.get('n_components')}  points outside {r.get('points_outside')}\n"
            f"volume {r.get('volume', float('nan')):.4g}  points {g.n_points}\n"
            f"{g.error or ''}</pre>") if g.alpha is not None else f"<pre>{g.error}</pre>"
        self.plot.value = (spectrum_svg(self.table, g.alpha) if self.table is not None
                           else "<pre style='margin:0 8px'>computing the spectrum…</pre>")


class AlphaTuner(w.VBox):
    """One :class:`GroupTuner` per meshed group of an alpha-mesh layer."""

    def __init__(self, layer: AlphaMeshLayer):
        self.layer = layer
        rows = [GroupTuner(layer, label) for label, g in layer.groups.items()
                if g.shaper is not None]
        errors = [w.HTML(f"<pre>{g.error}</pre>") for g in layer.groups.values()
                  if g.shaper is None and g.error]
        self.groups = {row.label: row for row in rows}
        super().__init__([w.HTML(f"<b>{layer.name}</b>: alpha per group"), *rows, *errors])
