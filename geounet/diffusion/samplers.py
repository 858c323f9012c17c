"""Samplers: ancestral DDPM, deterministic DDIM and Heun, for any schedule.

Every sampler walks the schedule's grid t_0 = t_max > t_1 > ... > t_n = 0, starting from
x = s_{t_max} ε (the a_{t_max} x_0 part is negligible by construction of t_max), and
calls ``denoise(x, t) -> (x̂_0, ε̂)`` (e.g. :meth:`geounet.diffusion.denoiser.Denoiser.denoise`
with the geometry bound). The last step returns x̂_0.

- **DDIM** (Song et al. 2021, η = 0): x_{t'} = a_{t'} x̂_0 + s_{t'} ε̂. In the scaled
  variables y = x / a, σ = s / a this is the Euler step of the probability-flow ODE
  dy/dσ = ε̂, which is why it suits any schedule.
- **Heun** (Karras et al. 2022): the same ODE with the trapezoidal corrector
  y' = y + (σ' - σ)(ε̂(y) + ε̂(y_Euler)) / 2 (no correction on the last step to σ = 0).
- **DDPM** (ancestral): draws x_{t'} from q(x_{t'} | x_t, x_0 = x̂_0), with
  α = a_t / a_{t'} and β² = s_t² - α² s_{t'}²,

      mean = α s_{t'}² / s_t² · x_t + a_{t'} β² / s_t² · x̂_0,    var = β² s_{t'}² / s_t².

All noise (the start and DDPM's fresh noise) is white noise with node deviations
``std`` drawn from ``generator``: the same seed gives the same samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from geounet.diffusion.noise import white_noise
from geounet.diffusion.schedules import Schedule
from geounet.errors import GeounetError

#: ``denoise(x_t [B, N, C], t [B]) -> (x̂_0, ε̂)``
DenoiseFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


#: one step ``step(denoise, schedule, x, t, t_next, noise) -> x_{t_next}``; ``noise()`` draws fresh white noise
Step = Callable[[DenoiseFn, Schedule, Tensor, Tensor, Tensor, Callable[[], Tensor]], Tensor]


def _scalar(value: Tensor, like: Tensor) -> Tensor:
    return value.to(like.dtype)


def ddim_step(denoise: DenoiseFn, schedule: Schedule, x: Tensor, t: Tensor, t_next: Tensor, noise) -> Tensor:
    x0, eps = denoise(x, t.expand(x.shape[0]))
    return _scalar(schedule.a(t_next), x) * x0 + _scalar(schedule.s(t_next), x) * eps


def heun_step(denoise: DenoiseFn, schedule: Schedule, x: Tensor, t: Tensor, t_next: Tensor, noise) -> Tensor:
    x0, eps = denoise(x, t.expand(x.shape[0]))
    if t_next == 0:
        return x0
    a, a_next = schedule.a(t), schedule.a(t_next)
    sigma, sigma_next = schedule.s(t) / a, schedule.s(t_next) / a_next
    y = x / _scalar(a, x)
    _, eps_next = denoise(_scalar(a_next, x) * (y + _scalar(sigma_next - sigma, x) * eps), t_next.expand(x.shape[0]))
    return _scalar(a_next, x) * (y + _scalar(sigma_next - sigma, x) * (eps + eps_next) / 2)


def ddpm_step(denoise: DenoiseFn, schedule: Schedule, x: Tensor, t: Tensor, t_next: Tensor, noise) -> Tensor:
    x0, _ = denoise(x, t.expand(x.shape[0]))
    if t_next == 0:
        return x0
    a, s, a_next, s_next = schedule.a(t), schedule.s(t), schedule.a(t_next), schedule.s(t_next)
    alpha = a / a_next
    beta2 = s**2 - alpha**2 * s_next**2
    mean = _scalar(alpha * s_next**2 / s**2, x) * x + _scalar(a_next * beta2 / s**2, x) * x0
    return mean + torch.sqrt(beta2 * s_next**2 / s**2).item() * noise()


#: the sampler steps by the name :func:`sample` takes
SAMPLERS: dict[str, Step] = {"ddim": ddim_step, "heun": heun_step, "ddpm": ddpm_step}


@torch.no_grad()
def sample(name: str, denoise: DenoiseFn, schedule: Schedule, std: Tensor, batch: int, channels: int, steps: int,
           generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Samples ``[batch, N, channels]`` from the sampler called ``name`` (``"ddim"``, ``"heun"``
    or ``"ddpm"``) in ``steps`` steps; ``std [N]`` are the white noise's node deviations."""
    if name not in SAMPLERS:
        raise GeounetError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    step = SAMPLERS[name]

    def noise() -> Tensor:
        return white_noise(std, batch, channels, generator, dtype)

    grid = schedule.grid(steps).to(std.device)
    x = schedule.s(grid[0]).item() * noise()
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        x = step(denoise, schedule, x, t, t_next, noise)
    return x
