"""The square [0, 1]^2 with Haar (piecewise-constant) spaces: the paper's reference domain.

Level i is the 2^(k_i) x 2^(k_i) grid of dyadic cells; V_i is the span of their
indicator functions. The L2-orthogonal projection onto V_{i-1} is 2 x 2 average pooling
and the inclusion V_{i-1} ⊂ V_i is nearest upsampling (Falck et al. 2023).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.grid import grid_prolong, grid_restrict
from geounet.hierarchy.base import Hierarchy, LevelGraph, ProlongLayout, validate_dyadic_levels

# The 8 neighbour offsets (dy, dx) of the 3 x 3 stencil, in a fixed order.
_STENCIL = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


class SquareHaarHierarchy(Hierarchy):
    """Haar hierarchy on a ``size x size`` grid of the unit square.

    Args:
        size: side of the finest grid; a power of two.
        num_levels: number of levels I + 1; the coarsest grid has side
            ``size / 2**(num_levels - 1)`` and must be at least 1.
        periodic: whether the square is a torus (affects the graph and the
            padding used by convolutional decoders, not the projections).
    """

    kind = "SquareHaarHierarchy"

    def __init__(self, size: int, num_levels: int, periodic: bool = False):
        if not isinstance(size, int) or size < 1 or size & (size - 1):
            raise GeounetError(f"grid side must be a power of two, got {size!r}")
        self.size = size
        self._num_levels = validate_dyadic_levels(num_levels, size, f"a {size}x{size} grid", "a 1x1 grid")
        self.periodic = periodic
        self._graphs: dict[int, LevelGraph] = {}

    def __repr__(self) -> str:
        return f"SquareHaarHierarchy(size={self.size}, num_levels={self.num_levels}, periodic={self.periodic})"

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def side(self, level: int) -> int:
        """Grid side at ``level``."""
        self._check_level(level)
        return self.size >> (self.finest_level - level)

    def num_nodes(self, level: int) -> int:
        return self.side(level) ** 2

    def mass(self, level: int) -> Tensor:
        n = self.num_nodes(level)
        return torch.full((n,), 1.0 / n, dtype=self.dtype, device=self.device)

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        side = self.side(level)
        return grid_restrict(x, side, side)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        side = self.side(level)
        return grid_prolong(x, side, side)

    def prolong_layout(self, level: int) -> ProlongLayout | None:
        """Row-major ``2s x 2s`` children of the ``s x s`` grid: coarse ``[s, 1, s, 1]``, fine
        ``[s, 2, s, 2]`` (None for a subclass with a prolong of its own)."""
        if type(self)._prolong is not SquareHaarHierarchy._prolong:
            return None
        side = self.side(level)
        return (side, 1, side, 1), (side, 2, side, 2)

    def image_shape(self, level: int) -> tuple[int, int]:
        side = self.side(level)
        return side, side

    def node_symmetries(self) -> dict[str, Tensor]:
        """rot90 of the finest image: a symmetry of the grid graph, periodic or not."""
        side = self.side(self.finest_level)
        return {"rot90": torch.rot90(torch.arange(side * side).reshape(side, side)).reshape(-1)}

    def graph(self, level: int) -> LevelGraph:
        if level not in self._graphs:
            self._graphs[level] = self._build_graph(level)
        return self._graphs[level]

    def _build_graph(self, level: int) -> LevelGraph:
        """The 8-neighbour (3 x 3 stencil) grid graph; edge features are (dy, dx, distance).

        On a non-periodic square, boundary nodes have fewer neighbours: their missing
        table entries point to the node itself and are masked out. On a periodic square
        the stencil wraps around (and is masked where it wraps onto the node itself).
        """
        side = self.side(level)
        h = 1.0 / side
        rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        node = torch.arange(side * side)
        table, mask, attr = [], [], []
        for dy, dx in _STENCIL:
            r, c = rows + dy, cols + dx
            inside = (r >= 0) & (r < side) & (c >= 0) & (c < side)
            r, c = r % side, c % side
            if self.periodic:  # on tiny tori the stencil can wrap onto the node itself
                inside = r * side + c != node
            table.append(torch.where(inside, r * side + c, node))
            mask.append(inside)
            offset = torch.tensor([dy * h, dx * h, math.hypot(dy, dx) * h], dtype=torch.float64)
            attr.append(offset.expand(side * side, 3))
        neighbours = torch.stack(table, dim=1)  # [N, 8]
        neighbour_mask = torch.stack(mask, dim=1)  # [N, 8]
        neighbour_attr = torch.stack(attr, dim=1)  # [N, 8, 3], from target to source
        target = node[:, None].expand_as(neighbours)[neighbour_mask]
        source = neighbours[neighbour_mask]
        positions = torch.stack([(rows + 0.5) * h, (cols + 0.5) * h], dim=1).double()
        return LevelGraph(
            edge_index=torch.stack([source, target]),
            edge_attr=neighbour_attr[neighbour_mask],
            positions=positions,
            neighbours=neighbours,
            neighbour_mask=neighbour_mask,
            neighbour_attr=neighbour_attr,
        )
