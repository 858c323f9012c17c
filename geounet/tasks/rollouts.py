"""Autoregressive rollouts of forecast samples, the evaluation every forecasting task scores.

The model (:class:`~geounet.models.autoregressive.Autoregressive`) is rolled out from the
input window of each chosen sample over the sample's steps; the truth is the sample's
output states and persistence repeats its last input state. The scores are those of
:mod:`geounet.functional.scores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geounet.models.autoregressive import Autoregressive


@dataclass
class Rollouts:
    """Physical fields ``[I, L, N, C]`` float64 (NaN where a variable holds no data)."""

    forecast: Tensor
    truth: Tensor
    persistence: Tensor


@torch.no_grad()
def roll_out(model: Autoregressive, samples, indices: np.ndarray, device: torch.device,
             batch_size: int = 4) -> Rollouts:
    """The model's forecasts of ``samples`` ``indices`` (a forecast data set with ``batch`` and
    ``states``), their truth and persistence."""
    was_training = model.training
    model.eval()
    moved = samples.to(device)
    forecasts, states = [], []
    for start in range(0, len(indices), batch_size):
        chosen = np.asarray(indices[start : start + batch_size])
        batch = moved.batch(chosen)
        inputs = batch.inputs.to(device)
        forecasts.append(model.physical(model(inputs, batch.hierarchy), inputs).cpu())  # [B, L, N, C]
        states.append(samples.states(chosen))  # [B, T_in + L, N, C]
    model.train(was_training)
    forecast, state = torch.cat(forecasts).double(), torch.cat(states).double()
    leads = forecast.shape[1]
    truth = state[:, -leads:]
    return Rollouts(forecast, truth, state[:, -leads - 1 : -leads].expand_as(truth))
