"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit square.

    ∂_t ω + u · ∇ω = ν Δω - α ω + f,      u = (∂_y ψ, -∂_x ψ),      -Δψ = ω,

with viscosity ν, linear drag α (0 unless asked for) and a steady forcing f. Two data sets:

- **FNO's setting** (Li et al. 2021; :func:`generate_navier_stokes`): one fixed forcing
  f(x, y) = 0.1 (sin 2π(x + y) + cos 2π(x + y)), no drag, initial vorticity drawn from the
  Gaussian random field N(0, 7^{3/2} (-Δ + 49 I)^{-5/2}) with zero mean. The forced modes
  ±(1, 1) hold most of the target (and of its change from the input), the same for every
  sample, so models learn that one mode and their errors coincide.
- **Forced turbulence in a statistically steady state** (:func:`generate_forced_navier_stokes`):
  every sample has its own forcing, a random band-limited field (:func:`random_forcing`) given
  to the model as an input channel, and linear drag removes the energy that the inverse
  cascade carries to the largest scales, so energy and enstrophy settle after a spin-up
  (measured by :func:`spinup_history`) and the pairs (ω(t0), f) -> ω(t0 + horizon) are
  drawn from that steady state.

Pseudo-spectral in space (2/3-rule dealiasing of the advection term) and IMEX in time:
Crank-Nicolson for diffusion and drag, Heun's predictor-corrector for advection and forcing.
Arrays are ``[batch, n, n]`` with axis -2 = y and axis -1 = x; sample ``(iy, ix)`` sits
at ``(x, y) = (ix / n, iy / n)``. With dt = 5e-3 FNO's data agree with dt = 1e-3
to 2e-7 relative L2 after one time unit.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from geounet.data.cache import cached
from geounet.errors import GeounetError

#: Bump when the solver's numerics change so cached files are regenerated.
GENERATOR_VERSION = 1
#: The same for the forced steady-state data (forcing draw, spin-up, drag).
FORCED_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class NavierStokesConfig:
    """Parameters of one data set; every field enters the cache key."""

    resolution: int = 64
    viscosity: float = 1e-3
    dt: float = 5e-3
    spinup_time: float = 1.0
    horizon: float = 1.0
    num_samples: int = 256
    seed: int = 0


def _wavenumbers(n: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Angular wavenumbers 2π k for rfft2 layout: ``k_y [n, 1]``, ``k_x [1, n//2+1]``."""
    ky = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype) * 2 * math.pi
    kx = torch.fft.rfftfreq(n, d=1.0 / n, dtype=dtype) * 2 * math.pi
    return ky[:, None], kx[None, :]


def gaussian_random_field(num: int, n: int, generator: torch.Generator, alpha: float = 2.5, tau: float = 7.0) -> Tensor:
    """Samples of the Gaussian random field N(0, 7^{3/2} (-Δ + 49 I)^{-5/2}) on an ``n x n`` grid.

    The covariance operator C = σ² (-Δ + τ² I)^{-α} with σ = τ^{(2α-2)/2} (FNO's choice,
    σ = 7^{3/2} for α = 2.5, τ = 7) is diagonal in the Fourier basis, so a sample is
    white noise scaled by sqrt of the eigenvalues σ² (4π²|k|² + τ²)^{-α}; the k = 0
    mode is zeroed (mean-zero vorticity on the torus). Returns ``[num, n, n]`` float64.
    """
    ky, kx = _wavenumbers(n, torch.float64)
    sigma = tau ** (0.5 * (2 * alpha - 2))
    sqrt_eig = sigma * (ky**2 + kx**2 + tau**2) ** (-alpha / 2)  # [n, n//2+1]
    sqrt_eig[0, 0] = 0.0
    noise = torch.randn(num, n, n, generator=generator, dtype=torch.float64)
    # The orthonormal rfft of real white noise gives unit-variance Hermitian coefficients
    # ξ_k; the field is Σ_k sqrt(λ_k) ξ_k e^{2πi k·x} ("forward" norm: no 1/n² on synthesis).
    xi = torch.fft.rfft2(noise, norm="ortho")
    return torch.fft.irfft2(xi * sqrt_eig, s=(n, n), norm="forward")


def forcing(n: int) -> Tensor:
    """f(x, y) = 0.1 (sin 2π(x+y) + cos 2π(x+y)) on the grid, ``[n, n]`` float64."""
    coords = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    phase = 2 * math.pi * (x + y)
    return 0.1 * (torch.sin(phase) + torch.cos(phase))


def random_forcing(num: int, n: int, generator: torch.Generator, amplitude: float, band: tuple[float, float]) -> Tensor:
    """Random steady forcings: white noise restricted to the wavenumber band
    ``band[0] <= |k| <= band[1]`` (k in cycles per unit length), each sample rescaled to
    root-mean-square ``amplitude``. Zero mean (k = 0 is outside the band). ``[num, n, n]`` float64.
    """
    ky, kx = _wavenumbers(n, torch.float64)
    radius = torch.sqrt(ky**2 + kx**2) / (2 * math.pi)  # |k| in cycles, [n, n//2+1]
    in_band = ((radius >= band[0]) & (radius <= band[1])).to(torch.float64)
    if band[0] <= 0 or not in_band.any():
        raise GeounetError(f"forcing band {band} must be positive and hold wavenumbers of an {n} x {n} grid")
    noise = torch.randn(num, n, n, generator=generator, dtype=torch.float64)
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * in_band, s=(n, n))
    return amplitude * field / field.square().mean(dim=(-2, -1), keepdim=True).sqrt()


