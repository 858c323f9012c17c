"""Encoders: the operators E_i of a U-Net, and the parameter-free Multi-ResNet encoder."""

from __future__ import annotations

from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy
from geounet.nn.blocks import OperatorFactory, ResidualBlock
from geounet.nn.norm import NodeGroupNorm


class IdentityEncoder(nn.Module):
    """E_i = id_{V_i}: the Multi-ResNet encoder operator (no parameters)."""

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        return x


class ResidualEncoder(nn.Module):
    """A learned E_i on level i: an optional channel change, then residual blocks.

    With ``in_channels == channels`` (the default) this is E_i : V_i -> V_i, ``num_blocks``
    residual blocks ``h <- h + R(h)``. With ``in_channels != channels`` the encoder
    receives the restriction of the finer level's encoder output (``in_channels``
    channels) and first changes its width the way the encoder of the paper's official
    code (github.com/FabianFalck/unet-design, commit 4f65b2a,
    pdearena/pdearena/modules/twod_unet.py) does after each average pooling:
    ``h = act(norm(op(x)))`` with a spatial operator ``op : C_in -> C_out`` on level i
    (a 3 x 3 convolution on the square), then the residual blocks at ``channels``.
    Restriction itself stays a pure projection.
    """

    def __init__(
        self,
        factory: OperatorFactory,
        level: int,
        channels: int,
        num_blocks: int = 1,
        cond_dim: int | None = None,
        in_channels: int | None = None,
    ):
        super().__init__()
        in_channels = channels if in_channels is None else in_channels
        self.widen = None if in_channels == channels else ChannelChange(factory, level, in_channels, channels)
        self.blocks = nn.ModuleList(ResidualBlock(factory, level, channels, cond_dim) for _ in range(num_blocks))

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        if self.widen is not None:
            x = self.widen(x, hierarchy)  # [B, N_i, C_in] -> [B, N_i, C_out]
        for block in self.blocks:
            x = block(x, hierarchy, cond)
        return x


class ChannelChange(nn.Module):
    """``x -> act(norm(op(x)))``, ``[B, N, C_in] -> [B, N, C_out]`` on one level: the
    opening layer of the official code's encoder blocks (conv 3x3, GroupNorm(1), GELU;
    github.com/FabianFalck/unet-design, commit 4f65b2a, pdearena/pdearena/modules/twod_unet.py)."""

    def __init__(self, factory: OperatorFactory, level: int, in_channels: int, out_channels: int):
        super().__init__()
        self.level = level
        self.op = factory(level, in_channels, out_channels)
        self.norm = NodeGroupNorm(1, out_channels)
        self.act = nn.GELU()

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        return self.act(self.norm(self.op(x, hierarchy), hierarchy.components(self.level)))


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
