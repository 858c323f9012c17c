"""Restriction and prolongation on regular 2^k x 2^k grids stored as node lists.

Node ``n`` of an ``H x W`` grid is pixel ``(n // W, n % W)`` (row-major), so a grid
signal ``[..., H * W, C]`` is the image ``[..., H, W, C]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def nodes_to_image(x: Tensor, height: int, width: int) -> Tensor:
    """``[..., H*W, C]`` -> ``[B, C, H, W]`` with all leading dims flattened into B."""
    channels = x.shape[-1]
    return x.reshape(-1, height, width, channels).permute(0, 3, 1, 2)


def image_to_nodes(image: Tensor, leading_shape: tuple[int, ...]) -> Tensor:
    """``[B, C, H, W]`` -> ``[*leading_shape, H*W, C]``."""
    batch, channels, height, width = image.shape
    return image.permute(0, 2, 3, 1).reshape(*leading_shape, height * width, channels)


def grid_restrict(x: Tensor, height: int, width: int) -> Tensor:
    """2 x 2 average pooling: the L2-orthogonal projection onto the coarser Haar space.

    ``x [..., H*W, C] -> [..., H*W/4, C]``. Implemented with ``avg_pool2d`` itself so the
    result is bit-for-bit the reference operation.
    """
    pooled = F.avg_pool2d(nodes_to_image(x, height, width), kernel_size=2)
    return image_to_nodes(pooled, x.shape[:-2])


def grid_prolong(x: Tensor, height: int, width: int) -> Tensor:
    """Nearest upsampling by 2 (copy each value to its 4 children): the Haar inclusion.

    ``x [..., H*W, C] -> [..., 4*H*W, C]`` for the coarse grid ``H x W``.
    """
    upsampled = F.interpolate(nodes_to_image(x, height, width), scale_factor=2, mode="nearest")
    return image_to_nodes(upsampled, x.shape[:-2])