class VorticitySolver:
    """Batched pseudo-spectral integrator of the vorticity equation on [0, 1)^2.

    ``drag`` is the linear damping α; ``advance`` takes the forcing (FNO's by default).
    """

    def __init__(self, n: int, viscosity: float, dt: float, drag: float = 0.0):
        if n < 8 or n & (n - 1):
            raise GeounetError(f"resolution must be a power of two >= 8, got {n}")
        if viscosity <= 0 or dt <= 0 or drag < 0:
            raise GeounetError(f"viscosity and dt must be positive and drag >= 0, got {viscosity}, {dt} and {drag}")
        self.n, self.viscosity, self.dt, self.drag = n, viscosity, dt, drag
        ky, kx = _wavenumbers(n, torch.float64)
        k2 = ky**2 + kx**2
        self.ky, self.kx = ky, kx
        self.inv_laplacian = torch.where(k2 > 0, 1.0 / k2.clamp_min(1e-30), 0.0)  # ψ̂ = ω̂ / |k|²
        cutoff = (2.0 / 3.0) * (n // 2) * 2 * math.pi
        self.dealias = ((ky.abs() <= cutoff) & (kx.abs() <= cutoff)).to(torch.float64)
        self.default_forcing_hat = torch.fft.rfft2(forcing(n))
        half = 0.5 * dt * viscosity * k2 + 0.5 * dt * drag  # drag = 0 leaves FNO's numbers bit for bit
        self.cn_minus, self.cn_plus = 1.0 - half, 1.0 + half

    def _tendency(self, w_hat: Tensor, forcing_hat: Tensor) -> Tensor:
        """F̂ - (u·∇ω)^ for spectral vorticity ``w_hat [B, n, n//2+1]``."""
        n = self.n
        psi_hat = w_hat * self.inv_laplacian
        u = torch.fft.irfft2(1j * self.ky * psi_hat, s=(n, n))  # ∂_y ψ
        v = torch.fft.irfft2(-1j * self.kx * psi_hat, s=(n, n))  # -∂_x ψ
        w_x = torch.fft.irfft2(1j * self.kx * w_hat, s=(n, n))
        w_y = torch.fft.irfft2(1j * self.ky * w_hat, s=(n, n))
        advection_hat = torch.fft.rfft2(u * w_x + v * w_y) * self.dealias
        return forcing_hat - advection_hat

    def _cn_step(self, w_hat: Tensor, tendency: Tensor) -> Tensor:
        return (self.cn_minus * w_hat + self.dt * tendency) / self.cn_plus

    def advance(self, w: Tensor, time: float, forcing: Tensor | None = None) -> Tensor:
        """Integrate ``w [B, n, n]`` (float64) forward by ``time`` under ``forcing`` (``[B, n, n]``
        or ``[n, n]``; None: FNO's :func:`forcing`); returns the new field."""
        steps = round(time / self.dt)
        if abs(steps * self.dt - time) > 1e-9 * max(1.0, time):
            raise GeounetError(f"time {time} is not a whole number of steps dt={self.dt}")
        forcing_hat = self.default_forcing_hat if forcing is None else torch.fft.rfft2(forcing)
        w_hat = torch.fft.rfft2(w)
        for _ in range(steps):
            tendency = self._tendency(w_hat, forcing_hat)
            predictor = self._cn_step(w_hat, tendency)
            w_hat = self._cn_step(w_hat, 0.5 * (tendency + self._tendency(predictor, forcing_hat)))
        return torch.fft.irfft2(w_hat, s=(self.n, self.n))


def generate_navier_stokes(config: NavierStokesConfig, batch_size: int = 128) -> tuple[Tensor, Tensor]:
    """Pairs (ω(t0), ω(t0 + horizon)) with t0 = spinup_time, each ``[num_samples, n, n]`` float32."""
    solver = VorticitySolver(config.resolution, config.viscosity, config.dt)
    generator = torch.Generator().manual_seed(config.seed)
    inputs, targets = [], []
    for start in range(0, config.num_samples, batch_size):
        count = min(batch_size, config.num_samples - start)
        w0 = gaussian_random_field(count, config.resolution, generator)
        w_in = solver.advance(w0, config.spinup_time)
        inputs.append(w_in)
        targets.append(solver.advance(w_in, config.horizon))
    return torch.cat(inputs).float(), torch.cat(targets).float()


@dataclass(frozen=True)
class ForcedNavierStokesConfig:
    """Forced turbulence with drag in its statistically steady state; every field enters the
    cache key. ``spinup_time`` must exceed the time energy and enstrophy take to settle
    (:func:`spinup_history`; ``experiments/square_forced_turbulence/measure_setting.py``)."""

    resolution: int = 64
    viscosity: float = 1e-3
    drag: float = 0.1
    forcing_amplitude: float = 1.0
    forcing_band_min: float = 2.0
    forcing_band_max: float = 4.0
    dt: float = 5e-3
    spinup_time: float = 10.0
    horizon: float = 1.0
    num_samples: int = 256
    seed: int = 0

    def solver(self) -> VorticitySolver:
        return VorticitySolver(self.resolution, self.viscosity, self.dt, self.drag)

    def draw(self, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``count`` initial vorticities and their forcings, each ``[count, n, n]`` float64."""
        band = (self.forcing_band_min, self.forcing_band_max)
        forcings = random_forcing(count, self.resolution, generator, self.forcing_amplitude, band)
        return gaussian_random_field(count, self.resolution, generator), forcings


def generate_forced_navier_stokes(config: ForcedNavierStokesConfig, batch_size: int = 128) -> dict[str, Tensor]:
    """Triples ``inputs`` ω(t0), ``forcings`` f and ``targets`` ω(t0 + horizon), t0 = spinup_time,
    each ``[num_samples, n, n]`` float32."""
    solver = config.solver()
    generator = torch.Generator().manual_seed(config.seed)
    parts: dict[str, list[Tensor]] = {"inputs": [], "forcings": [], "targets": []}
    for start in range(0, config.num_samples, batch_size):
        w0, f = config.draw(min(batch_size, config.num_samples - start), generator)
        w_in = solver.advance(w0, config.spinup_time, f)
        for key, value in (("inputs", w_in), ("forcings", f), ("targets", solver.advance(w_in, config.horizon, f))):
            parts[key].append(value)
    return {key: torch.cat(values).float() for key, values in parts.items()}


def spinup_history(config: ForcedNavierStokesConfig, every: float, total: float) -> dict[str, Tensor]:
    """Energy ½⟨|u|²⟩ and enstrophy ½⟨ω²⟩ (domain means, per sample) of ``config``'s first
    ``num_samples`` draws every ``every`` time units from 0 to ``total``: ``times [T]``,
    ``energy [T, S]``, ``enstrophy [T, S]``. The spin-up is long enough when both have stopped drifting."""
    solver = config.solver()
    w, f = config.draw(config.num_samples, torch.Generator().manual_seed(config.seed))
    ky, kx = _wavenumbers(config.resolution, torch.float64)
    k2 = ky**2 + kx**2
    weight = torch.full_like(k2, 2.0)  # rfft2 keeps half the plane: count the mirrored modes twice
    weight[:, 0] = 1.0
    if config.resolution % 2 == 0:
        weight[:, -1] = 1.0
    times, energy, enstrophy = [0.0], [], []
    steps = round(total / every)
    for step in range(steps + 1):
        coefficients = torch.fft.rfft2(w, norm="forward").abs().square() * weight  # |ω̂_k|², [S, n, n//2+1]
        enstrophy.append(0.5 * coefficients.sum(dim=(-2, -1)))
        energy.append(0.5 * (coefficients * solver.inv_laplacian).sum(dim=(-2, -1)))  # |û|² = |ω̂|² / |k|²
        if step < steps:
            w = solver.advance(w, every, f)
            times.append((step + 1) * every)
    return {"times": torch.tensor(times), "energy": torch.stack(energy), "enstrophy": torch.stack(enstrophy)}


def load_or_generate_forced_navier_stokes(
    cache_dir: str | os.PathLike, config: ForcedNavierStokesConfig
) -> dict[str, Tensor]:
    """:func:`generate_forced_navier_stokes` through the on-disk cache (``navier_stokes_forced-<hash>.npz``)."""
    params = {"generator": "navier_stokes_forced", "version": FORCED_GENERATOR_VERSION, **asdict(config)}

    def build() -> dict:
        return {key: value.numpy() for key, value in generate_forced_navier_stokes(config).items()}

    arrays = cached(cache_dir, "navier_stokes_forced", params, build, fmt="npz")
    return {key: torch.from_numpy(arrays[key]) for key in ("inputs", "forcings", "targets")}


def load_or_generate_navier_stokes(cache_dir: str | os.PathLike, config: NavierStokesConfig) -> tuple[Tensor, Tensor]:
    """:func:`generate_navier_stokes` through the on-disk cache (``navier_stokes-<hash>.npz``)."""
    params = {"generator": "navier_stokes", "version": GENERATOR_VERSION, **asdict(config)}

    def build() -> dict:
        inputs, targets = generate_navier_stokes(config)
        return {"inputs": inputs.numpy(), "targets": targets.numpy()}

    arrays = cached(cache_dir, "navier_stokes", params, build, fmt="npz")
    return torch.from_numpy(arrays["inputs"]), torch.from_numpy(arrays["targets"])
