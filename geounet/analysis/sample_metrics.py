"""Sample-quality metrics for generated fields: spectrum errors and distributional distances.

Samples x ``[S, N, C]`` of a generative model are compared with held-out data y on the same
hierarchy (the finest level's nodes, the mass inner product <·,·>_M of the level).

**Band energies.** Sample s has energy in band (detail space) W_i of
:mod:`geounet.diffusion.detail_snr`

    E_i(x_s) = ‖D_i x_s‖²_M / C,        Σ_i E_i(x_s) = ‖x_s‖²_M / C,

so the bands split each field's energy by scale (Haar detail spaces or spectral bands). On
HEALPix the angular power spectrum C_l = Σ_m |a_lm|² / (2l + 1) of each channel
(:func:`geounet.functional.metrics.angular_power_spectrum`) resolves every degree l.

**Spectrum error.** With Ē_b the mean over samples of band (or degree) b's energy,

    err(x, y) = mean_b |log(Ē_b(x) / Ē_b(y))|,

the mean factor (in log) by which the samples' spectrum misses the data's: 0 when the
spectra agree, log 2 ≈ 0.69 when every band is off by a factor 2. It checks the
second-order statistics only, band by band. For C_l it is taken over the degrees the data
populate, 1 <= l <= L with L the last degree where C̄_l(y) >= ``cl_floor`` · max_l C̄_l(y)
(l = 0, the mean of a zero-mean field, is left out): fields from a truncated spectral
solver are band-limited, and beyond L the log ratio would only compare noise floors. What
the samples put beyond L is reported as the energy share

    tail(x) = Σ_{l>L} (2l + 1) C̄_l(x) / Σ_l (2l + 1) C̄_l(x).

**Distributional distances** between the sets {f(x_s)} and {f(y_s)} of per-sample features,
with two embeddings f: the log band energies (log E_i(x_s))_i, which compare how energy
at each scale is distributed over samples, and a fixed random projection

    f_k(x) = <x, g_k>_M / sqrt(c |Ω| C),     k = 1..K,

where the g_k are white-noise fields drawn once from a fixed seed (covariance c M⁻¹,
:mod:`geounet.diffusion.noise`; c the mean node mass, |Ω| the domain's measure), so that
E_g f_k(x)² = ‖x‖²_M / (|Ω| C) is the field's mean square, on any mesh. The metrics'
random stream is derived from their seed by hashing (:func:`metric_generator`): a DDIM
sample stays correlated with the white noise it started from, so features drawn from the
sampler's own stream (the same integer seed) would see that noise instead of the field.

- *Sliced Wasserstein* (Rabin et al. 2011; Bonneel et al. 2015):
  SW_p(μ, ν) = (E_θ W_p^p(θ_#μ, θ_#ν))^{1/p}, θ uniform on the unit sphere, estimated with
  a fixed set of directions. In one dimension W_p^p = ∫_0^1 |F⁻¹(u) - G⁻¹(u)|^p du with the
  empirical quantile functions, computed exactly (they are step functions). A shift of
  every point by δ moves every projection by θ·δ, so SW_p^p = mean_θ |θ·δ|^p.
- *MMD* (Gretton et al. 2012) with the RBF kernel k(a, b) = exp(-‖a - b‖² / (2 h²)) and
  the median heuristic h = median of the pooled pairwise distances; the unbiased estimate

      MMD² = Σ_{i≠j} k(a_i, a_j) / (m(m-1)) + Σ_{i≠j} k(b_i, b_j) / (n(n-1)) - 2 Σ_ij k(a_i, b_j) / (mn)

  has mean 0 when both sets come from one distribution (it can be slightly negative).

Every distance has a floor set by the finite sample counts: compare with the same metrics
between two draws of the data (:func:`compare_samples` on a training subset against the test set).
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

from geounet.diffusion.detail_snr import details
from geounet.diffusion.noise import noise_std, white_noise
from geounet.errors import GeounetError
from geounet.functional.metrics import angular_power_spectrum
from geounet.hierarchy.base import Hierarchy


def _check_fields(x: Tensor, hierarchy: Hierarchy, name: str) -> None:
    expected = hierarchy.num_nodes(hierarchy.finest_level)
    if x.dim() != 3 or x.shape[1] != expected:
        raise GeounetError(f"{name} must be [samples, {expected} nodes of the finest level, channels], "
                         f"got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise GeounetError(f"{name} holds {int((~torch.isfinite(x)).sum())} NaN / Inf values")


def band_energies(x: Tensor, hierarchy: Hierarchy, chunk: int = 64) -> Tensor:
    """E_i(x_s) = ‖D_i x_s‖²_M / C per sample and band, ``x [S, N, C]`` -> ``[S, levels]`` float64."""
    _check_fields(x, hierarchy, "fields")
    h = hierarchy.to(dtype=torch.float64)
    rows = []
    for part in x.to(torch.float64).split(chunk):
        rows.append(torch.stack([h.inner(d, d, level) for level, d in enumerate(details(part, h))], dim=1))
    return torch.cat(rows) / x.shape[-1]


def is_healpix(hierarchy: Hierarchy) -> bool:
    """Whether the finest level's nodes are the pixels of a HEALPix NEST grid."""
    return hierarchy.healpix_nside(hierarchy.finest_level) is not None


