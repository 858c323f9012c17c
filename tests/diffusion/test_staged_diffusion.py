"""Staged diffusion (geounet.diffusion.staged): noise ranges per stage, stage training, staged sampling."""

from __future__ import annotations

import math

import pytest
import torch

from geounet.data.samples import Dataset
from geounet.diffusion.detail_snr import details
from geounet.diffusion.loss import noised
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.schedules import EDM, VPCosine
from geounet.diffusion.staged import (
    StagedDenoiser,
    active_stage,
    per_dof_energies,
    stage_time_ranges,
    staged_denoise_fn,
    staged_sample,
)
from geounet.hierarchy import SquareHaarHierarchy
from geounet.models import build_unet
from geounet.nn.staged import StagedUNet
from geounet.train.staged import Stage, staged_config, train_staged_diffusion


def staged_denoiser(hierarchy, seed=0, schedule=None):
    torch.manual_seed(seed)
    unet = build_unet(hierarchy, 1, 1, variant="multiresnet", width=8, cond_dim=8)
    return StagedDenoiser(StagedUNet(unet), schedule or VPCosine(), "v", 8)


def include(x, hierarchy, level):
    """ι x from ``level`` up to the finest level."""
    for current in range(level, hierarchy.finest_level):
        x = hierarchy.prolong(x, current)
    return x


def layered_fields(hierarchy, amplitudes, num, seed=0):
    """x = Σ_i σ_i D_i ε^{(i)} with independent white ε^{(i)}: E‖D_i x‖² = σ_i² E‖D_i ε‖², so e_i = σ_i²."""
    generator = torch.Generator().manual_seed(seed)
    std = noise_std(hierarchy)
    x = torch.zeros(num, hierarchy.num_nodes(hierarchy.finest_level), 1, dtype=torch.float64)
    for level, amplitude in enumerate(amplitudes):
        detail = details(white_noise(std, num, 1, generator, torch.float64), hierarchy)[level]
        x += amplitude * include(detail, hierarchy, level)
    return x


def test_edm_ranges_have_the_closed_form():
    # EDM: SNR(σ) = 1 / σ², so SNR_i = τ at t_i = sqrt(e_i / τ); u_j = max over i >= j, u_0 = σ_max.
    schedule, tau = EDM(), 0.1
    ranges = stage_time_ranges([100.0, 1.0, 0.01], schedule, tau)
    assert [low for low, _ in ranges] == [schedule.t_min] * 3
    assert [high for _, high in ranges] == pytest.approx([schedule.t_max, math.sqrt(10), math.sqrt(0.1)], rel=1e-6)
    # blue data (a fine level richer than the one below): the middle stage is needed until the finest drowns
    ranges = stage_time_ranges([100.0, 0.01, 1.0], schedule, tau)
    assert [high for _, high in ranges] == pytest.approx([schedule.t_max, math.sqrt(10), math.sqrt(10)], rel=1e-6)
    with pytest.raises(ValueError, match="levels >= 2 never reach detail SNR"):  # σ_min² τ > e_2: no stage 2
        stage_time_ranges([100.0, 1.0, 1e-8], schedule, tau)
    with pytest.raises(ValueError, match="threshold must be positive"):
        stage_time_ranges([1.0, 1.0], schedule, 0.0)


def test_official_rule_trains_each_stage_where_the_finer_levels_are_drowned():
    # T_j = [u_{j+1}, t_max] for j < I, T_I = every time; EDM closed form as above.
    schedule, tau = EDM(), 0.1
    official = stage_time_ranges([100.0, 1.0, 0.01], schedule, tau, rule="official")
    assert [high for _, high in official] == [schedule.t_max] * 3
    assert [low for low, _ in official] == pytest.approx([math.sqrt(10), math.sqrt(0.1), schedule.t_min], rel=1e-6)
    # The staged sampler runs stage k(t) (switch times: the nested ranges' upper ends) only at
    # times that stage trained on, under either rule.
    for per_dof in ([100.0, 1.0, 0.01], [100.0, 0.01, 1.0]):
        nested = stage_time_ranges(per_dof, schedule, tau)
        official = stage_time_ranges(per_dof, schedule, tau, rule="official")
        ratio = schedule.t_max / schedule.t_min
        for t in [schedule.t_min, *(schedule.t_min * ratio ** (k / 200) for k in range(1, 200)), schedule.t_max]:
            stage = active_stage(t, nested, resolution=2)
            for ranges in (nested, official):
                assert ranges[stage][0] <= t <= ranges[stage][1]
    # Negative control: the official ranges of the coarse stages miss the low noise that the nested ones cover.
    assert not official[0][0] <= schedule.t_min
    with pytest.raises(ValueError, match="stage time rule must be one of"):
        stage_time_ranges([1.0, 1.0], schedule, tau, rule="paper")


