"""Hierarchies of nested function spaces with projections between levels."""

from geounet.hierarchy.base import Hierarchy, LevelGraph
from geounet.hierarchy.batching import BatchedHierarchy, batch_hierarchies
from geounet.hierarchy.constraints import FunctionConstraint
from geounet.hierarchy.finest import FinestLevels, finest_levels
from geounet.hierarchy.haar import PartitionHaarHierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy, HealpixLevels
from geounet.hierarchy.healpix_face import HealpixFaceHierarchy, face_nodes_from_nest, nest_from_face_nodes
from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
from geounet.hierarchy.io import load_hierarchy, save_hierarchy
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy
from geounet.hierarchy.square import SquareHaarHierarchy
from geounet.hierarchy.triangle import TriangleHierarchy

__all__ = [
    "BatchedHierarchy",
    "ClusterHierarchy",
    "FinestLevels",
    "FunctionConstraint",
    "HealpixFaceHierarchy",
    "HealpixHaarHierarchy",
    "HealpixLevels",
    "HealpixSHHierarchy",
    "Hierarchy",
    "LevelGraph",
    "MeshSpectralHierarchy",
    "PartitionHaarHierarchy",
    "SquareHaarHierarchy",
    "SubdivisionHierarchy",
    "TriangleHierarchy",
    "batch_hierarchies",
    "face_nodes_from_nest",
    "finest_levels",
    "load_hierarchy",
    "nest_from_face_nodes",
    "save_hierarchy",
]
