"""spectrum(): critical alphas and a per-alpha table consistent with report()."""

from __future__ import annotations

import numpy as np
from mesh_shapes import solid_torus

from nglive.mesh import AlphaShaper


def test_spectrum_table_matches_reports():
    shaper = AlphaShaper(solid_torus(2000, seed=6))
    spec = shaper.spectrum(n=12)
    table = spec.table
    assert len(table) == 12
    assert {"alpha", "volume", "area", "watertight", "is_volume", "n_components"} <= set(
        table.columns
    )
    assert np.all(np.diff(table["alpha"]) > 0)
    assert np.all(np.diff(table["volume"]) >= 0)  # more tetrahedra, never less volume
    row = table.iloc[5]
    assert shaper.report(row["alpha"]).to_dict() == row.to_dict()
    # the default range reaches the cover alpha, so the last rows have no point outside
    assert table["points_outside"].iloc[-1] == 0
    assert table["watertight"].any() and not table["watertight"].all()
    crit = spec.critical_alphas
    assert np.all(np.diff(crit) > 0) and np.array_equal(
        crit, np.unique(shaper.triangulation.radius[np.isfinite(shaper.triangulation.radius)])
    )
    assert spec.cover_alpha == shaper.cover_alpha


def test_spectrum_at_given_alphas():
    shaper = AlphaShaper(solid_torus(800, seed=6))
    spec = shaper.spectrum(alphas=[0.3, 0.6])
    assert spec.table["alpha"].tolist() == [0.3, 0.6]
