"""Normalisation for node features ``[B, N, C]``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class NodeGroupNorm(nn.Module):
    """Group normalisation over nodes: statistics per sample and channel group.

    The node-list analogue of ``nn.GroupNorm`` on ``[B, C, H, W]``: for each sample and
    each of ``num_groups`` channel groups, normalise over all nodes and the group's
    channels, then apply a per-channel affine map. ``num_groups=1`` is the GroupNorm(1)
    used by the paper's official decoders.

    ``components`` (node counts, in node order, given with each call) splits the nodes
    into independent geometries, e.g. the meshes of a
    :class:`~geounet.hierarchy.BatchedHierarchy`; the statistics are then taken over each
    geometry's nodes separately, so a geometry's output does not depend on which other
    geometries share its batch.
    """

    def __init__(self, num_groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        if channels % num_groups:
            raise ValueError(f"channels ({channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def _normalise(self, grouped: Tensor) -> Tensor:  # [B, N, G, C/G]
        var, mean = torch.var_mean(grouped, dim=(-3, -1), keepdim=True, correction=0)
        return (grouped - mean) * torch.rsqrt(var + self.eps)

    def forward(self, x: Tensor, components: Sequence[int] | None = None) -> Tensor:  # [B, N, C]
        *lead, n, c = x.shape
        grouped = x.reshape(*lead, n, self.num_groups, c // self.num_groups)
        if components is None or len(components) == 1:
            normed = self._normalise(grouped)
        elif sum(components) != n:
            raise ValueError(f"components {list(components)} hold {sum(components)} nodes, got {n} nodes")
        else:
            normed = torch.cat([self._normalise(part) for part in grouped.split(list(components), dim=-3)], dim=-3)
        return normed.reshape(x.shape) * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"groups={self.num_groups}, channels={self.weight.numel()}"
