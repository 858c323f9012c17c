"""Per-level heads, multi-resolution inference and staged (coarse-to-fine) training.

The U-Net of resolution j, U_j, is a sub-network of U_I (Def. 1: U_j contains U_{j-1}), so
one set of weights answers at every resolution. :class:`StagedUNet` gives every decoder
level j a pointwise head W_j -> output (the finest one is the U-Net's own head) and
evaluates U_stage on input at level ``stage``, returning the outputs of every level
0 .. stage, coarsest first:

    y_j = head_j(w_j),    w_j = the W_j features inside U_stage(lift(x_stage)).

For a Multi-ResNet (E_i = id, a lift that commutes with restriction) the coarse outputs
of a fine evaluation equal those of the coarse evaluation on the projected input:
y_j(x) = y_j(P_j x), so multi-resolution inference is consistent.

:func:`train_staged` trains stage after stage (paper §5.2): stage j uses the data projected
to level j (``hierarchy.project``; Haar averages or band truncation), a fresh Adam, and
optionally freezes everything trained in earlier stages (the lift, U_0 and levels < j).
:func:`run_stages` is that loop for any per-step loss; staged diffusion
(:mod:`geounet.diffusion.staged`) runs it with a denoising loss on each stage's noise range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.inputs import check_model_input
from geounet.nn.unet import UNet, geometry_for
from geounet.train.loop import batch_indices, weighted_mse


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


@dataclass(frozen=True)
class Stage:
    """One stage of :func:`train_staged`: train U_level on data projected to ``level``."""

    level: int
    steps: int
    lr: float = 1e-3
    #: keep the parameters of levels < ``level`` (and the lift) fixed
    freeze_coarser: bool = False
    #: sum the losses of every level <= ``level`` against the targets projected there
    multi_res_loss: bool = False


def stage_parameters(staged: StagedUNet, stage: Stage, shared: Sequence[nn.Module] = ()) -> list[nn.Parameter]:
    """Mark the parameters ``stage`` trains (``requires_grad``) and return them: those of levels
    <= ``stage.level``, or only of ``stage.level`` when ``freeze_coarser``. ``shared`` modules
    (e.g. a noise-level embedding feeding every level) belong to level 0."""
    shared_params = [p for module in shared for p in module.parameters()]
    for level in range(staged.num_levels):
        trainable = level <= stage.level and not (stage.freeze_coarser and level < stage.level)
        for p in staged.level_parameters(level) + (shared_params if level == 0 else []):
            p.requires_grad_(trainable)
    return [p for level in range(stage.level + 1) for p in staged.level_parameters(level) if p.requires_grad] + [
        p for p in shared_params if p.requires_grad]


def stage_loss(outputs: list[Tensor], target: Tensor, levels: Hierarchy, stage: Stage) -> Tensor:
    """Σ_j mass-weighted MSE of ``outputs[j] [B, N_j, C]`` against ``target [B, N_stage, C]``
    projected to level j, over j = ``stage.level`` (or every j <= it with ``multi_res_loss``)."""
    scored = range(stage.level + 1) if stage.multi_res_loss else [stage.level]
    return sum(weighted_mse(outputs[j], levels.project(target, stage.level, j), levels.mass(j)) for j in scored)


def run_stages(staged: StagedUNet, stages: Sequence[Stage], step_loss: Callable[[Stage, int], Tensor],
               shared: Sequence[nn.Module] = ()) -> list[list[float]]:
    """The staged loop: for every stage a fresh Adam on :func:`stage_parameters`, ``stage.steps``
    steps minimising ``step_loss(stage, step)``; returns the losses, one list per stage.
    Every parameter is trainable again afterwards."""
    for stage in stages:
        if not 0 <= stage.level < staged.num_levels:
            raise GeounetError(f"stage levels must lie in [0, {staged.num_levels - 1}], got {stage.level}")
    histories = []
    try:
        for stage in stages:
            optimiser = torch.optim.Adam(stage_parameters(staged, stage, shared), lr=stage.lr)
            history = []
            for step in range(stage.steps):
                loss = step_loss(stage, step)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                history.append(float(loss.detach()))
            histories.append(history)
    finally:
        for module in [staged, *shared]:
            for p in module.parameters():
                p.requires_grad_(True)
    return histories


def train_staged(staged: StagedUNet, inputs: Tensor, targets: Tensor, hierarchy: Hierarchy,
                 stages: Sequence[Stage], batch_size: int = 8, seed: int = 0) -> list[list[float]]:
    """Train ``staged`` stage by stage on ``inputs [S, N_I, C_in]``, ``targets [S, N_I, C_out]``
    (finest level of ``hierarchy``); returns the loss of every step, one list per stage.

    The loss at level j is the mass-weighted MSE (:func:`geounet.train.loop.weighted_mse`
    with level j's masses) against the targets projected to level j (:func:`stage_loss`).
    """
    levels = geometry_for(staged, hierarchy, staged.unet.kind, staged.num_levels)
    finest = levels.finest_level

    def step_loss(stage: Stage, step: int) -> Tensor:
        index = batch_indices(len(inputs), batch_size, step, seed)
        x = levels.project(inputs[index], finest, stage.level)
        y = levels.project(targets[index], finest, stage.level)
        return stage_loss(staged(x, levels, stage=stage.level), y, levels, stage)

    return run_stages(staged, stages, step_loss)
