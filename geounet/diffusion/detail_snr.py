"""Per-level signal-to-noise ratios of the forward noising: high frequencies drown first.

**Detail spaces.** For a hierarchy V_0 ⊂ V_1 ⊂ ... ⊂ V_I with projections P (``restrict``)
and inclusions ι (``prolong``), the detail of level i is what level i adds to level i-1,

    D_0 x = P_{I→0} x,     D_i x = x_i - ι P x_i,     x_i = P_{I→i} x   (i >= 1),

so W_i = V_i ⊖ V_{i-1} in the level's mass inner product when P is the orthogonal
projection (Haar cells: the cell mean; spectral spaces: truncation). x = Σ_i D_i x and
‖x‖² = Σ_i ‖D_i x‖²: the levels split the energy.

**Noise in a detail space.** Under x_t = a_t x_0 + s_t ε, with ε white in the mass inner
product (covariance c M⁻¹, c the mean node mass; :mod:`geounet.diffusion.noise`), the
coefficient of ε on every M-orthonormal function has variance c, so for an orthogonal
projection onto a space of dimension n, E‖Π ε‖²_M = c n. Hence

    E‖D_i ε‖² = c dim W_i,      dim W_i = dim V_i - dim V_{i-1},

and the per-level SNR is SNR_i(t) = a_t² E‖D_i x_0‖² / (s_t² c dim W_i) = SNR(t) e_i with
e_i = E‖D_i x_0‖² / (c dim W_i) the signal energy per degree of freedom against the noise's.
All levels follow the schedule's SNR(t), shifted in log SNR by log e_i: level i is drowned
(SNR_i < 1) once log SNR(t) < -log e_i. White-noise data have e_i constant: their
per-level SNRs coincide, which is dimension counting. The *decay* e_{i-1} / e_i does not
depend on t; it is what the data's regularity predicts, level by level.

**Prediction from the spectrum.** Let the data have a per-mode spectrum
E|x̂(κ)|² ∝ |κ|^-β in d dimensions (κ the wavenumber; on manifolds κ² = λ, the Laplace
eigenvalue). W_i holds the modes between κ_{i-1} and κ_i, and counting modes gives
dim V_i ∝ κ_i^d (Weyl), so the energy per degree of freedom in W_i is about κ^-β at the
band's centre κ ~ (κ_{i-1} κ_i)^{1/2}:

    e_{i-1} / e_i = (dim V_i / dim V_{i-2})^{β/(2d)}     (= (dim V_i / dim V_{i-1})^{β/d} for a constant ratio).

Written as β = d + α (α = 2H, twice the Hölder / Hurst exponent; the shell-integrated
spectrum E(κ) = κ^{d-1} κ^-β ∝ κ^{-(1+α)}), a dyadic refinement gives the factor
2^{d+α} per level. Level 0 (the mean and lowest modes) is not a band and is left out.

- *Square Haar* (d = 2): each level halves the cell side, dim V_i = 4^i dim V_0, so the
  detail SNR falls by 2^β per finer level. A Haar detail is x minus its cell mean: for a
  smooth field it is ~ h |∇x| on cells of side h, so the energy per degree of freedom is at
  most ~ h^{2+d}: Haar saturates at β_eff = min(β, d + 2) (2^4 = 16 per level for smooth
  fields, the paper's figure), however fast the spectrum decays.
- *HEALPix Haar* (d = 2 on S²): nside doubles per level, pixel counts grow 4x, equal
  areas: the same 2^{min(β, 4)} per level, with β the exponent of the angular power
  spectrum (C_l ∝ l^-β is the per-mode variance of a_lm; l plays κ).
- *Spherical-harmonic bands* (HealpixSHHierarchy): W_i is the band L_{i-1} < l <= L_i
  (L_i = 2 nside_i), dim W_i = (L_i + 1)² - (L_{i-1} + 1)², and E‖D_i x‖² =
  Σ_{l in band} (2l + 1) C_l exactly, so e_i is the band mean of C_l and the decay is
  2^β with no Haar saturation. The finest level is the pixel space: its detail holds the
  N_I - (L_{I-1} + 1)² remaining dimensions, beyond the band limit the pixels resolve.
- *Mesh clusters* (area-weighted Haar of face clusters, d = 2): dim V_i is the cluster
  count, about 4x per level but not exactly, and cells are unequal; the prediction uses
  the measured counts and β_eff = min(β, 4) like the square.
- *Mesh eigenbases* (MeshSpectralHierarchy, d = 2): dim V_i = k_i eigenfunctions, and
  Weyl's law λ_k ≈ 4π k / A (closed surfaces; boundaries add a perimeter term) makes
  κ_i² ∝ k_i, so e_{i-1}/e_i = (k_i / k_{i-2})^{β/4}, no saturation; β is measured from
  the eigen-coefficients E|c_k|² ∝ λ_k^{-β/2}. With ``vertex_level`` the finest detail is
  the P1 vertex space beyond k_{I-1}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.schedules import Schedule
from geounet.hierarchy.base import Hierarchy


def details(x: Tensor, hierarchy: Hierarchy) -> list[Tensor]:
    """D_i x for every level i (coarsest first), ``x [B, N_I, C]``; level i's ``[B, N_i, C]``."""
    levels = [x]
    for level in range(hierarchy.finest_level, 0, -1):
        levels.insert(0, hierarchy.restrict(levels[0], level))
    return [levels[0]] + [
        fine - hierarchy.prolong(hierarchy.restrict(fine, level), level - 1)
        for level, fine in enumerate(levels[1:], start=1)
    ]


