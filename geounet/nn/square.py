"""Spatial operators on the square grid: 2-D convolutions in node layout."""

from __future__ import annotations

import math

from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.functional.grid import image_to_nodes, nodes_to_image
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.square import SquareHaarHierarchy


class SquareConv(nn.Module):
    """A k x k convolution on one level of a square hierarchy, ``[B, N, C_in] -> [B, N, C_out]``.

    Called ``conv(x, hierarchy)`` with a square hierarchy (or its finest levels): the grid
    side and the padding (circular on a periodic square, zeros otherwise) come from it.
    """

    def __init__(self, level: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.level = level
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.pad = kernel_size // 2

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        side = math.isqrt(hierarchy.num_nodes(self.level))
        image = nodes_to_image(x, side, side)  # [B, C_in, H, W]
        mode = "circular" if hierarchy.periodic else "constant"
        image = nn.functional.pad(image, (self.pad,) * 4, mode=mode)  # [B, C_in, H + 2p, W + 2p]
        return image_to_nodes(self.conv(image), x.shape[:-2])  # [B, N, C_out]


class SquareConvFactory:
    """Operator factory for :class:`~geounet.nn.blocks.ResidualBranch` on square hierarchies."""

    kind = SquareHaarHierarchy.__name__

    def __init__(self, kernel_size: int = 3):
        if kernel_size % 2 == 0:
            raise GeounetError(f"kernel_size must be odd so the grid stays aligned, got {kernel_size}")
        self.kernel_size = kernel_size

    def __call__(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        return SquareConv(level, in_channels, out_channels, self.kernel_size)
