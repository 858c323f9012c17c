"""Noise schedules x_t = a_t x_0 + s_t ε: the VP cosine schedule and the EDM σ schedule.

A schedule fixes the forward marginals q(x_t | x_0) = N(a_t x_0, s_t² Σ_ε) for t in
[t_min, t_max], where ε is white noise (see :mod:`geounet.diffusion.noise`), and the signal
to noise ratio SNR(t) = a_t² / s_t², decreasing in t. Samplers and the loss only use
a_t, s_t and the time grid, so either schedule works with every sampler.

**VP cosine** (Nichol & Dhariwal 2021): with f(t) = cos(π/2 · (t + o) / (1 + o)),

    a_t = f(t) / f(0),     s_t = sqrt(1 - a_t²),     a_t² + s_t² = 1,

offset o = 0.008. a_1 = 0 (SNR 0), so time is cut at t_max, where a_t = ``a_min``.
Training times are uniform on [t_min, t_max].

**EDM** (Karras et al. 2022): a_t = 1, s_t = σ = t, so SNR = 1 / σ². Training noise
levels are log-normal, ln σ ~ N(P_mean, P_std²); the sampling grid is

    σ_i = (σ_max^{1/ρ} + i / (n - 1) · (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ,   i = 0 .. n - 1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

from geounet.errors import GeounetError


class Schedule(ABC):
    """x_t = a_t x_0 + s_t ε on t in [t_min, t_max]; time 0 is the data."""

    t_min: float
    t_max: float

    @abstractmethod
    def a(self, t: Tensor) -> Tensor:
        """Signal scale a_t, same shape as ``t``."""

    @abstractmethod
    def s(self, t: Tensor) -> Tensor:
        """Noise scale s_t, same shape as ``t``."""

    @abstractmethod
    def sample_times(self, num: int, generator: torch.Generator | None = None, t_low: float | None = None,
                     t_high: float | None = None) -> Tensor:
        """``num`` training times ``[num]`` float64 from the schedule's training distribution,
        conditioned on t >= ``t_low`` and t <= ``t_high`` when given (a stage's noise range,
        :mod:`geounet.diffusion.staged`)."""

    @abstractmethod
    def grid(self, steps: int) -> Tensor:
        """Sampling times ``[steps + 1]`` float64, decreasing from t_max to 0 (the data)."""

    def snr(self, t: Tensor) -> Tensor:
        """SNR(t) = a_t² / s_t²."""
        return (self.a(t) / self.s(t)) ** 2

    def log_snr(self, t: Tensor) -> Tensor:
        """log SNR(t) = 2 (log a_t - log s_t), finite for t > 0."""
        return 2 * (torch.log(self.a(t)) - torch.log(self.s(t)))

    def marginal(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = a_t x_0 + s_t ε for ``x0, noise [B, N, C]`` and ``t [B]``."""
        a, s = self.a(t).to(x0.dtype), self.s(t).to(x0.dtype)
        return a[:, None, None] * x0 + s[:, None, None] * noise


def _check_range(schedule: Schedule, t_low: float | None, t_high: float | None) -> tuple[float, float]:
    """The range of the training times: ``t_low`` and ``t_high`` (checked), by default t_min and t_max."""
    low = schedule.t_min if t_low is None else float(t_low)
    high = schedule.t_max if t_high is None else float(t_high)
    if not schedule.t_min <= low < schedule.t_max:
        raise GeounetError(f"t_low must lie in [{schedule.t_min}, {schedule.t_max}) for {schedule!r}, got {t_low}")
    if not low < high <= schedule.t_max:
        raise GeounetError(f"t_high must lie in ({low}, {schedule.t_max}] for {schedule!r}, got {t_high}")
    return low, high


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GeounetError(f"the number of sampling steps must be an int >= 1, got {steps!r}")


