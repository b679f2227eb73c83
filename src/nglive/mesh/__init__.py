"""Alpha-shape meshes from points: one triangulation per point set, any alpha in milliseconds."""

from .alpha import AlphaReport, AlphaShaper, alpha_shape
from .checks import SurfaceCheck, surface_check
from .groups import GroupMeshError, decimate, mesh_from_groups, smooth, union_meshes
from .repair import RepairError
from .search import AlphaSearchWarning
from .spectrum import Spectrum
from .triangulation import AlphaShapeInputError

__all__ = [
    "AlphaReport",
    "AlphaSearchWarning",
    "AlphaShapeInputError",
    "AlphaShaper",
    "GroupMeshError",
    "RepairError",
    "Spectrum",
    "SurfaceCheck",
    "alpha_shape",
    "decimate",
    "mesh_from_groups",
    "smooth",
    "surface_check",
    "union_meshes",
]
