"""An exponential moving average of a model's weights.

After every optimiser step, θ̄ <- β θ̄ + (1 - β) θ for every floating parameter, with the
decay warmed up as β_k = min(β, (1 + k) / (10 + k)) at update k (so early averages are not
dominated by the random initialisation); buffers (e.g. norm statistics) are copied.
Sampling uses the averaged weights (``ema.module``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from geounet.errors import GeounetError


class EMA(nn.Module):
    """Holds ``module``, a frozen copy of a model whose weights track the model's average.

    Args:
        model: the model being trained.
        decay: β in (0, 1).
        warmup: use the warm-up β_k above (default True).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        if not 0 < decay < 1:
            raise GeounetError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def current_decay(self) -> float:
        """β_k for the next update."""
        k = int(self.updates)
        return min(self.decay, (1 + k) / (10 + k)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step towards ``model``'s current weights."""
        beta = self.current_decay()
        averaged = dict(self.module.named_parameters())
        for name, param in model.named_parameters():
            if name not in averaged:
                raise GeounetError(f"the model has parameter {name!r} that the EMA copy lacks; build the EMA from it")
            averaged[name].lerp_(param.detach(), 1 - beta)
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates += 1
