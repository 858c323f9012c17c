"""Sample metrics against known answers: sliced Wasserstein, MMD, spectrum errors, features."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import wasserstein_distance

from geounet.analysis.sample_metrics import (
    angular_spectra,
    band_energies,
    band_limit,
    compare_samples,
    mmd2,
    random_directions,
    random_features,
    sliced_wasserstein,
    spectrum_error,
    wasserstein_1d,
)
from geounet.analysis.spectra import healpix_harmonic_basis
from geounet.diffusion.noise import noise_std, white_noise
from geounet.hierarchy import HealpixHaarHierarchy, TriangleHierarchy


def _gaussian(count: int, dim: int, seed: int, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(count, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + mean


def _white(hierarchy, count: int, seed: int) -> torch.Tensor:
    return white_noise(noise_std(hierarchy), count, 1, torch.Generator().manual_seed(seed), torch.float64)


def _red(hierarchy, count: int, seed: int) -> torch.Tensor:
    """Σ_i 4^-i (white noise of level i prolonged to the finest): energy falls with the level."""
    generator = torch.Generator().manual_seed(seed)
    total = 0
    for level in range(hierarchy.num_levels):
        x = white_noise(noise_std(hierarchy, level), count, 1, generator, torch.float64)
        for finer in range(level, hierarchy.finest_level):
            x = hierarchy.prolong(x, finer)
        total = total + x * 4.0**-level
    return total


def test_sliced_wasserstein_of_a_set_to_itself_is_zero():
    x = _gaussian(50, 4, 0)
    directions = random_directions(4, 64, torch.Generator().manual_seed(10))
    # 0 in exact arithmetic (the same set in another order), but not bit-exactly in float64: the
    # matrix product may round θ·x_i differently for a row and for its reversed copy (the order of
    # its d = 4 products depends on the row's position and the CPU's BLAS kernel; MKL's AVX2 path
    # gives ~3e-17). Each computed θ·x_i is within γ_d Σ_j |θ_j x_ij| <= γ_d ‖x_i‖ of the exact one
    # (‖θ‖ = 1, γ_d ≈ d u, u = eps / 2), sorting moves no quantile by more than the largest such
    # error, so SW <= 2 γ_d max_i ‖x_i‖ ≈ d eps max_i ‖x_i‖; the bound below is twice that (~7e-15).
    bound = 2 * x.shape[1] * torch.finfo(torch.float64).eps * float(x.norm(dim=1).max())
    assert sliced_wasserstein(x, x.flip(0), directions) <= bound
    assert sliced_wasserstein(x, x.flip(0)[1:], directions) > 1e3 * bound  # one point fewer: not the same set


def test_sliced_wasserstein_to_a_shifted_copy_is_the_shift_along_the_projections():
    x = _gaussian(40, 3, 1)
    shift = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    directions = random_directions(3, 32, torch.Generator().manual_seed(2))
    along = directions @ shift  # [K]: every projection moves by θ·δ
    for p in (1.0, 2.0):
        expected = float((along.abs() ** p).mean() ** (1 / p))
        assert sliced_wasserstein(x, x + shift, directions, p) == pytest.approx(expected, rel=1e-12)
    # uniform directions: E (θ·δ)² = |δ|² / d
    many = random_directions(3, 20_000, torch.Generator().manual_seed(3))
    assert sliced_wasserstein(x, x + shift, many) == pytest.approx(float(shift.norm()) / math.sqrt(3), rel=0.02)


def test_one_dimensional_wasserstein_of_unequal_sets():
    a = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    b = torch.tensor([[0.0], [0.5], [1.0]], dtype=torch.float64)
    assert float(wasserstein_1d(a, b, p=1)) == pytest.approx(1 / 6)  # |0 - 0.5| on u in (1/3, 2/3)
    x, y = _gaussian(37, 2, 4), _gaussian(23, 2, 5, mean=0.3)
    ours = wasserstein_1d(x, y, p=1)
    for k in range(2):
        assert float(ours[k]) == pytest.approx(wasserstein_distance(x[:, k], y[:, k]), rel=1e-10)


def test_mmd_separates_two_gaussians_but_not_two_draws_of_one():
    same = mmd2(_gaussian(200, 5, 6), _gaussian(200, 5, 7))
    different = mmd2(_gaussian(200, 5, 6), _gaussian(200, 5, 8, mean=0.5))
    assert abs(same) < 0.01
    assert different > 0.05 and different > 10 * abs(same)


def test_mmd_with_a_fixed_bandwidth_matches_the_formula():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [2.0]], dtype=torch.float64)

    def k(d: float) -> float:
        return math.exp(-(d**2) / 2)

    expected = k(1) + k(2) - 2 * (k(0) + k(2) + k(1) + k(1)) / 4
    assert mmd2(x, y, bandwidth=1.0) == pytest.approx(expected)


def test_spectrum_error_is_zero_against_itself_and_measures_a_scale_in_log():
    hierarchy = TriangleHierarchy(4, coarsest_depth=1)
    energies = band_energies(_white(hierarchy, 16, 0), hierarchy)
    assert spectrum_error(energies, energies) == 0.0  # exact: one tensor, the same ops on both sides
    assert spectrum_error(4 * energies, energies) == pytest.approx(math.log(4))  # every band 4x: fields 2x


def test_white_and_red_noise_have_different_spectra():
    triangle = TriangleHierarchy(4, coarsest_depth=1)
    white, red = _white(triangle, 32, 1), _red(triangle, 32, 2)
    assert spectrum_error(band_energies(white, triangle), band_energies(red, triangle)) > 1.0
    assert spectrum_error(band_energies(white, triangle), band_energies(_white(triangle, 32, 3), triangle)) < 0.2
    sphere = HealpixHaarHierarchy(8, 3)
    white, red = _white(sphere, 16, 4), _red(sphere, 16, 5)
    assert spectrum_error(angular_spectra(white, sphere)[:, 1:], angular_spectra(red, sphere)[:, 1:]) > 1.0


def test_band_energies_split_the_energy_and_white_noise_spectra_are_flat():
    hierarchy = HealpixHaarHierarchy(8, 3)
    x = _white(hierarchy, 8, 6)
    total = hierarchy.to(dtype=torch.float64).inner(x, x, hierarchy.finest_level)  # [S]
    torch.testing.assert_close(band_energies(x, hierarchy).sum(1), total)
    # unit white noise on N equal pixels: C_l = 4π / N at every degree
    spectra = angular_spectra(_white(hierarchy, 64, 7), hierarchy).mean(0)
    assert spectra[1:].mean() == pytest.approx(4 * math.pi / 768, rel=0.05)


def test_random_features_have_the_fields_mean_square():
    hierarchy = TriangleHierarchy(3, coarsest_depth=1)
    ones = torch.ones(1, hierarchy.num_nodes(2), 1, dtype=torch.float64)
    features = random_features(torch.cat([ones, 3 * ones]), hierarchy, dim=4000, seed=0)  # [2, 4000]
    assert (features**2).mean(1).tolist() == pytest.approx([1.0, 9.0], rel=0.08)
    torch.testing.assert_close(features[1], 3 * features[0])  # linear, with the same g_k for every field
    torch.testing.assert_close(random_features(ones, hierarchy, 8, seed=1), random_features(ones, hierarchy, 8, 1))
    # fields drawn from a generator with the same integer seed are not the features' own noise
    noise = white_noise(noise_std(hierarchy), 8, 1, torch.Generator().manual_seed(0), torch.float64)
    assert (random_features(noise, hierarchy, 8, seed=0) ** 2).mean() < 4  # ~1; the same noise as features: ~9


def test_compare_of_data_with_itself_and_bad_inputs():
    hierarchy = HealpixHaarHierarchy(4, 2)
    x = _red(hierarchy, 12, 8).float()
    result = compare_samples(x, x, hierarchy, projections=16, features=8)
    # exact zeros: both sides are the same tensor through the same ops in the same order and process
    assert result["band_error"] == 0.0 and result["cl_error"] == 0.0
    assert result["sw_bands"] == 0.0 and result["sw_features"] == 0.0
    assert len(result["band_energy_data"]) == 2 and len(result["cl_data"]) == 9
    with pytest.raises(ValueError, match=r"must be \[samples, 192 nodes"):
        compare_samples(x[:, :10], x, hierarchy)
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN / Inf"):
        compare_samples(bad, x, hierarchy)


def test_angular_spectrum_error_stops_at_the_datas_band_limit_and_reports_the_tail():
    assert band_limit(torch.tensor([1.0, 0.5, 1e-3, 1e-6, 1e-7]), 1e-4) == 2
    hierarchy = HealpixHaarHierarchy(8, 3)
    basis = healpix_harmonic_basis(8, 4, hierarchy.mass(2))  # [25, 768]: degrees l <= 4
    generator = torch.Generator().manual_seed(9)
    limited = (torch.randn(32, 25, generator=generator, dtype=torch.float64) @ basis)[..., None]
    other = (torch.randn(32, 25, generator=generator, dtype=torch.float64) @ basis)[..., None]
    same = compare_samples(other, limited, hierarchy, projections=8, features=8)
    assert same["cl_band_limit"] == 4 and same["cl_tail"] < 1e-9 and same["cl_error"] < 0.3
    white = compare_samples(_white(hierarchy, 64, 10), limited, hierarchy, projections=8, features=8)
    # white noise has a flat C_l: its share beyond l = 4 of the degrees up to 16 is 1 - 5² / 17²
    assert white["cl_tail"] == pytest.approx(1 - 25 / 289, rel=0.02)
