"""Encoders: the operators E_i of a U-Net, and the parameter-free Multi-ResNet encoder."""

from __future__ import annotations

from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy
from geounet.nn.blocks import OperatorFactory, ResidualBlock


class IdentityEncoder(nn.Module):
    """E_i = id_{V_i}: the Multi-ResNet encoder operator (no parameters)."""

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        return x


class ResidualEncoder(nn.Module):
    """A learned E_i : V_i -> V_i, one or more residual blocks on level i."""

    def __init__(
        self,
        factory: OperatorFactory,
        level: int,
        channels: int,
        num_blocks: int = 1,
        cond_dim: int | None = None,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(factory, level, channels, cond_dim) for _ in range(num_blocks))

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, hierarchy, cond)
        return x


class MultiResolutionEncoder(nn.Module):
    """The Multi-ResNet encoder on its own: v -> (P_0 v, P_1 v, ..., P_I v).

    Maps a finest-level signal ``[B, N_I, C]`` to its orthogonal projections onto every
    level of the hierarchy it is called with, coarsest first: ``encoder(x, hierarchy)``.
    It has no parameters and holds no geometry; plug it into any model that wants a
    geometric multiresolution pyramid.
    """

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> list[Tensor]:
        pyramid = [x]
        for level in range(hierarchy.finest_level, 0, -1):
            pyramid.insert(0, hierarchy.restrict(pyramid[0], level))
        return pyramid  # pyramid[i]: [B, N_i, C]