def test_white_data_drown_together_and_red_data_level_by_level():
    hierarchy = SquareHaarHierarchy(16, 4).to(dtype=torch.float64)
    schedule, tau = VPCosine(), 0.1
    white = layered_fields(hierarchy, [1.0, 1.0, 1.0, 1.0], 400)
    e_white = per_dof_energies(white, hierarchy)
    assert e_white[1:].tolist() == pytest.approx([1.0] * 3, rel=0.1)
    uppers = [high for _, high in stage_time_ranges(e_white.tolist(), schedule, tau)]
    assert uppers[0] == schedule.t_max
    assert uppers[1] == pytest.approx(uppers[3], abs=0.02)  # one drowning time: the middle stages are never used
    # red: σ_i² = 16^-i, a decay of 16 per level (a smooth field's Haar details)
    red = layered_fields(hierarchy, [1.0, 0.25, 1 / 16, 1 / 64], 400, seed=1)
    e_red = per_dof_energies(red, hierarchy)
    assert e_red[1:].tolist() == pytest.approx([16.0**-i for i in (1, 2, 3)], rel=0.1)
    uppers = [high for _, high in stage_time_ranges(e_red.tolist(), schedule, tau)]
    for level in (1, 2, 3):  # log SNR(u_j) = log(τ / e_j) = log τ + j log 16
        log_snr = float(schedule.log_snr(torch.tensor(uppers[level], dtype=torch.float64)))
        assert log_snr == pytest.approx(math.log(tau) + level * math.log(16), abs=0.15)
    assert uppers[0] > uppers[1] > uppers[2] > uppers[3]


def test_stage_times_follow_the_conditioned_law():
    for schedule, (low, high) in [(VPCosine(), (0.2, 0.7)), (EDM(), (0.1, 2.0))]:
        drawn = schedule.sample_times(20_000, torch.Generator().manual_seed(3), low, high)
        assert low <= drawn.min() and drawn.max() <= high
        full = schedule.sample_times(400_000, torch.Generator().manual_seed(4))
        kept = full[(full >= low) & (full <= high)]
        assert drawn.log().mean().item() == pytest.approx(kept.log().mean().item(), abs=0.02)
        with pytest.raises(ValueError, match="t_high must lie in"):
            schedule.sample_times(1, t_low=low, t_high=low)


