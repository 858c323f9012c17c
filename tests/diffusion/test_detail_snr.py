"""Per-level SNR: white noise is dimension counting, k^-β fields decay by 2^β per level up
to Haar's saturation 2^{d+2}, noise energies are c dim W_i, and the spectrum predicts the
detail energies."""

from __future__ import annotations

import math

import pytest
import torch

from geounet.analysis.spectra import (
    fit_exponent,
    healpix_harmonic_basis,
    mode_power,
    mode_transfer,
    square_fourier_basis,
)
from geounet.diffusion import VPCosine, noise_std, white_noise
from geounet.diffusion.detail_snr import (
    detail_dimensions,
    detail_energies,
    details,
    drowning_times,
    level_snr,
    measured_decays,
    noise_energies,
    predicted_decays,
    sampled_noise_energies,
    space_dimensions,
)
from geounet.hierarchy import HealpixSHHierarchy, PartitionHaarHierarchy, SquareHaarHierarchy


def power_law_field(n: int, beta: float, samples: int, seed: int) -> torch.Tensor:
    """Gaussian fields on the periodic n x n grid with per-mode variance |k|^-β (no mean), ``[S, n², 1]``."""
    k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    amplitude = torch.where(radius > 0, radius.clamp_min(1) ** (-beta / 2), torch.zeros_like(radius))
    noise = torch.randn(samples, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.fft.ifft2(torch.fft.fft2(noise) * amplitude).real.reshape(samples, n * n, 1)


def unequal_partition() -> PartitionHaarHierarchy:
    mass = torch.rand(48, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.2
    return PartitionHaarHierarchy([None, torch.arange(12) // 4, torch.arange(48) // 4], mass)


@pytest.mark.parametrize("hierarchy", [SquareHaarHierarchy(16, 5), HealpixSHHierarchy(4, 3), unequal_partition()],
                         ids=["square", "healpix_sh", "unequal_cells"])
def test_noise_energy_per_detail_space_is_c_dim_w(hierarchy):
    sampled = sampled_noise_energies(hierarchy, 4000, torch.Generator().manual_seed(1))
    assert torch.allclose(sampled, noise_energies(hierarchy), rtol=0.1)
    assert sum(detail_dimensions(hierarchy)) == space_dimensions(hierarchy)[-1]


def test_spherical_harmonic_dimensions_are_band_sizes():
    hierarchy = HealpixSHHierarchy(8, 4)  # L = 2, 4, 8, 16 on nside 1, 2, 4, 8
    assert space_dimensions(hierarchy) == [9, 25, 81, 768]
    assert detail_dimensions(hierarchy) == [9, 16, 56, 687]


def test_white_noise_data_have_the_same_snr_on_every_level():
    # Dimension counting: data that are themselves white noise have e_i = 1 on every level.
    hierarchy = SquareHaarHierarchy(32, 5)
    x = white_noise(noise_std(hierarchy), 400, 1, torch.Generator().manual_seed(2), torch.float64)
    decays = measured_decays(detail_energies(x, hierarchy), noise_energies(hierarchy))
    assert decays[1:] == pytest.approx([1.0] * 3, rel=0.1)


@pytest.mark.parametrize(("beta", "expected"), [(3.0, 3.0), (6.0, 4.0)])
def test_power_law_fields_decay_by_two_to_the_beta_up_to_haar_saturation(beta, expected):
    # β = d + α with α = 1 gives 2^3 per level; β = 6 > d + 2 saturates at Haar's 2^4.
    hierarchy = SquareHaarHierarchy(64, 6, periodic=True)
    x = power_law_field(64, beta, 64, seed=3)
    measured = [math.log2(v) for v in measured_decays(detail_energies(x, hierarchy), noise_energies(hierarchy))]
    # levels 3..5 (levels 1-2 still feel the mean-free cut-off of the coarsest modes)
    assert measured[2:5] == pytest.approx([expected] * 3, abs=0.3)
    predicted = predicted_decays(space_dimensions(hierarchy), beta, 2, haar=True)
    assert predicted[0] is None and [math.log2(v) for v in predicted[1:]] == pytest.approx([expected] * 4)
    assert [math.log2(v) for v in predicted_decays(space_dimensions(hierarchy), beta, 2, haar=False)[1:]] == \
        pytest.approx([beta] * 4)


def test_spectrum_fit_recovers_the_exponent():
    x = power_law_field(32, 3.0, 64, seed=4)[..., 0]
    power = mode_power(x, square_fourier_basis(32), torch.full((1024,), 1 / 1024, dtype=torch.float64))
    assert fit_exponent(power, 2, 8, 700) == pytest.approx(3.0, abs=0.25)
    with pytest.raises(ValueError, match="ranks to fit"):
        fit_exponent(power, 2, 0, 10)


def test_transfer_predicts_the_detail_energies_of_a_stationary_field():
    n = 16
    hierarchy = SquareHaarHierarchy(n, 4, periodic=True)
    basis = square_fourier_basis(n)
    transfer = mode_transfer(basis, hierarchy)  # [levels, K]
    assert torch.allclose(transfer.sum(0), torch.ones(n * n, dtype=torch.float64), atol=1e-12)  # W_i split each mode
    x = power_law_field(n, 2.5, 4000, seed=5)
    power = mode_power(x[..., 0], basis, hierarchy.mass(3))
    predicted = (power[None, :] * transfer).sum(1) / n**2
    assert torch.allclose(predicted, detail_energies(x, hierarchy), rtol=0.05)


def test_harmonic_basis_spans_the_spectral_levels():
    hierarchy = HealpixSHHierarchy(4, 3)  # L = 2, 4, 8
    transfer = mode_transfer(healpix_harmonic_basis(4, 8, hierarchy.mass(2)), hierarchy)
    # Each degree-l mode lies in the detail space of the band holding l, up to the aliasing of
    # the coarse pixel inner product (nside 1 does not separate degree 3 from degree <= 2 exactly).
    assert torch.allclose(transfer[0, 9:], torch.zeros(72, dtype=torch.float64), atol=1e-2)
    assert torch.allclose(transfer[2, :25], torch.zeros(25, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(transfer[2, 25:], torch.ones(56, dtype=torch.float64), atol=1e-8)


def test_details_reassemble_the_field_and_split_its_energy():
    hierarchy = unequal_partition()
    x = torch.randn(3, 48, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    parts = details(x, hierarchy)
    total = parts[0]
    for level, detail in enumerate(parts[1:], start=1):
        total = hierarchy.prolong(total, level - 1) + detail
    assert torch.allclose(total, x, atol=1e-12)
    energies = detail_energies(x, hierarchy)
    assert energies.sum() == pytest.approx(float(hierarchy.inner(x, x, 2).mean() / 2), rel=1e-10)


def test_level_snr_is_the_schedule_snr_shifted_per_level():
    schedule = VPCosine()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    snr = level_snr(torch.tensor([8.0, 2.0]), torch.tensor([1.0, 4.0]), schedule, t)
    assert torch.allclose(snr, schedule.snr(t)[:, None] * torch.tensor([[8.0, 0.5]]))


def test_drowning_times_solve_snr_equals_threshold():
    schedule = VPCosine()
    times = drowning_times([1e4, 1.0, 1e-2], schedule, threshold=0.5)
    assert times[0] > times[1] > times[2]  # finer (lower e_i) levels drown earlier
    for t, e in zip(times, [1e4, 1.0, 1e-2], strict=True):
        assert float(schedule.snr(torch.tensor(t, dtype=torch.float64))) * e == pytest.approx(0.5, rel=1e-6)
