"""Per-level heads and multi-resolution inference of a U-Net.

The U-Net of resolution j, U_j, is a sub-network of U_I (Def. 1: U_j contains U_{j-1}), so
one set of weights answers at every resolution. :class:`StagedUNet` gives every decoder
level j a pointwise head W_j -> output (the finest one is the U-Net's own head) and
evaluates U_stage on input at level ``stage``, returning the outputs of every level
0 .. stage, coarsest first:

    y_j = head_j(w_j),    w_j = the W_j features inside U_stage(lift(x_stage)).

For a Multi-ResNet (E_i = id) whose lift commutes with restriction (no lift bias, or
restrictions with P 1 = 1; see :mod:`geounet.nn.unet`) the coarse outputs of a fine
evaluation equal those of the coarse evaluation on the projected input:
y_j(x) = y_j(P_j x), so multi-resolution inference is consistent.

Staged (coarse-to-fine) training of these heads, stage j on data projected to level j, is
:mod:`geounet.train.staged`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.inputs import check_model_input
from geounet.nn.unet import UNet, geometry_for


def decoder_widths(unet: UNet) -> list[int]:
    """Width of W_j for j = 0 .. I, read from the bottleneck's and decoders' ``channel_map``."""
    parts = [unet.bottleneck] + [unet.decoders[str(j)] for j in range(1, unet.num_levels)]
    if not all(isinstance(getattr(part, "channel_map", None), nn.Linear) for part in parts):
        raise GeounetError("cannot read the decoder widths of this U-Net; pass widths=[C_0, ..., C_I] to StagedUNet")
    return [part.channel_map.out_features for part in parts]


class StagedUNet(nn.Module):
    """A U-Net with a pointwise head on every decoder level, called
    ``staged(x, hierarchy, cond=None, stage=None) -> [y_0, ..., y_stage]``.

    Args:
        unet: the U-Net; its ``head`` is the finest level's head, so ``staged(x, h)[-1] == unet(x, h)``.
        widths: W_j widths (default: read from the U-Net, :func:`decoder_widths`).
    """

    def __init__(self, unet: UNet, widths: Sequence[int] | None = None):
        super().__init__()
        widths = list(widths) if widths is not None else decoder_widths(unet)
        if len(widths) != unet.num_levels:
            raise GeounetError(f"need one width per level ({unet.num_levels}), got {widths}")
        self.unet = unet
        self.heads = nn.ModuleList(nn.Linear(width, unet.out_channels) for width in widths[:-1])

    @property
    def num_levels(self) -> int:
        return self.unet.num_levels

    def head(self, level: int) -> nn.Module:
        return self.unet.head if level == self.num_levels - 1 else self.heads[level]

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None,
                stage: int | None = None) -> list[Tensor]:
        """``x [B, N_stage, C_in]`` on level ``stage`` (default: the finest) of the U-Net's levels
        of ``hierarchy`` -> outputs ``[B, N_j, C_out]`` for j = 0 .. stage."""
        levels = geometry_for(self, hierarchy, self.unet.kind, self.num_levels)
        stage = levels.finest_level if stage is None else stage
        if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < self.num_levels:
            raise GeounetError(f"stage must be a level in [0, {self.num_levels - 1}], got {stage!r}")
        check_model_input(x, levels.num_nodes(stage), self.unet.in_channels, self.unet.lift.weight.dtype,
                          "StagedUNet", self.unet.nonfinite, self.unet._warned)
        features: list[Tensor] = []
        self.unet.evaluate(self.unet.lift(x), levels, stage, cond, features)
        return [self.head(level)(w) for level, w in enumerate(features)]

    def level_parameters(self, level: int) -> list[nn.Parameter]:
        """The parameters a stage adds at ``level``: lift, U_0 and head_0 for level 0; E_j, D_j
        and head_j for j >= 1."""
        if level == 0:
            modules = [self.unet.lift, self.unet.bottleneck, self.head(0)]
        else:
            modules = [self.unet.encoders[str(level)], self.unet.decoders[str(level)], self.head(level)]
        return [p for module in modules for p in module.parameters()]
