"""The denoising loss: mass-weighted regression of ε or v at random noise levels.

For data x_0 ``[B, N, C]`` on the finest level of a hierarchy, draw one time t_b per batch
element from the schedule's training distribution and white noise ε in the mass inner
product (:func:`geounet.diffusion.noise.noise_std`), form x_t = a_t x_0 + s_t ε, and
minimise

    L = mean_b  Σ_n w_n |f_θ(x_t, t)_n - y_n|² / C,     y = ε or v,

with w the finest level's masses normalised per geometry
(:func:`geounet.data.samples.node_weights`): the L2 error of the prediction as a function,
whatever the mesh. (Within a union of meshes all meshes share t_b; see
:mod:`geounet.diffusion.denoiser`.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.data.samples import node_weights
from geounet.diffusion import noise as noise_lib
from geounet.diffusion.denoiser import Denoiser
from geounet.hierarchy.base import Hierarchy
from geounet.train.loop import weighted_mse


def denoising_loss(denoiser: Denoiser, x0: Tensor, hierarchy: Hierarchy, generator: torch.Generator | None = None,
                   context: Tensor | None = None, times: Tensor | None = None, t_low: float | None = None) -> Tensor:
    """The loss above for one batch ``x0 [B, N, C]``; ``times [B]`` overrides the drawn times,
    ``t_low`` restricts them to t >= t_low (a stage's noise range,
    :func:`geounet.diffusion.detail_snr.drowning_times`)."""
    schedule = denoiser.schedule
    t = schedule.sample_times(x0.shape[0], generator, t_low) if times is None else times.to(torch.float64)
    t = t.to(x0.device)
    std = noise_lib.noise_std(hierarchy)
    eps = noise_lib.white_noise(std.cpu(), x0.shape[0], x0.shape[-1], generator, x0.dtype).to(x0.device)
    x_t = schedule.marginal(x0, t, eps)
    y = noise_lib.target(denoiser.prediction, x0, eps, schedule.a(t), schedule.s(t))
    return weighted_mse(denoiser(x_t, hierarchy, t, context), y, node_weights(hierarchy))