def angular_spectra(x: Tensor, hierarchy: Hierarchy, lmax: int | None = None) -> Tensor:
    """C_l per sample, mean over channels, of HEALPix NEST fields ``[S, N, C]`` -> ``[S, lmax + 1]``
    float64 (lmax defaults to 2 nside, the degrees the finest pixels resolve well)."""
    if not is_healpix(hierarchy):
        raise GeounetError(f"angular power spectra need a HEALPix hierarchy, got {hierarchy.kind}")
    _check_fields(x, hierarchy, "fields")
    lmax = 2 * hierarchy.healpix_nside(hierarchy.finest_level) if lmax is None else lmax
    maps = x.to(torch.float64).transpose(1, 2)  # [S, C, N]
    return angular_power_spectrum(maps, ordering="nest", lmax=lmax).mean(1)


def spectrum_error(energy: Tensor, reference: Tensor) -> float:
    """mean_b |log(Ē_b / Ē_b^ref)| of per-sample energies ``[S, B]`` against ``[S', B]`` (module docstring)."""
    mean, ref = energy.mean(0), reference.mean(0)
    if mean.shape != ref.shape:
        raise GeounetError(f"energies have {mean.shape[0]} bands but the reference has {ref.shape[0]}")
    if not (mean > 0).all() or not (ref > 0).all():
        raise GeounetError("band energies must be positive to compare in log; drop bands the data leave empty")
    return float((mean.log() - ref.log()).abs().mean())


