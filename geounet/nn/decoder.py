"""Decoders D_i : W_{i-1} x V_i -> W_i and the bottleneck U_0 : V_0 -> W_0."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.blocks import Checkpointable, OperatorFactory, ResidualBlock, ResidualBranch
from geounet.nn.fused_prolong import prolong_add_, prolong_concat


class ResidualDecoder(Checkpointable):
    """A residual decoder at level i (the paper's residual U-Net, §2.3):

        D_i(w, v) = ι(L w) + R_i(ι(L w), v),   then ``extra_blocks`` x (h <- h + R(h)),

    where ``L`` is a pointwise linear map from the coarse decoder width to this level's
    width, ``ι`` is the hierarchy's inclusion (prolong) V_{i-1} ⊂ V_i and ``R_i`` is a
    residual branch over ``[ι(L w), v]`` (the skip connection concatenated).

    ``L`` is applied on the coarse level (a pointwise linear map commutes with ι). On
    Haar hierarchies whose prolong repeats each value over a block of children (HEALPix
    NEST, the square) ι is fused into the concatenation and the residual sum
    (:mod:`geounet.nn.fused_prolong`), so ι(L w) is never written as a fine tensor.
    """

    def __init__(
        self,
        factory: OperatorFactory,
        level: int,
        coarse_channels: int,
        skip_channels: int,
        channels: int,
        extra_blocks: int = 0,
        cond_dim: int | None = None,
    ):
        super().__init__()
        if level < 1:
            raise GeounetError(f"decoders exist for levels >= 1, got level {level}")
        self.level = level
        self.channel_map = nn.Linear(coarse_channels, channels)
        self.merge = ResidualBranch(factory, level, channels + skip_channels, channels, cond_dim)
        self.blocks = nn.ModuleList(ResidualBlock(factory, level, channels, cond_dim) for _ in range(extra_blocks))

    def forward(self, coarse: Tensor, skip: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        # coarse: [B, N_{i-1}, C_{i-1}], skip: [B, N_i, C_v]
        h = self._run(self._merge, self.channel_map(coarse), skip, hierarchy, cond)
        for block in self.blocks:
            h = block(h, hierarchy, cond)
        return h  # [B, N_i, C_i]

    def _merge(self, mapped: Tensor, skip: Tensor, hierarchy: Hierarchy, cond: Tensor | None) -> Tensor:
        """ι u + R_i([ι u, v]) for ``u = L w`` ``[B, N_{i-1}, C_i]`` and the skip ``v [B, N_i, C_v]``."""
        coarse_level = self.level - 1
        layout = hierarchy.prolong_layout(coarse_level)
        if layout is None:
            up = hierarchy.prolong(mapped, coarse_level)  # [B, N_i, C_i]
            return self.merge(torch.cat([up, skip], dim=-1), hierarchy, cond).add_(up)  # in place: no new tensor
        for x, level in ((mapped, coarse_level), (skip, self.level)):
            if x.dim() != 3 or x.shape[1] != hierarchy.num_nodes(level):
                raise GeounetError(f"ResidualDecoder at level {self.level} expects [batch, "
                                 f"{hierarchy.num_nodes(level)}, channels] on level {level}, got {tuple(x.shape)}")
        merged = self.merge(prolong_concat(mapped, skip, layout), hierarchy, cond)  # [B, N_i, C_i]
        return prolong_add_(merged, mapped, layout)


class Bottleneck(nn.Module):
    """U_0 : V_0 -> W_0, a channel map followed by residual blocks on the coarsest level."""

    def __init__(
        self,
        factory: OperatorFactory,
        in_channels: int,
        channels: int,
        num_blocks: int = 1,
        cond_dim: int | None = None,
    ):
        super().__init__()
        self.channel_map = nn.Linear(in_channels, channels)
        self.blocks = nn.ModuleList(ResidualBlock(factory, 0, channels, cond_dim) for _ in range(num_blocks))

    def forward(self, v: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:  # [B, N_0, C_v]
        h = self.channel_map(v)
        for block in self.blocks:
            h = block(h, hierarchy, cond)
        return h  # [B, N_0, C_0]
