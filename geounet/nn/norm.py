"""Normalisation for node features ``[B, N, C]``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class NodeGroupNorm(nn.Module):
    """Group normalisation over nodes: statistics per sample and channel group.

    The node-list analogue of ``nn.GroupNorm`` on ``[B, C, H, W]``: for each sample and
    each of ``num_groups`` channel groups, normalise over all nodes and the group's
    channels, then apply a per-channel affine map. ``num_groups=1`` is the GroupNorm(1)
    used by the paper's official decoders.
    """

    def __init__(self, num_groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        if channels % num_groups:
            raise ValueError(f"channels ({channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C]
        *lead, n, c = x.shape
        grouped = x.reshape(*lead, n, self.num_groups, c // self.num_groups)
        var, mean = torch.var_mean(grouped, dim=(-3, -1), keepdim=True, correction=0)
        normed = ((grouped - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        return normed * self.weight + self.bias