def metric_generator(seed: int) -> torch.Generator:
    """The metrics' generator for ``seed``: seeded with a hash of it, never with ``seed`` itself
    (module docstring)."""
    digest = hashlib.sha256(f"geounet.analysis.sample_metrics {seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def random_features(x: Tensor, hierarchy: Hierarchy, dim: int = 64, seed: int = 0) -> Tensor:
    """f_k(x_s) = <x_s, g_k>_M / sqrt(c |Ω| C) with fixed white-noise fields g_k, ``[S, N, C]`` -> ``[S, dim]``."""
    _check_fields(x, hierarchy, "fields")
    level = hierarchy.finest_level
    mass = hierarchy.mass(level).to(torch.float64)  # [N]
    channels = x.shape[-1]
    g = white_noise(noise_std(hierarchy), dim, channels, metric_generator(seed), torch.float64)
    scale = math.sqrt(float(mass.mean() * mass.sum()) * channels)
    return torch.einsum("snc,n,knc->sk", x.to(torch.float64), mass, g.cpu()) / scale


def random_directions(dim: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` directions uniform on the unit sphere of R^dim, ``[count, dim]`` float64."""
    theta = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return theta / theta.norm(dim=1, keepdim=True)


def wasserstein_1d(a: Tensor, b: Tensor, p: float = 2.0) -> Tensor:
    """W_p^p between the empirical measures of the columns of ``a [m, K]`` and ``b [n, K]``, ``[K]``:
    ∫_0^1 |F⁻¹(u) - G⁻¹(u)|^p du, exact on the merged breakpoints {i/m} ∪ {j/n} of the quantiles."""
    m, n = len(a), len(b)
    breaks = torch.unique(torch.cat([torch.arange(m + 1, dtype=torch.float64) / m,
                                     torch.arange(n + 1, dtype=torch.float64) / n]))  # sorted, from 0 to 1
    middle, width = (breaks[1:] + breaks[:-1]) / 2, breaks[1:] - breaks[:-1]
    qa = a.sort(dim=0).values[(middle * m).long()]  # [L, K]
    qb = b.sort(dim=0).values[(middle * n).long()]
    return (width[:, None] * (qa - qb).abs() ** p).sum(0)


def sliced_wasserstein(x: Tensor, y: Tensor, directions: Tensor, p: float = 2.0) -> float:
    """SW_p = (mean_θ W_p^p(θ·x, θ·y))^{1/p} of point sets ``x [m, d]``, ``y [n, d]`` along ``directions [K, d]``."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1] or directions.shape[1] != x.shape[1]:
        raise GeounetError(f"need x [m, d], y [n, d] and directions [K, d] with one d, got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}, {tuple(directions.shape)}")
    projected = [z.to(torch.float64) @ directions.T for z in (x, y)]  # [m, K], [n, K]
    return float(wasserstein_1d(*projected, p).mean() ** (1 / p))


def median_bandwidth(x: Tensor, y: Tensor) -> float:
    """The median of the pairwise distances of the pooled points (off the diagonal)."""
    pooled = torch.cat([x, y]).to(torch.float64)
    distances = torch.cdist(pooled, pooled)
    off = distances[~torch.eye(len(pooled), dtype=torch.bool)]
    bandwidth = float(off.median())
    if bandwidth <= 0:
        raise GeounetError("the median pairwise distance is 0 (most points coincide): give the bandwidth explicitly")
    return bandwidth


def mmd2(x: Tensor, y: Tensor, bandwidth: float | None = None) -> float:
    """Unbiased MMD² of ``x [m, d]`` and ``y [n, d]`` with the RBF kernel of ``bandwidth``
    (default: :func:`median_bandwidth`); m, n >= 2."""
    if len(x) < 2 or len(y) < 2:
        raise GeounetError(f"MMD needs at least 2 points per set, got {len(x)} and {len(y)}")
    h = median_bandwidth(x, y) if bandwidth is None else bandwidth
    x, y = x.to(torch.float64), y.to(torch.float64)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h**2))

    def within(a: Tensor) -> Tensor:
        k = kernel(a, a)
        return (k.sum() - k.diagonal().sum()) / (len(a) * (len(a) - 1))

    return float(within(x) + within(y) - 2 * kernel(x, y).mean())


def band_limit(spectrum: Tensor, floor: float) -> int:
    """L: the last degree whose mean ``spectrum [L_max + 1]`` reaches ``floor`` times its maximum."""
    return int((spectrum >= floor * spectrum.max()).nonzero().max())


def compare_samples(samples: Tensor, data: Tensor, hierarchy: Hierarchy, seed: int = 0, projections: int = 256,
            features: int = 64, cl_floor: float = 1e-4) -> dict[str, float | list[float]]:
    """Every metric of the module docstring for ``samples [S, N, C]`` against ``data [S', N, C]``.

    ``seed`` fixes the random features and the slicing directions, so every call with the
    same seed measures along the same axes. Returns ``band_error``, ``sw_bands`` /
    ``mmd2_bands`` on log band energies, ``sw_features`` / ``mmd2_features`` on the random
    features, the mean band energies of both sets, and on HEALPix ``cl_error`` over the
    data's degrees 1..L (``cl_floor``), ``cl_tail`` beyond L, L itself and both mean spectra.
    """
    _check_fields(samples, hierarchy, "samples")
    _check_fields(data, hierarchy, "data")
    if samples.shape[-1] != data.shape[-1]:
        raise GeounetError(f"samples have {samples.shape[-1]} channels but the data have {data.shape[-1]}")
    generator = metric_generator(seed + 1)  # the directions: another stream than the features'
    bands = band_energies(samples, hierarchy), band_energies(data, hierarchy)
    embedded = [random_features(z, hierarchy, features, seed) for z in (samples, data)]
    log_bands = [e.clamp_min(torch.finfo(torch.float64).tiny).log() for e in bands]
    result: dict[str, float | list[float]] = {
        "band_error": spectrum_error(*bands),
        "sw_bands": sliced_wasserstein(*log_bands, random_directions(bands[0].shape[1], projections, generator)),
        "mmd2_bands": mmd2(*log_bands),
        "sw_features": sliced_wasserstein(*embedded, random_directions(features, projections, generator)),
        "mmd2_features": mmd2(*embedded),
        "band_energy_samples": bands[0].mean(0).tolist(),
        "band_energy_data": bands[1].mean(0).tolist(),
    }
    if is_healpix(hierarchy):
        spectra = angular_spectra(samples, hierarchy), angular_spectra(data, hierarchy)
        limit = band_limit(spectra[1].mean(0), cl_floor)
        if limit < 1:
            raise GeounetError(f"the data's C_l are below {cl_floor} of their maximum beyond l = 0: nothing to compare")
        result["cl_error"] = spectrum_error(spectra[0][:, 1:limit + 1], spectra[1][:, 1:limit + 1])
        energy = spectra[0].mean(0) * (2 * torch.arange(len(spectra[0][0]), dtype=torch.float64) + 1)
        result["cl_tail"] = float(energy[limit + 1:].sum() / energy.sum())
        result["cl_band_limit"] = limit
        result["cl_samples"] = spectra[0].mean(0).tolist()
        result["cl_data"] = spectra[1].mean(0).tolist()
    return result