def detail_energies(x: Tensor, hierarchy: Hierarchy) -> Tensor:
    """Mean over samples and channels of ‖D_i x‖² in each level's mass inner product, ``[levels]``."""
    return torch.stack([
        hierarchy.inner(d, d, level).mean() / x.shape[-1] for level, d in enumerate(details(x, hierarchy))
    ])


def space_dimensions(hierarchy: Hierarchy) -> list[int]:
    """dim V_i for every level (``Hierarchy.space_dimension``): node counts, except where a level
    samples fewer functions than it has nodes (spherical-harmonic levels below the finest hold
    (L_i + 1)² band-limited functions); summed over the geometries of a union."""
    return [hierarchy.space_dimension(level) for level in range(hierarchy.num_levels)]


def detail_dimensions(hierarchy: Hierarchy) -> list[int]:
    """dim W_i = dim V_i - dim V_{i-1} (dim W_0 = dim V_0)."""
    dims = space_dimensions(hierarchy)
    return [dims[0]] + [fine - coarse for coarse, fine in zip(dims, dims[1:], strict=False)]


def noise_energies(hierarchy: Hierarchy) -> Tensor:
    """E‖D_i ε‖² = Σ_geometries c dim W_i for unit white noise, ``[levels]`` float64 (module docstring)."""
    level = hierarchy.finest_level
    total = torch.zeros(hierarchy.num_levels, dtype=torch.float64)
    for part in hierarchy.parts():
        c = part.mass(level).to(torch.float64).mean()
        total += c * torch.tensor(detail_dimensions(part), dtype=torch.float64)
    return total


def sampled_noise_energies(hierarchy: Hierarchy, draws: int, generator: torch.Generator | None = None) -> Tensor:
    """Monte Carlo estimate of E‖D_i ε‖² from ``draws`` white-noise fields, ``[levels]``."""
    eps = white_noise(noise_std(hierarchy), draws, 1, generator, hierarchy.dtype)
    return detail_energies(eps.to(hierarchy.device), hierarchy).cpu()


def level_snr(signal: Tensor, noise: Tensor, schedule: Schedule, t: Tensor) -> Tensor:
    """SNR_i(t) = a_t² E‖D_i x_0‖² / (s_t² E‖D_i ε‖²) for times ``t [T]``, ``[T, levels]``."""
    return schedule.snr(t)[:, None] * (signal / noise)[None, :]


def predicted_decays(dimensions: list[int], beta: float, d: int, haar: bool) -> list[float | None]:
    """e_{i-1} / e_i predicted for i = 1..I from dim V_i and the spectral exponent β
    (module docstring): (dim V_i / dim V_{i-2})^{β_eff / (2d)}, β_eff = min(β, d + 2) on Haar
    spaces; ``None`` for i = 1, whose coarser neighbour (level 0) is not a band."""
    beta_eff = min(beta, d + 2) if haar else beta
    return [None] + [
        math.exp(beta_eff / (2 * d) * math.log(dimensions[i] / dimensions[i - 2])) for i in range(2, len(dimensions))
    ]


def measured_decays(signal: Tensor, noise: Tensor) -> list[float]:
    """e_{i-1} / e_i for i = 1..I, with e_i = E‖D_i x_0‖² / E‖D_i ε‖²."""
    per_dof = (signal / noise).tolist()
    return [coarse / fine for coarse, fine in zip(per_dof, per_dof[1:], strict=False)]


def drowning_times(per_dof: Sequence[float], schedule: Schedule, threshold: float = 1.0) -> list[float]:
    """For each level, the time t_i at which SNR_i(t) = SNR(t) e_i falls to ``threshold``
    (bisection on the decreasing log SNR; t_min or t_max when it never crosses).

    Staged diffusion (paper §5.2) derives each stage's noise range from these times:
    :func:`geounet.diffusion.staged.stage_time_ranges`.
    """
    times = []
    for e in per_dof:
        target = math.log(threshold / e)  # log SNR(t) at the crossing
        low, high = schedule.t_min, schedule.t_max
        for _ in range(100):
            middle = (low + high) / 2
            if float(schedule.log_snr(torch.tensor(middle, dtype=torch.float64))) > target:
                low = middle
            else:
                high = middle
        times.append((low + high) / 2)
    return times