def test_level_noise_is_the_projection_of_finest_noise():
    hierarchy = SquareHaarHierarchy(16, 4)
    x0 = torch.zeros(2000, 16, 1)  # level 1: 4 x 4 cells of 4 x 4 pixels
    x_t, t, _ = noised(VPCosine(), "eps", x0, hierarchy, torch.Generator().manual_seed(0), level=1)
    s = VPCosine().s(t)[:, None, None].float()
    assert (x_t / s).var().item() == pytest.approx(1 / 16, rel=0.05)  # cell means of 16 unit-variance pixels
    # the finest level keeps the unprojected draw (same generator, same noise as before)
    fine = torch.zeros(3, 256, 1)
    a = noised(VPCosine(), "eps", fine, hierarchy, torch.Generator().manual_seed(5))
    b = noised(VPCosine(), "eps", fine, hierarchy, torch.Generator().manual_seed(5), level=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def train(denoiser, data, stages, ranges, batch_size=4):
    return train_staged_diffusion(denoiser, data, stages, ranges, staged_config(stages, batch_size=batch_size))


def test_frozen_stage_training_only_moves_its_level():
    hierarchy = SquareHaarHierarchy(8, 3)
    denoiser = staged_denoiser(hierarchy)
    data = layered_fields(hierarchy, [1.0, 0.5, 0.25], 16).float()
    ranges = stage_time_ranges(per_dof_energies(data, hierarchy).tolist(), denoiser.schedule)
    fields = Dataset(data, data, hierarchy)
    train(denoiser, fields, [Stage(0, 3, lr=1e-2)], ranges)
    staged = denoiser.model
    coarse = [p.detach().clone() for level in (0, 1) for p in staged.level_parameters(level)]
    embedding = [p.detach().clone() for p in denoiser.embedding.parameters()]
    finest = [p.detach().clone() for p in staged.level_parameters(2)]
    train(denoiser, fields, [Stage(2, 3, lr=1e-2, freeze_coarser=True)], ranges)
    now = [p for level in (0, 1) for p in staged.level_parameters(level)]
    assert all(torch.equal(p, q) for p, q in zip(now, coarse, strict=True))
    assert all(torch.equal(p, q) for p, q in zip(denoiser.embedding.parameters(), embedding, strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(staged.level_parameters(2), finest, strict=True))
    # unfrozen, the embedding and the coarse levels train too
    train(denoiser, fields, [Stage(2, 2, lr=1e-2)], ranges)
    assert any(not torch.equal(p, q) for p, q in zip(denoiser.embedding.parameters(), embedding, strict=True))
    assert all(p.requires_grad for p in denoiser.parameters())
    with pytest.raises(ValueError, match="one time range per level"):
        train_staged_diffusion(denoiser, fields, [Stage(0, 1)], ranges[:2])


def test_staged_denoiser_is_the_stage_plus_wiener_details():
    hierarchy = SquareHaarHierarchy(8, 3)
    denoiser = staged_denoiser(hierarchy)
    per_dof = torch.tensor([4.0, 1.0, 0.5])
    ranges = [(1e-4, denoiser.schedule.t_max), (1e-4, 0.8), (1e-4, 0.5)]
    denoise = staged_denoise_fn(denoiser, hierarchy, ranges, per_dof)
    t = torch.full((2,), 0.9, dtype=torch.float64)  # above u_1: stage 0 only
    x_t = torch.randn(2, 64, 1)
    x0, eps = denoise(x_t, t)
    coarse, _ = denoiser.denoise(hierarchy.project(x_t, 2, 0), hierarchy, t, stage=0)
    assert torch.allclose(hierarchy.project(x0, 2, 0), coarse, atol=1e-6)  # P_0 x̂_0 is the stage's estimate
    a, s = float(denoiser.schedule.a(t[0])), float(denoiser.schedule.s(t[0]))
    d1, d2 = details(x_t, hierarchy)[1:]
    level1 = hierarchy.prolong(coarse, 0) + a * 1.0 / (a**2 * 1.0 + s**2) * d1  # w_i = a e_i / (a² e_i + s²)
    expected = hierarchy.prolong(level1, 1) + a * 0.5 / (a**2 * 0.5 + s**2) * d2
    assert torch.allclose(x0, expected, atol=1e-6)
    assert torch.allclose(a * x0 + s * eps, x_t, atol=1e-5)  # (x̂_0, ε̂) reproduce x_t
    with pytest.raises(ValueError, match="same time"):
        denoise(x_t, torch.tensor([0.9, 0.5], dtype=torch.float64))


def test_staged_sampling_runs_coarse_stages_first_and_is_seeded():
    hierarchy = SquareHaarHierarchy(8, 3)
    denoiser = staged_denoiser(hierarchy)
    ranges = [(1e-4, denoiser.schedule.t_max), (1e-4, 0.8), (1e-4, 0.5)]
    per_dof = torch.tensor([4.0, 1.0, 0.5])
    stages_called = []
    original = denoiser.level_outputs

    def spy(x_t, hierarchy, t, context=None, stage=None):
        stages_called.append((float(t[0]), stage))
        return original(x_t, hierarchy, t, context, stage)

    denoiser.level_outputs = spy
    first = staged_sample("ddim", denoiser, hierarchy, ranges, per_dof, 3, 1, 12, torch.Generator().manual_seed(7))
    assert [stage for _, stage in stages_called] == [active_stage(t, ranges, 2) for t, _ in stages_called]
    assert [stage for _, stage in stages_called] == sorted(stage for _, stage in stages_called)
    assert {stage for _, stage in stages_called} == {0, 1, 2}
    again = staged_sample("ddim", denoiser, hierarchy, ranges, per_dof, 3, 1, 12, torch.Generator().manual_seed(7))
    other = staged_sample("ddpm", denoiser, hierarchy, ranges, per_dof, 3, 1, 12, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.allclose(first, other)
    stages_called.clear()
    coarse = staged_sample("ddpm", denoiser, hierarchy, ranges, per_dof, 3, 1, 12, torch.Generator().manual_seed(7),
                           resolution=1)
    assert coarse.shape == (3, 16, 1) and max(stage for _, stage in stages_called) == 1
    with pytest.raises(ValueError, match="resolution must be a level"):
        staged_sample("ddim", denoiser, hierarchy, ranges, per_dof, 1, 1, 2, resolution=3)


@pytest.mark.slow
def test_staged_model_samples_match_the_data_level_by_level():
    # Red Gaussian data with e_i = 1, 1/4, 1/16: three distinct noise ranges; frozen stages, staged DDIM.
    hierarchy = SquareHaarHierarchy(8, 3)
    data = layered_fields(hierarchy, [1.0, 0.5, 0.25], 2000, seed=3).float()
    torch.manual_seed(0)
    unet = build_unet(hierarchy, 1, 1, variant="multiresnet", width=16, cond_dim=32)
    denoiser = StagedDenoiser(StagedUNet(unet), VPCosine(), "v", 32)
    per_dof = per_dof_energies(data, hierarchy)
    ranges = stage_time_ranges(per_dof.tolist(), denoiser.schedule)
    stages = [Stage(0, 300, lr=2e-3), Stage(1, 300, lr=2e-3, freeze_coarser=True),
              Stage(2, 400, lr=2e-3, freeze_coarser=True)]
    train(denoiser, Dataset(data, data, hierarchy), stages, ranges, batch_size=32)
    samples = staged_sample("ddim", denoiser, hierarchy, ranges, per_dof, 256, 1, 50, torch.Generator().manual_seed(2))
    ratio = per_dof_energies(samples, hierarchy) / per_dof
    assert bool(((ratio > 0.5) & (ratio < 1.5)).all()), ratio
    coarse = staged_sample("ddim", denoiser, hierarchy, ranges, per_dof, 256, 1, 50, torch.Generator().manual_seed(2),
                           resolution=1)  # multi-resolution inference: stages 0 and 1 only
    ratio = per_dof_energies(hierarchy.prolong(coarse, 1), hierarchy)[:2] / per_dof[:2]
    assert bool(((ratio > 0.5) & (ratio < 1.5)).all()), ratio
