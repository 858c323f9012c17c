"""Stages of one training run: consecutive spans of steps, each with its trainable
parameters, loss and learning rate, run inside :func:`geounet.train.loop.fit`.

**Optimiser policy.** Each stage gets a fresh AdamW over its trainable parameters (the
moments start at zero) and restarts the learning-rate schedule: warm-up then cosine decay
(``train.warmup_steps``, ``train.min_lr_ratio``) over the stage's own steps, peaking at
the stage's ``lr`` (default ``train.lr``). This is the paper's staged training (a new
Adam per stage). Parameters outside a stage's set are frozen (``requires_grad=False``)
for its steps, so neither the gradient nor the weight decay moves them; every
parameter's ``requires_grad`` is restored when ``fit`` returns.

A checkpoint records the stage its optimiser belongs to: a run resumed mid-stage loads
the optimiser and schedule state and continues exactly; a run resumed at a stage boundary
starts the next stage's optimiser afresh, as the uninterrupted run does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geounet.data.samples import Batch
from geounet.errors import GeounetError

#: ``loss(model, batch, generator) -> scalar``: the training loss of one batch. ``model`` is
#: what to call for the forward pass (under torchrun a DistributedDataParallel wrapper; read
#: attributes from :func:`geounet.train.loop.unwrap` of it); ``generator`` is the run's CPU
#: generator for any randomness the loss draws (checkpointed: resume continues its stream).
LossFn = Callable[[nn.Module, Batch, torch.Generator], Tensor]


@dataclass(eq=False)
class TrainingStage:
    """``steps`` steps training ``parameters`` (None: every parameter of the model, as they
    are) on ``loss`` (None: fit's loss) with peak learning rate ``lr`` (None: ``train.lr``)."""

    steps: int
    parameters: Sequence[nn.Parameter] | None = None
    loss: LossFn | None = None
    lr: float | None = None
    name: str = ""


def check_stages(stages: Sequence[TrainingStage], model: nn.Module, total_steps: int) -> None:
    """Refuse empty stages, parameters that are not the model's, and step counts that do
    not add up to ``train.steps``."""
    if not stages:
        raise GeounetError("fit needs at least one stage")
    owned = {id(p) for p in model.parameters()}
    for index, stage in enumerate(stages):
        if stage.steps < 1:
            raise GeounetError(f"stage {index} ({stage.name or 'unnamed'}) must have at least one step, "
                               f"got {stage.steps}")
        if stage.parameters is not None:
            if not stage.parameters:
                raise GeounetError(f"stage {index} ({stage.name or 'unnamed'}) trains no parameters")
            if any(id(p) not in owned for p in stage.parameters):
                raise GeounetError(f"stage {index} ({stage.name or 'unnamed'}) lists parameters that are not the "
                                   "trained model's; take them from the model passed to fit")
    if sum(stage.steps for stage in stages) != total_steps:
        raise GeounetError(f"the stages' steps {[s.steps for s in stages]} add up to "
                           f"{sum(s.steps for s in stages)}, but train.steps is {total_steps}; make them agree")


def stage_at(stages: Sequence[TrainingStage], step: int) -> int:
    """The index of the stage that runs (0-based) global step ``step``."""
    end = 0
    for index, stage in enumerate(stages):
        end += stage.steps
        if step < end:
            return index
    return len(stages) - 1


def trainable(model: nn.Module, stage: TrainingStage) -> list[nn.Parameter]:
    """Freeze every parameter outside ``stage.parameters`` and return the stage's parameters
    (all of the model's, untouched, when it names none)."""
    if stage.parameters is None:
        return list(model.parameters())
    chosen = {id(p) for p in stage.parameters}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)
    return [p for p in model.parameters() if id(p) in chosen]
