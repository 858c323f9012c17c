"""Spatial operators on the square grid: 2-D convolutions in node layout."""

from __future__ import annotations

from torch import Tensor, nn

from geounet.functional.grid import image_to_nodes, nodes_to_image
from geounet.hierarchy.square import SquareHaarHierarchy


class SquareConv(nn.Module):
    """A k x k convolution on one level of a square hierarchy, ``[B, N, C_in] -> [B, N, C_out]``.

    Circular padding on a periodic square, zero padding otherwise.
    """

    def __init__(self, side: int, in_channels: int, out_channels: int, kernel_size: int, periodic: bool):
        super().__init__()
        self.side = side
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            padding_mode="circular" if periodic else "zeros",
        )

    def forward(self, x: Tensor) -> Tensor:
        image = nodes_to_image(x, self.side, self.side)  # [B, C_in, H, W]
        return image_to_nodes(self.conv(image), x.shape[:-2])  # [B, N, C_out]


class SquareConvFactory:
    """Operator factory for :class:`~geounet.nn.blocks.ResidualBranch` on the square."""

    def __init__(self, hierarchy: SquareHaarHierarchy, kernel_size: int = 3):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the grid stays aligned, got {kernel_size}")
        self.hierarchy = hierarchy
        self.kernel_size = kernel_size

    def __call__(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        return SquareConv(
            self.hierarchy.side(level), in_channels, out_channels, self.kernel_size, self.hierarchy.periodic
        )
