"""Callbacks: code that :func:`geounet.train.loop.fit` runs at named events of training.

Events, in the order a run meets them:

- ``on_train_start(model)``: after the model is on its device and a resumed run's state
  (including this callback's, see below) is loaded, before the first step;
- ``on_step_end(model, step)``: after the optimiser step that completed step ``step`` (1-based);
- ``on_checkpoint_written(path, step)``: after the checkpoint of step ``step`` is on disk
  (every process calls it; only rank 0 writes the file).

A callback with state (an EMA of the weights) returns it from ``state_dict()``; ``fit``
stores it in every checkpoint and gives it back to ``load_state_dict`` on resume, so a
resumed run continues the callback exactly where the interrupted one stood.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from geounet.diffusion.ema import EMA


class Callback:
    """The base: every event does nothing and there is no state; override what you need.

    ``key`` names the callback's state in a checkpoint; two callbacks of one run need
    different keys.
    """

    key: str = ""

    def on_train_start(self, model: nn.Module) -> None:
        pass

    def on_step_end(self, model: nn.Module, step: int) -> None:
        pass

    def on_checkpoint_written(self, path: Path, step: int) -> None:
        pass

    def state_dict(self) -> dict[str, Any] | None:
        """The state a checkpoint keeps (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EMAUpdate(Callback):
    """Updates ``ema`` (:class:`~geounet.diffusion.ema.EMA`) after every optimiser step; its
    averaged weights and update count are checkpointed and restored exactly, under ``key``
    (several EMAs of one run need distinct keys)."""

    def __init__(self, ema: EMA, key: str = "ema"):
        self.ema = ema
        self.key = key

    def on_train_start(self, model: nn.Module) -> None:
        self.ema.to(next(model.parameters()).device)

    def on_step_end(self, model: nn.Module, step: int) -> None:
        self.ema.update(model)

    def state_dict(self) -> dict[str, Any]:
        return self.ema.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state)