class VPCosine(Schedule):
    """The variance-preserving cosine schedule (see the module docstring).

    Args:
        offset: o in f(t) = cos(π/2 (t + o) / (1 + o)); keeps s_t from vanishing too fast at t = 0.
        a_min: a_t at t_max (the largest time trained and sampled from), in (0, 1).
        t_min: the smallest time, > 0 so that s_t > 0.
    """

    def __init__(self, offset: float = 0.008, a_min: float = 1e-3, t_min: float = 1e-4):
        if not offset >= 0:
            raise GeounetError(f"offset must be >= 0, got {offset}")
        if not 0 < a_min < 1:
            raise GeounetError(f"a_min must lie in (0, 1), got {a_min}")
        self.offset = offset
        self._f0 = math.cos(math.pi / 2 * offset / (1 + offset))
        self.t_max = (1 + offset) * 2 / math.pi * math.acos(a_min * self._f0) - offset
        if not 0 < t_min < self.t_max:
            raise GeounetError(f"t_min must lie in (0, {self.t_max:.4f}), got {t_min}")
        self.t_min = t_min

    def __repr__(self) -> str:
        return f"VPCosine(offset={self.offset}, t_min={self.t_min}, t_max={self.t_max:.6f})"

    def a(self, t: Tensor) -> Tensor:
        return torch.cos(math.pi / 2 * (t + self.offset) / (1 + self.offset)) / self._f0

    def s(self, t: Tensor) -> Tensor:
        return torch.sqrt((1 - self.a(t) ** 2).clamp_min(0))

    def sample_times(self, num: int, generator: torch.Generator | None = None, t_low: float | None = None,
                     t_high: float | None = None) -> Tensor:
        low, high = _check_range(self, t_low, t_high)
        u = torch.rand(num, generator=generator, dtype=torch.float64)
        return low + (high - low) * u

    def grid(self, steps: int) -> Tensor:
        _check_steps(steps)
        times = torch.linspace(self.t_max, self.t_min, steps, dtype=torch.float64)
        return torch.cat([times, times.new_zeros(1)])


class EDM(Schedule):
    """The EDM schedule a_t = 1, s_t = σ = t (see the module docstring).

    Args:
        sigma_min, sigma_max: the range of noise levels sampled from.
        rho: the sampling grid's exponent ρ (7 in Karras et al.).
        p_mean, p_std: training noise levels ln σ ~ N(p_mean, p_std²).
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 p_mean: float = -1.2, p_std: float = 1.2):
        if not 0 < sigma_min < sigma_max:
            raise GeounetError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if not rho > 0 or not p_std > 0:
            raise GeounetError(f"rho and p_std must be positive, got {rho}, {p_std}")
        self.t_min, self.t_max = sigma_min, sigma_max
        self.rho, self.p_mean, self.p_std = rho, p_mean, p_std

    def __repr__(self) -> str:
        return f"EDM(sigma_min={self.t_min}, sigma_max={self.t_max}, rho={self.rho})"

    def a(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def s(self, t: Tensor) -> Tensor:
        return t

    def sample_times(self, num: int, generator: torch.Generator | None = None, t_low: float | None = None,
                     t_high: float | None = None) -> Tensor:
        # ln σ = p_mean + p_std Φ⁻¹(u), u uniform on [Φ(z_low), Φ(z_high)): the log-normal
        # conditioned on t_low <= σ <= t_high (unbounded on a side not given)
        low, high = _check_range(self, t_low, t_high)

        def cdf(sigma: float) -> float:
            return 0.5 * (1 + math.erf((math.log(sigma) - self.p_mean) / (self.p_std * math.sqrt(2))))

        u_low = cdf(low) if t_low is not None else 0.0
        u_high = cdf(high) if t_high is not None else 1.0
        u = u_low + (u_high - u_low) * torch.rand(num, generator=generator, dtype=torch.float64)
        normal = math.sqrt(2) * torch.erfinv((2 * u - 1).clamp(-1 + 1e-16, 1 - 1e-16))
        return torch.exp(self.p_mean + self.p_std * normal)

    def grid(self, steps: int) -> Tensor:
        _check_steps(steps)
        ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
        low, high = self.t_min ** (1 / self.rho), self.t_max ** (1 / self.rho)
        sigmas = (high + ramp * (low - high)) ** self.rho
        return torch.cat([sigmas, sigmas.new_zeros(1)])


#: the schedule classes by the name :func:`make_schedule` takes
SCHEDULES = {"vp_cosine": VPCosine, "edm": EDM}


def make_schedule(name: str, **options) -> Schedule:
    """The schedule called ``name`` (``"vp_cosine"`` or ``"edm"``) with its keyword options."""
    if name not in SCHEDULES:
        raise GeounetError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](**options)
