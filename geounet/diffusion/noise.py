"""White noise on a hierarchy's finest level, and the ε- / v-parametrisations.

**White noise in the mass inner product.** On nodes with quadrature weights m_n the
function space carries <x, y>_M = Σ_n m_n x_n y_n. Noise that is white in this inner
product has covariance c M⁻¹, i.e. independent node values

    ε_n = sqrt(c / m_n) z_n,    z_n ~ N(0, 1),

so that its coefficient on *any* M-orthonormal function φ has variance
Var <ε, φ>_M = c Σ_n m_n φ_n² = c: every direction of the function space gets the same
noise, whatever the mesh. ``c`` is the mean node mass of each geometry (A_j / N_j for a
mesh of area A_j with N_j nodes), so E‖ε‖²_M = Σ_n m_n c / m_n = A_j: the noise has the
mass norm of a unit-variance field, and on equal-area grids (the square, HEALPix) ε is the
usual i.i.d. N(0, 1) noise.

**Parametrisations.** With r² = a² + s² a network may predict ε or

    v = (a ε - s x_0) / r          (Salimans & Ho 2022 for r = 1),

and (x̂_0, ε̂) follow linearly from (x_t, prediction):

    ε-prediction:  ε̂ = ε_θ,              x̂_0 = (x_t - s ε̂) / a,
    v-prediction:  x̂_0 = (a x_t - s r v_θ) / r²,   ε̂ = (s x_t + a r v_θ) / r².
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy

PREDICTIONS = ("eps", "v")


def noise_std(hierarchy: Hierarchy, level: int | None = None) -> Tensor:
    """Node standard deviations sqrt(c_j / m_n) of white noise on ``level`` (default: the
    finest), ``[N]`` float64, with c_j the mean mass of the geometry node n belongs to."""
    level = hierarchy.finest_level if level is None else level
    mass = hierarchy.mass(level).to(torch.float64)
    sizes = hierarchy.components(level)
    mean_mass = torch.cat([part.mean().expand(len(part)) for part in mass.split(sizes)])
    return torch.sqrt(mean_mass / mass)


def white_noise(std: Tensor, batch: int, channels: int, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """``[batch, N, channels]`` white noise with node standard deviations ``std [N]``."""
    z = torch.randn(batch, std.numel(), channels, generator=generator, dtype=torch.float64)
    return (z * std.to(torch.float64)[:, None]).to(dtype=dtype, device=std.device)


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise GeounetError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def _broadcast(value: Tensor, like: Tensor) -> Tensor:
    return value.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def target(prediction: str, x0: Tensor, noise: Tensor, a: Tensor, s: Tensor) -> Tensor:
    """The regression target of the network: ε, or v = (a ε - s x_0) / r; ``a, s [B]``."""
    if check_prediction(prediction) == "eps":
        return noise
    a, s = _broadcast(a, x0), _broadcast(s, x0)
    return (a * noise - s * x0) / torch.sqrt(a**2 + s**2)


def split(prediction: str, output: Tensor, x_t: Tensor, a: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """(x̂_0, ε̂) from the network ``output`` at ``x_t`` (module docstring); ``a, s [B]``."""
    a, s = _broadcast(a, x_t), _broadcast(s, x_t)
    if check_prediction(prediction) == "eps":
        return (x_t - s * output) / a, output
    r = torch.sqrt(a**2 + s**2)
    return (a * x_t - s * r * output) / r**2, (s * x_t + a * r * output) / r**2
