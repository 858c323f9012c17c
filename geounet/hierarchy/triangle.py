"""Haar hierarchy on the reference triangle T by recursive 4-way midpoint subdivision.

Level i holds the ``4^(c + i)`` congruent cells of subdivision depth ``c + i`` (c the
coarsest depth) in *address order* (:mod:`geounet.geometry.triangle`), so the children
of cell p are ``4p .. 4p+3``; all cells of a level have area ``|T| / 4^(c+i)`` and the
L2 projection is the plain mean of the four children.

The same signal in the paper's *square order* (the 2^J x 2^J address array) is a signal
on :class:`~geounet.hierarchy.square.SquareHaarHierarchy`, whose 2x2 average pooling is
exactly this hierarchy's restriction (``to_square`` / ``from_square`` convert), so a
triangle signal can be fed to a square U-Net as the paper's MNIST-Triangular does.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.geometry.triangle import REFERENCE_VERTICES, address_to_square, square_to_address
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy
from geounet.hierarchy.square import SquareHaarHierarchy


class TriangleHierarchy(SubdivisionHierarchy):
    """Piecewise-constant spaces on the midpoint subdivisions of T.

    Args:
        num_levels: I + 1.
        coarsest_depth: subdivision depth c of level 0 (level 0 has 4^c cells).

    Graph edge features are (dx, dy, distance, shared edge length) between the centroids
    of cells sharing an edge; positions are the cell centroids
    ``f_{a1} ∘ ... ∘ f_{aJ}((1/3, 1/3))``.
    """

    def __init__(self, num_levels: int, coarsest_depth: int = 0):
        if not isinstance(coarsest_depth, int) or coarsest_depth < 0:
            raise GeounetError(f"coarsest_depth must be a non-negative int, got {coarsest_depth!r}")
        if not isinstance(num_levels, int) or num_levels < 1:
            raise GeounetError(f"num_levels must be a positive int, got {num_levels!r}")
        self.coarsest_depth = coarsest_depth
        base = SubdivisionHierarchy(Mesh(REFERENCE_VERTICES, [[0, 1, 2]]), coarsest_depth + 1)
        super().__init__(base.mesh, num_levels)

    def __repr__(self) -> str:
        return f"TriangleHierarchy(num_levels={self.num_levels}, coarsest_depth={self.coarsest_depth})"

    def depth(self, level: int) -> int:
        """Subdivision depth J of ``level``: the level has 4^J cells."""
        self._check_level(level)
        return self.coarsest_depth + level

    def square_hierarchy(self) -> SquareHaarHierarchy:
        """The square hierarchy with the same levels (side 2^J at depth J)."""
        return SquareHaarHierarchy(2 ** self.depth(self.finest_level), self.num_levels)

    def to_square(self, x: Tensor, level: int) -> Tensor:
        """Address order -> square order: ``[..., 4^J, C]`` -> ``[..., 4^J, C]``."""
        self._check_nodes(x, level)
        return _permute(x, square_to_address(self.depth(level)))

    def from_square(self, x: Tensor, level: int) -> Tensor:
        """Square order -> address order (inverse of :meth:`to_square`)."""
        self._check_nodes(x, level)
        return _permute(x, address_to_square(self.depth(level)))


def _permute(x: Tensor, index: np.ndarray) -> Tensor:
    """``out[..., n, :] = x[..., index[n], :]``."""
    return x.index_select(-2, torch.from_numpy(index).to(x.device))
