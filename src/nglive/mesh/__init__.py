"""Alpha-shape meshes from points: one triangulation per point set, any alpha in milliseconds."""

from .alpha import AlphaReport, AlphaShaper, alpha_shape
from .checks import SurfaceCheck, surface_check
from .repair import RepairError
from .search import AlphaSearchWarning
from .spectrum import Spectrum
from .triangulation import AlphaShapeInputError

__all__ = [
    "AlphaReport",
    "AlphaSearchWarning",
    "AlphaShapeInputError",
    "AlphaShaper",
    "RepairError",
    "Spectrum",
    "SurfaceCheck",
    "alpha_shape",
    "surface_check",
]
