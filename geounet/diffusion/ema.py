"""An exponential moving average of a model's weights, with the decay as a policy of the
update count.

After update k (k = 0, 1, ...), θ̄ <- β_k θ̄ + (1 - β_k) θ for every floating parameter;
buffers (e.g. norm statistics) are copied. Sampling uses the averaged weights
(``ema.module``). The policies (``EMA_POLICIES``):

- ``fixed``: β_k = β. The average of the last ~1 / (1 - β) steps, but the initial weights
  keep the share β^n after n updates (0.05 for β = 0.995 after 600 steps). β = 0 is no
  averaging: the EMA weights are the current weights.
- ``warmup``: β_k = min(β, (1 + k) / (10 + k)), so 1 - β_k = 9 / (10 + k) until the cap β
  is reached (at k = (10 β - 1) / (1 - β): 890 updates for β = 0.99, 1790 for 0.995).
  Before the cap it is close to the power policy with γ = 8 (σ_rel ≈ 0.09): a run shorter
  than the cap averages over a fixed *fraction* of itself, and β does not matter.
- ``power`` (Karras et al. 2024, "Analyzing and improving the training dynamics of
  diffusion models"): β_k = (1 - 1 / (k + 1))^(γ + 1). After n updates the average weighs
  the weights θ_j of step j = 1..n in proportion to about j^γ: a profile whose length is a
  fixed fraction of training, whatever n is. Its relative width (standard deviation over
  n) is σ_rel = sqrt(γ + 1) / ((γ + 2) sqrt(γ + 3)) (:func:`power_gamma` inverts it).
  γ = 0 gives β_k = k / (k + 1): the plain average of all weights since the start.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from geounet.errors import GeounetError

EMA_POLICIES = ("fixed", "warmup", "power")


def warmup_decay(updates: int, decay: float) -> float:
    """β_k = min(β, (1 + k) / (10 + k)) at update k = ``updates``."""
    return min(decay, (1 + updates) / (10 + updates))


def power_decay(updates: int, gamma: float) -> float:
    """β_k = (1 - 1 / (k + 1))^(γ + 1) at update k = ``updates`` (0 at the first: a copy)."""
    return (1 - 1 / (updates + 1)) ** (gamma + 1)


def power_sigma_rel(gamma: float) -> float:
    """σ_rel of the power profile j^γ on [0, 1]: its standard deviation, sqrt(γ + 1) / ((γ + 2) sqrt(γ + 3))."""
    return math.sqrt(gamma + 1) / ((gamma + 2) * math.sqrt(gamma + 3))


def power_gamma(sigma_rel: float) -> float:
    """The γ >= 0 whose profile has relative width ``sigma_rel`` in (0, σ_rel(0)]: σ_rel(γ)
    falls from 1/sqrt(12) ≈ 0.289 at γ = 0 towards 0, so bisection on log(1 + γ) finds it."""
    widest = power_sigma_rel(0.0)
    if not 0 < sigma_rel <= widest:
        raise GeounetError(f"the power EMA's sigma_rel must lie in (0, {widest:.4f}] (the widest profile is the "
                           f"plain average, gamma = 0), got {sigma_rel}")
    low, high = 0.0, 30.0  # log(1 + γ): γ up to e^30, σ_rel down to ~3e-7
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if power_sigma_rel(math.expm1(middle)) > sigma_rel else (low, middle)
    return math.expm1((low + high) / 2)


class EMA(nn.Module):
    """Holds ``module``, a frozen copy of a model whose weights track the model's average.

    Args:
        model: the model being trained.
        decay: β in [0, 1) for the ``fixed`` and ``warmup`` policies (0: no averaging).
        warmup: the ``warmup`` policy (default) rather than ``fixed``; ignored when
            ``sigma_rel`` is given.
        sigma_rel: the ``power`` policy with this relative width (see the module docstring).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True, sigma_rel: float | None = None):
        super().__init__()
        if not 0 <= decay < 1:
            raise GeounetError(f"EMA decay must lie in [0, 1) (0: no averaging), got {decay}")
        self.decay = decay
        self.policy = "power" if sigma_rel is not None else "warmup" if warmup else "fixed"
        self.gamma = power_gamma(sigma_rel) if sigma_rel is not None else None
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    def current_decay(self) -> float:
        """β_k for the next update."""
        k = int(self.updates)
        if self.policy == "power":
            return power_decay(k, self.gamma)
        return warmup_decay(k, self.decay) if self.policy == "warmup" else self.decay

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
