"""The denoising loss: mass-weighted regression of ε or v at random noise levels.

For data x_0 ``[B, N, C]`` on the finest level of a hierarchy, draw one time t_b per batch
element from the schedule's training distribution and white noise ε in the mass inner
product (:func:`geounet.diffusion.noise.noise_std`), form x_t = a_t x_0 + s_t ε, and
minimise

    L = mean_b  Σ_n w_n |f_θ(x_t, t)_n - y_n|² / C,     y = ε or v,

with w the node weights the caller passes: the finest level's masses normalised per
geometry (:func:`geounet.data.samples.node_weights`) make it the L2 error of the prediction
as a function, whatever the mesh. (Within a union of meshes all meshes share t_b; see
:mod:`geounet.diffusion.denoiser`.)

On a coarser level j (a stage of :mod:`geounet.diffusion.staged`) the noise is the
projection P_j ε of the finest level's white noise, so the level-j process is the
projection of the finest one, x_t^{(j)} = P_j x_t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from geounet.diffusion import noise as noise_lib
from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.schedules import Schedule
from geounet.functional.losses import weighted_mse
from geounet.hierarchy.base import Hierarchy


def noised(schedule: Schedule, prediction: str, x0: Tensor, hierarchy: Hierarchy,
           generator: torch.Generator | None = None, level: int | None = None, times: Tensor | None = None,
           t_range: tuple[float, float] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(x_t, t, y)`` for ``x0 [B, N_level, C]`` on ``level`` (default: the finest): times ``t [B]``
    (``times``, or drawn from the schedule's law conditioned on ``t_range = (low, high)``),
    x_t = a_t x_0 + s_t P_level ε and the regression target ``y`` (ε or v at that level)."""
    if times is None:
        low, high = t_range if t_range is not None else (None, None)
        t = schedule.sample_times(x0.shape[0], generator, low, high)
    else:
        t = times.to(torch.float64)
    t = t.to(x0.device)
    finest = hierarchy.finest_level
    std = noise_lib.noise_std(hierarchy)
    eps = noise_lib.white_noise(std.cpu(), x0.shape[0], x0.shape[-1], generator, x0.dtype).to(x0.device)
    eps = hierarchy.project(eps, finest, finest if level is None else level)
    x_t = schedule.marginal(x0, t, eps)
    return x_t, t, noise_lib.target(prediction, x0, eps, schedule.a(t), schedule.s(t))


def denoising_loss(denoiser: Denoiser, x0: Tensor, hierarchy: Hierarchy, generator: torch.Generator | None = None,
                   *, weights: Tensor, context: Tensor | None = None, times: Tensor | None = None,
                   t_range: tuple[float, float] | None = None, network: Callable[..., Tensor] | None = None) -> Tensor:
    """The loss above for one batch ``x0 [B, N, C]`` with node weights ``weights [N]``;
    ``times [B]`` overrides the drawn times, ``t_range = (low, high)`` restricts them to
    low <= t <= high (a stage's noise range, :func:`geounet.diffusion.staged.stage_time_ranges`).
    ``network`` is what runs the forward pass (default ``denoiser``; e.g. a
    DistributedDataParallel wrapper of it, so that gradients are synchronised)."""
    x_t, t, y = noised(denoiser.schedule, denoiser.prediction, x0, hierarchy, generator, times=times, t_range=t_range)
    return weighted_mse((network or denoiser)(x_t, hierarchy, t, context), y, weights)
