"""Hierarchies of nested function spaces with projections between levels."""

from geounet.hierarchy.base import Hierarchy, LevelGraph
from geounet.hierarchy.haar import PartitionHaarHierarchy
from geounet.hierarchy.square import SquareHaarHierarchy

__all__ = ["Hierarchy", "LevelGraph", "PartitionHaarHierarchy", "SquareHaarHierarchy"]
