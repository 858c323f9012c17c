"""Staged (coarse-to-fine) training of a :class:`~geounet.nn.staged.StagedUNet` (paper §5.2),
for regression and diffusion, as stages of :func:`geounet.train.loop.fit`.

A :class:`Stage` trains U_level on data projected to ``level`` (``hierarchy.project``;
Haar averages or band truncation): the parameters of levels <= ``level``, or with
``freeze_coarser`` only those ``level`` adds, everything trained in earlier stages (the
lift, U_0 and levels < level) staying fixed. Each stage gets a fresh optimiser and
learning-rate schedule (:mod:`geounet.train.stages`); :func:`staged_config` is the
paper's choice, Adam at each stage's constant learning rate. Being ``fit``, staged
training checkpoints, resumes mid-stage exactly, runs on any device and takes callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geounet.data.samples import Batch, Dataset
from geounet.diffusion.loss import noised
from geounet.diffusion.staged import StagedDenoiser
from geounet.errors import GeounetError
from geounet.functional.losses import weighted_mse
from geounet.hierarchy.base import Hierarchy
from geounet.nn.staged import StagedUNet
from geounet.nn.unet import geometry_for
from geounet.train.config import TrainConfig
from geounet.train.loop import TrainResult, fit, unwrap
from geounet.train.stages import TrainingStage


@dataclass(frozen=True)
class Stage:
    """One stage: train U_level on data projected to ``level``."""

    level: int
    steps: int
    lr: float = 1e-3
    #: keep the parameters of levels < ``level`` (and the lift) fixed
    freeze_coarser: bool = False
    #: sum the losses of every level <= ``level`` against the targets projected there
    multi_res_loss: bool = False


def staged_config(stages: Sequence[Stage], batch_size: int = 8, seed: int = 0, **changes) -> TrainConfig:
    """The optimisation of staged training: Adam (no weight decay) at each stage's constant
    learning rate, no clipping, for the stages' total steps; ``changes`` override fields
    (e.g. ``checkpoint_every``, ``device``)."""
    steps = sum(stage.steps for stage in stages)
    values = dict(steps=steps, batch_size=batch_size, lr=stages[0].lr if stages else 1e-3, weight_decay=0.0,
                  warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0, eval_every=max(1, steps),
                  checkpoint_every=max(1, steps), seed=seed)
    return TrainConfig(**{**values, **changes})


def stage_parameters(staged: StagedUNet, stage: Stage, shared: Sequence[nn.Module] = ()) -> list[nn.Parameter]:
    """The parameters ``stage`` trains: those of levels <= ``stage.level``, or only of
    ``stage.level`` when ``freeze_coarser``. ``shared`` modules (e.g. a noise-level
    embedding feeding every level) belong to level 0."""
    first = stage.level if stage.freeze_coarser else 0
    levels = [p for level in range(first, stage.level + 1) for p in staged.level_parameters(level)]
    return levels + ([p for module in shared for p in module.parameters()] if first == 0 else [])


def stage_loss(outputs: list[Tensor], target: Tensor, levels: Hierarchy, stage: Stage) -> Tensor:
    """Σ_j mass-weighted MSE of ``outputs[j] [B, N_j, C]`` against ``target [B, N_stage, C]``
    projected to level j, over j = ``stage.level`` (or every j <= it with ``multi_res_loss``)."""
    scored = range(stage.level + 1) if stage.multi_res_loss else [stage.level]
    return sum(weighted_mse(outputs[j], levels.project(target, stage.level, j), levels.mass(j)) for j in scored)


def _check_levels(staged: StagedUNet, stages: Sequence[Stage]) -> None:
    for stage in stages:
        if not 0 <= stage.level < staged.num_levels:
            raise GeounetError(f"stage levels must lie in [0, {staged.num_levels - 1}], got {stage.level}")


def _per_stage(result: TrainResult, count: int) -> list[list[float]]:
    return [[row["loss"] for row in result.history if row["stage"] == index] for index in range(count)]


def train_staged(staged: StagedUNet, data: Dataset, stages: Sequence[Stage], cfg: TrainConfig | None = None,
                 **fit_options) -> list[list[float]]:
    """Train ``staged`` stage by stage on ``data`` (inputs and targets on the finest level of
    its hierarchy) under ``cfg`` (default :func:`staged_config`); ``fit_options`` go to
    :func:`~geounet.train.loop.fit` (``checkpoint_path``, ``resume``, ``callbacks``, ...).
    Returns the loss of every step, one list per stage.

    The loss of stage j is the mass-weighted MSE at level j (:func:`stage_loss`) against the
    targets projected to level j.
    """
    _check_levels(staged, stages)

    def loss_of(stage: Stage):
        def loss(model: nn.Module, batch: Batch, generator: torch.Generator) -> Tensor:
            levels = geometry_for(staged, batch.hierarchy, staged.unet.kind, staged.num_levels)
            x = levels.project(batch.inputs, levels.finest_level, stage.level)
            y = levels.project(batch.targets, levels.finest_level, stage.level)
            return stage_loss(model(x, levels, stage=stage.level), y, levels, stage)

        return loss

    plan = [TrainingStage(s.steps, stage_parameters(staged, s), loss_of(s), s.lr, f"level {s.level}") for s in stages]
    result = fit(staged, data, cfg or staged_config(stages), stages=plan, **{"progress": False, **fit_options})
    return _per_stage(result, len(stages))


def train_staged_diffusion(denoiser: StagedDenoiser, data: Dataset, stages: Sequence[Stage],
                           ranges: Sequence[tuple[float, float]], cfg: TrainConfig | None = None,
                           field: str = "inputs", **fit_options) -> list[list[float]]:
    """Train ``denoiser`` stage by stage on the ``field`` of ``data`` (``x_0`` on the finest
    level): stage j on P_j x_0 with times from the schedule's law conditioned on
    ``ranges[j]`` (:func:`~geounet.diffusion.staged.stage_time_ranges`); the loss is the
    mass-weighted MSE of the ε / v prediction at level j (and, with ``multi_res_loss``, of
    every coarser output against the target projected there). The noise-level embedding
    trains with level 0. ``cfg`` and ``fit_options`` as in :func:`train_staged`; returns the
    losses, one list per stage. The stage's forward pass reads every level's output
    (``level_outputs``), so this loop runs in one process (not under torchrun)."""
    staged = denoiser.model
    _check_levels(staged, stages)
    if len(ranges) != staged.num_levels:
        raise GeounetError(f"need one time range per level ({staged.num_levels}), got {len(ranges)}")

    def loss_of(stage: Stage):
        def loss(model: nn.Module, batch: Batch, generator: torch.Generator) -> Tensor:
            module = unwrap(model)
            levels = geometry_for(staged, batch.hierarchy, staged.unet.kind, staged.num_levels)
            x0 = levels.project(getattr(batch, field), levels.finest_level, stage.level)
            x_t, t, y = noised(module.schedule, module.prediction, x0, levels, generator, stage.level,
                               t_range=ranges[stage.level])
            return stage_loss(module.level_outputs(x_t, levels, t, stage=stage.level), y, levels, stage)

        return loss

    plan = [TrainingStage(s.steps, stage_parameters(staged, s, shared=[denoiser.embedding]), loss_of(s), s.lr,
                          f"level {s.level}") for s in stages]
    result = fit(denoiser, data, cfg or staged_config(stages), stages=plan, **{"progress": False, **fit_options})
    return _per_stage(result, len(stages))
