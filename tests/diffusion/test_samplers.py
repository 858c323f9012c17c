"""Samplers: determinism given a seed, and the exact denoiser of Gaussian data maps noise
to the data distribution."""

from __future__ import annotations

import pytest
import torch

from geounet.diffusion import EDM, SAMPLERS, VPCosine, sample, white_noise

MEAN = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
VARIANCE = torch.tensor([0.25, 1.0, 4.0, 0.04], dtype=torch.float64)
STD = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)  # white-noise node deviations (unequal masses)


def gaussian_denoiser(schedule):
    """The exact posterior mean E[x_0 | x_t] for x_0 ~ N(MEAN, diag VARIANCE) and noise
    covariance s_t² diag(STD²): x̂_0 = μ + a Σ (a² Σ + s² D)⁻¹ (x_t - a μ)."""

    def denoise(x, t):  # x [B, N, 1], t [B] (samplers give every element the same time)
        assert bool((t == t[0]).all())
        a, s = schedule.a(t[0]), schedule.s(t[0])
        mu, var, d = MEAN[:, None], VARIANCE[:, None], STD[:, None] ** 2
        x0 = mu + a * var / (a**2 * var + s**2 * d) * (x - a * mu)
        return x0, (x - a * x0) / s

    return denoise


@pytest.mark.parametrize("schedule", [VPCosine(), EDM()], ids=repr)
@pytest.mark.parametrize(("name", "steps"), [("ddim", 500), ("heun", 200), ("ddpm", 500)])
def test_exact_denoiser_samples_the_data_distribution(schedule, name, steps):
    samples = sample(name, gaussian_denoiser(schedule), schedule, STD, 20_000, 1, steps,
                     torch.Generator().manual_seed(0), torch.float64)[..., 0]  # [S, N]
    standard_error = (VARIANCE / len(samples)).sqrt()
    assert torch.allclose(samples.mean(0), MEAN, atol=float(5 * standard_error.max()))
    assert torch.allclose(samples.var(0), VARIANCE, rtol=0.06)  # 6 standard errors of a variance from 20 000 draws


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_same_seed_same_samples(name):
    schedule = EDM()
    denoise = gaussian_denoiser(schedule)

    def draw(seed):
        return sample(name, denoise, schedule, STD, 3, 1, 5, torch.Generator().manual_seed(seed), torch.float64)

    assert torch.equal(draw(7), draw(7))
    assert not torch.allclose(draw(7), draw(8))


@pytest.mark.parametrize("schedule", [VPCosine(), EDM()], ids=repr)
@pytest.mark.parametrize(("name", "steps", "tolerance"), [("ddim", 1000, 0.02), ("heun", 200, 0.005)])
def test_deterministic_samplers_follow_the_exact_probability_flow(schedule, name, steps, tolerance):
    # For Gaussian data the probability-flow ODE in y = x / a, σ = s / a is solved by
    # y(σ) - μ = (y_T - μ) sqrt((Σ + σ² D) / (Σ + σ_T² D)), so each sample is known exactly:
    # x_0 = μ + (s_T ε / a_T - μ) sqrt(Σ / (Σ + σ_T² D)).
    samples = sample(name, gaussian_denoiser(schedule), schedule, STD, 16, 1, steps,
                     torch.Generator().manual_seed(5), torch.float64)[..., 0]
    eps = white_noise(STD, 16, 1, torch.Generator().manual_seed(5), torch.float64)[..., 0]
    t_max = torch.tensor(schedule.t_max, dtype=torch.float64)
    a_max, s_max = schedule.a(t_max), schedule.s(t_max)
    exact = MEAN + (s_max * eps / a_max - MEAN) * torch.sqrt(VARIANCE / (VARIANCE + (s_max / a_max) ** 2 * STD**2))
    assert torch.allclose(samples, exact, atol=tolerance)


def test_unknown_sampler_is_named():
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        sample("euler", gaussian_denoiser(EDM()), EDM(), STD, 1, 1, 2)
