"""Coordinate spaces for annotation sources, and the geometry columns each one implies."""

from __future__ import annotations

from dataclasses import dataclass

ANNOTATION_TYPES = ("point", "line", "axis_aligned_bounding_box", "ellipsoid", "polyline")


@dataclass(frozen=True)
class CoordSpace:
    """Names, units and scales of the dimensions annotations live in."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    scales: tuple[float, ...]

    @property
    def rank(self) -> int:
        return len(self.names)

    def to_json(self) -> dict:
        """The ``dimensions`` member of an annotation ``info`` file."""
        return {n: [s, u] for n, u, s in zip(self.names, self.units, self.scales, strict=True)}


def as_coord_space(coord_space) -> CoordSpace:
    """Normalise the accepted coordinate-space forms.

    Accepts ``"xyz"`` (one name per character), a list of names, a dict with ``names``
    (and optionally ``units``, ``scales``), a dict in Neuroglancer's JSON form
    ``{"x": [1, "nm"], ...}``, or a ``neuroglancer.CoordinateSpace``. Units default to
    ``"nm"`` and scales to 1 when only names are given.

    Examples
    --------
    >>> as_coord_space("xyz").names
    ('x', 'y', 'z')
    >>> as_coord_space({"x": [4, "nm"], "y": [4, "nm"]}).scales
    (4.0, 4.0)
    """
    if hasattr(coord_space, "names") and hasattr(coord_space, "units"):
        names = list(coord_space.names)
        units = list(coord_space.units)
        scales = [float(s) for s in coord_space.scales]
    elif isinstance(coord_space, str):
        names, units, scales = list(coord_space), None, None
    elif isinstance(coord_space, dict) and "names" in coord_space:
        names = list(coord_space["names"])
        units = coord_space.get("units")
        scales = coord_space.get("scales")
    elif isinstance(coord_space, dict):
        names = list(coord_space)
        try:
            scales = [float(coord_space[n][0]) for n in names]
            units = [str(coord_space[n][1]) for n in names]
        except (TypeError, IndexError, ValueError) as e:
            raise ValueError(
                f"coord_space dict must map names to [scale, unit]; got {coord_space!r}"
            ) from e
    elif isinstance(coord_space, list | tuple):
        names, units, scales = [str(n) for n in coord_space], None, None
    else:
        raise TypeError(
            "coord_space must be a string of names, a list of names, a dict or a "
            f"neuroglancer.CoordinateSpace, not {type(coord_space).__name__}"
        )
    if not names:
        raise ValueError("coord_space has no dimensions")
    if len(set(names)) != len(names):
        raise ValueError(f"coord_space has repeated names: {names}")
    units = ["nm"] * len(names) if units is None else (
        [units] * len(names) if isinstance(units, str) else list(units))
    scales = [1.0] * len(names) if scales is None else [float(s) for s in scales]
    if not (len(units) == len(scales) == len(names)):
        raise ValueError(f"coord_space names {names}, units {units} and scales {scales} "
                         "must have the same length")
    if any(not s > 0 for s in scales):
        raise ValueError(f"coord_space scales must be positive, got {scales}")
    return CoordSpace(tuple(names), tuple(units), tuple(scales))


def geometry_columns(annotation_type: str, space: CoordSpace) -> list[str]:
    """The DataFrame columns holding the geometry of ``annotation_type``, in record order.

    Examples
    --------
    >>> geometry_columns("line", as_coord_space("xy"))
    ['xa', 'ya', 'xb', 'yb']
    >>> geometry_columns("ellipsoid", as_coord_space("xy"))
    ['x', 'y', 'rx', 'ry']
    """
    names = list(space.names)
    if annotation_type in ("point", "polyline"):
        return names
    if annotation_type in ("line", "axis_aligned_bounding_box"):
        return [n + "a" for n in names] + [n + "b" for n in names]
    if annotation_type == "ellipsoid":
        return names + ["r" + n for n in names]
    raise ValueError(f"annotation_type must be one of {ANNOTATION_TYPES}, not {annotation_type!r}")
