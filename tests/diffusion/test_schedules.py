"""Noise schedules against their analytic marginals, endpoints and monotone SNR."""

from __future__ import annotations

import math

import pytest
import torch

from geounet.diffusion import EDM, VPCosine, make_schedule, white_noise

SCHEDULES = [VPCosine(), EDM()]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_marginal_moments_match_a_t_and_s_t(schedule):
    # Monte Carlo over 20 000 draws of ε for a fixed x_0: mean a_t x_0, variance s_t².
    generator = torch.Generator().manual_seed(0)
    x0 = torch.tensor([[[1.5], [-0.5], [0.0]]], dtype=torch.float64).expand(20_000, 3, 1)
    for t in schedule.grid(4)[:-1]:
        times = t.expand(len(x0))
        x_t = schedule.marginal(x0, times, white_noise(torch.ones(3), len(x0), 1, generator, torch.float64))
        a, s = schedule.a(t).item(), schedule.s(t).item()
        standard_error = s / math.sqrt(len(x0))
        assert torch.allclose(x_t.mean(0), a * x0[0], atol=5 * standard_error + 1e-12)
        assert torch.allclose(x_t.var(0), torch.full_like(x0[0], s**2), rtol=0.05)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_snr_decreases_from_data_to_noise(schedule):
    t = torch.linspace(schedule.t_min, schedule.t_max, 500, dtype=torch.float64)
    log_snr = schedule.log_snr(t)
    assert bool((log_snr[1:] < log_snr[:-1]).all())
    assert torch.allclose(schedule.snr(t), torch.exp(log_snr), rtol=1e-10)


def test_vp_cosine_endpoints_and_variance_preservation():
    schedule = VPCosine(a_min=1e-3)
    t = torch.linspace(0, schedule.t_max, 101, dtype=torch.float64)
    assert torch.allclose(schedule.a(t) ** 2 + schedule.s(t) ** 2, torch.ones_like(t), atol=1e-12)
    assert schedule.a(torch.tensor(0.0, dtype=torch.float64)).item() == pytest.approx(1.0, abs=1e-15)
    assert schedule.a(torch.tensor(schedule.t_max, dtype=torch.float64)).item() == pytest.approx(1e-3, rel=1e-9)
    # Nichol & Dhariwal: a_t² = f(t) / f(0) with f = cos²(π/2 (t + o) / (1 + o)).
    f = torch.cos(math.pi / 2 * (t + 0.008) / 1.008) ** 2
    assert torch.allclose(schedule.a(t) ** 2, f / f[0], atol=1e-12)
    grid = schedule.grid(10)
    assert grid[0].item() == pytest.approx(schedule.t_max) and grid[-1].item() == 0 and len(grid) == 11
    times = schedule.sample_times(10_000, torch.Generator().manual_seed(1))
    assert times.min() >= schedule.t_min and times.max() <= schedule.t_max
    assert times.mean().item() == pytest.approx((schedule.t_min + schedule.t_max) / 2, abs=0.01)


def test_edm_grid_and_training_levels():
    schedule = EDM(sigma_min=0.002, sigma_max=80.0, rho=7.0)
    grid = schedule.grid(18)
    assert grid[0].item() == pytest.approx(80.0) and grid[-2].item() == pytest.approx(0.002) and grid[-1] == 0
    assert bool((grid[1:] < grid[:-1]).all())
    # σ_i^{1/ρ} is linear in i.
    roots = grid[:-1] ** (1 / 7)
    assert torch.allclose(roots.diff(), roots.diff()[0].expand(17), atol=1e-12)
    log_sigma = torch.log(schedule.sample_times(20_000, torch.Generator().manual_seed(2)))
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=0.03)
    assert log_sigma.std().item() == pytest.approx(1.2, abs=0.03)
    assert torch.equal(schedule.a(grid), torch.ones_like(grid)) and torch.equal(schedule.s(grid), grid)


def test_bad_schedule_arguments_are_named():
    with pytest.raises(ValueError, match="unknown noise schedule 'linear'"):
        make_schedule("linear")
    with pytest.raises(ValueError, match="a_min"):
        VPCosine(a_min=0.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EDM(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="sampling steps"):
        EDM().grid(0)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_training_times_above_a_stage_threshold_follow_the_conditioned_law(schedule):
    # Conditioning on t >= t_low keeps the law's shape: compare with rejection sampling.
    t_low = 0.6 if isinstance(schedule, VPCosine) else 0.5
    drawn = schedule.sample_times(20_000, torch.Generator().manual_seed(3), t_low)
    assert drawn.min() >= t_low
    full = schedule.sample_times(200_000, torch.Generator().manual_seed(4))
    kept = full[full >= t_low]
    assert drawn.log().mean().item() == pytest.approx(kept.log().mean().item(), abs=0.02)
    assert drawn.log().std().item() == pytest.approx(kept.log().std().item(), rel=0.03)
    with pytest.raises(ValueError, match="t_low must lie in"):
        schedule.sample_times(1, t_low=schedule.t_max)
