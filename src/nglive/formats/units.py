"""Lengths in a coordinate space, converted to the nanometres meshes are drawn in."""

from __future__ import annotations

import numpy as np

from .annotations.coord_space import as_coord_space

NM_PER_UNIT = {"nm": 1.0, "um": 1e3, "µm": 1e3, "mm": 1e6, "m": 1e9, "pm": 1e-3}


def nm_per_coordinate(coord_space) -> np.ndarray:
    """Nanometres per unit step of each dimension of a 3-D ``coord_space``.

    Examples
    --------
    >>> nm_per_coordinate({"x": [8, "nm"], "y": [8, "nm"], "z": [0.04, "um"]}).tolist()
    [8.0, 8.0, 40.0]
    """
    space = as_coord_space(coord_space)
    if space.rank != 3:
        raise ValueError(f"meshes need a 3-D coord_space; got {space.rank} dimensions "
                         f"{list(space.names)}")
    unknown = [u for u in space.units if u not in NM_PER_UNIT]
    if unknown:
        raise ValueError(f"coord_space units {unknown} are not lengths; "
                         f"accepted: {sorted(NM_PER_UNIT)}")
    return np.array([s * NM_PER_UNIT[u] for s, u in zip(space.scales, space.units,
                                                        strict=True)])
