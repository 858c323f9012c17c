"""The staged sampler's hand-off is exact (geounet.diffusion.staged), on every hierarchy kind.

**One denoiser in every stage.** For Gaussian data with independent details,
x_0 = Σ_i σ_i ι D_i ε^{(i)} (ε^{(i)} white), the posterior mean given x_t = a x_0 + s ε is

    E[x_0 | x_t] = Σ_i w_i ι D_i x_t,      w_i = a e_i / (a² e_i + s²),   e_i = σ_i²,

since D_i x_t = a σ_i D_i ε^{(i)} + s D_i ε with both terms white in the detail space W_i.
Restricted to level j this oracle is the stage-j oracle, Σ_{i<=j} w_i ι D_i P_j x_t, and the
staged sampler adds exactly the Wiener terms of the levels above j. So a staged sampler whose
every stage is that oracle must reproduce the single-model sampler running the oracle on the
finest level, step for step and whatever the stage ranges: the stage switches ("hand-offs")
then cost nothing. Checked for DDIM, Heun and DDPM (same seed, same noise) to float32
round-off (2e-5 relative to the sample's size); negative control: Wiener weights of wrong
energies in the staged sampler move the samples by more than 1e-2.

**The time rule.** At time t the sampler runs stage min(k(t), J), k(t) = max{j : t <= u_j}
(:func:`~geounet.diffusion.staged.active_stage`): every call of stage j has t in its range
T_j = [t_min, u_j], and t > u_{j+1} unless j is the output resolution J.

**Resolution J depends on P_J x_t alone** (P_J ι = id on V_J, P_J D_i = 0 for i > J): the
resolution-J sample of the staged sampler is the same sampler run on level J alone, started
from P_J of the finest-level start noise (and, for DDPM, fed P_J of each fresh draw), with
the stage-J network as its denoiser; float64, tolerance 1e-9 relative. Where V_J is smaller
than level J's node values (the spherical-harmonic bands: (L_J + 1)² < 12 nside_J²), the
network's pixel output is not in V_J and P_J ι keeps only its band-limited part, so the level-J
run must band-limit each estimate to match; without that it differs by more than 1e-2
(checked, as the negative control).
"""

from __future__ import annotations

import pytest
import torch
import trimesh

from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.samplers import SAMPLERS, sample
from geounet.diffusion.schedules import VPCosine
from geounet.diffusion.staged import (
    StagedDenoiser,
    active_stage,
    stage_time_ranges,
    staged_denoise_fn,
    staged_sample,
)
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    MeshSpectralHierarchy,
    SquareHaarHierarchy,
    SubdivisionHierarchy,
    TriangleHierarchy,
)
from geounet.models import build_unet
from geounet.nn.staged import StagedUNet

pytestmark = pytest.mark.usefixtures("isolated_cache")

SAMPLER_NAMES = sorted(SAMPLERS)


def _icosphere(subdivisions: int) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces)


#: three levels of every hierarchy kind
HIERARCHIES = {
    "square": lambda: SquareHaarHierarchy(8, 3),
    "healpix_haar": lambda: HealpixHaarHierarchy(4, 3),
    "healpix_sh": lambda: HealpixSHHierarchy(4, 3),
    "triangle": lambda: TriangleHierarchy(3),
    "subdivision": lambda: SubdivisionHierarchy(_icosphere(0), 3),
    "clusters": lambda: ClusterHierarchy(_icosphere(2), 3),
    "spectral": lambda: MeshSpectralHierarchy(_icosphere(2), [1, 9]),
}

#: e_i per level (red data), and stage ranges with two hand-offs inside the sampling grid
ENERGIES = [4.0, 1.0, 0.25]
RANGES = [(1e-4, VPCosine().t_max), (1e-4, 0.7), (1e-4, 0.35)]


def staged_denoiser(hierarchy, seed=0):
    torch.manual_seed(seed)
    unet = build_unet(hierarchy, 1, 1, variant="multiresnet", width=4, cond_dim=4)
    return StagedDenoiser(StagedUNet(unet), VPCosine(), "v", 4)


def gaussian_posterior_mean(x: torch.Tensor, hierarchy, level: int, a: float, s: float, energies) -> torch.Tensor:
    """Σ_{i <= level} w_i ι D_i x for ``x [B, N_level, C]`` on ``level``: the exact denoiser of the layered data."""
    coarse = [x]  # P_i x for i = level .. 0
    for current in range(level, 0, -1):
        coarse.append(hierarchy.restrict(coarse[-1], current))
    coarse.reverse()
    estimate = torch.zeros_like(x)
    for i in range(level + 1):
        detail = coarse[0] if i == 0 else coarse[i] - hierarchy.prolong(coarse[i - 1], i - 1)  # D_i x on level i
        for current in range(i, level):
            detail = hierarchy.prolong(detail, current)
        estimate = estimate + a * energies[i] / (a**2 * energies[i] + s**2) * detail
    return estimate


def oracle_stages(denoiser: StagedDenoiser, energies):
    """Replace every stage of ``denoiser`` by the exact denoiser at that stage's level."""
    schedule = denoiser.schedule

    def denoise(x_t, hierarchy, t, context=None, stage=None):
        a, s = float(schedule.a(t[0])), float(schedule.s(t[0]))
        x0 = gaussian_posterior_mean(x_t, hierarchy, stage, a, s, energies)
        return x0, (x_t - a * x0) / s

    denoiser.denoise = denoise
    return denoiser


@pytest.mark.parametrize("kind", sorted(HIERARCHIES))
def test_staged_sampler_with_one_denoiser_in_every_stage_is_the_single_model_sampler(kind):
    hierarchy = HIERARCHIES[kind]()
    denoiser = oracle_stages(staged_denoiser(hierarchy), ENERGIES)
    schedule, finest = denoiser.schedule, hierarchy.finest_level

    def single(x_t, t):
        a, s = float(schedule.a(t[0])), float(schedule.s(t[0]))
        x0 = gaussian_posterior_mean(x_t, hierarchy, finest, a, s, ENERGIES)
        return x0, (x_t - a * x0) / s

    for name in SAMPLER_NAMES:
        staged = staged_sample(name, denoiser, hierarchy, RANGES, torch.tensor(ENERGIES), 3, 2, 12,
                               torch.Generator().manual_seed(1))
        reference = sample(name, single, schedule, noise_std(hierarchy), 3, 2, 12, torch.Generator().manual_seed(1))
        scale = reference.abs().max()
        torch.testing.assert_close(staged, reference, rtol=0, atol=2e-5 * scale, msg=f"{kind}, {name}")
        wrong = staged_sample(name, denoiser, hierarchy, RANGES, torch.tensor([4.0, 4.0, 4.0]), 3, 2, 12,
                              torch.Generator().manual_seed(1))  # negative control: the wrong Wiener weights
        assert (wrong - reference).abs().max() > 1e-2 * scale, (kind, name)


@pytest.mark.parametrize("name", SAMPLER_NAMES)
@pytest.mark.parametrize("resolution", [1, 2])
def test_each_stage_runs_only_inside_its_noise_range(name, resolution):
    hierarchy = SquareHaarHierarchy(8, 3)
    denoiser = staged_denoiser(hierarchy)
    ranges = stage_time_ranges(ENERGIES, denoiser.schedule)
    uppers = [high for _, high in ranges]
    assert uppers[0] == denoiser.schedule.t_max and uppers[0] > uppers[1] > uppers[2]  # nested ranges
    calls = []
    original = denoiser.level_outputs

    def spy(x_t, levels, t, context=None, stage=None):
        calls.append((float(t[0]), stage, x_t.shape[1]))
        return original(x_t, levels, t, context, stage)

    denoiser.level_outputs = spy
    staged_sample(name, denoiser, hierarchy, ranges, torch.tensor(ENERGIES), 2, 1, 20, torch.Generator().manual_seed(0),
                  resolution=resolution)
    assert {stage for _, stage, _ in calls} == set(range(resolution + 1))  # every stage up to J takes part
    for t, stage, nodes in calls:
        assert nodes == hierarchy.num_nodes(stage)  # the stage sees P_stage x_t
        assert ranges[stage][0] <= t <= uppers[stage] or t == 0.0 and stage == resolution
        assert stage == resolution or t > uppers[stage + 1]  # the finest stage whose range holds t
        assert stage == active_stage(t, ranges, resolution)


def run_on_level(name, stage_denoise, schedule, start, fresh, steps):
    """``name``'s steps on one level from ``start``, with ``fresh()`` as DDPM's noise."""
    step, grid, x = SAMPLERS[name], schedule.grid(steps), start
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        x = step(stage_denoise, schedule, x, t, t_next, fresh)
    return x


@pytest.mark.parametrize("kind", ["square", "healpix_sh", "clusters"])
@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_the_resolution_j_sample_is_the_level_j_sampler_on_projected_noise(kind, name):
    # float64 throughout: Heun divides by a_t (small at t_max), which magnifies float32 round-off of
    # the two equal routes to ~1e-3; in float64 they agree to 1e-9
    hierarchy = HIERARCHIES[kind]().to(dtype=torch.float64)
    denoiser = staged_denoiser(hierarchy).double()
    schedule, finest, level = denoiser.schedule, hierarchy.finest_level, 1
    full = [(schedule.t_min, schedule.t_max)] * 3  # stage J runs at every time
    denoise = staged_denoise_fn(denoiser, hierarchy, full, torch.tensor(ENERGIES), resolution=level)
    staged = sample(name, denoise, schedule, noise_std(hierarchy), 2, 1, 10, torch.Generator().manual_seed(3),
                    torch.float64)  # staged_sample's finest-level run, before its projection to level J
    generator = torch.Generator().manual_seed(3)  # the same draws, in the same order, projected to level J
    std = noise_std(hierarchy)

    def fresh():
        return hierarchy.project(white_noise(std, 2, 1, generator, torch.float64), finest, level)

    def in_space(x):
        """P_J ι x: the identity where V_J is all of level J's node values; the band-limited part on SH bands."""
        return hierarchy.restrict(hierarchy.prolong(x, level), level + 1)

    def stage_j(x_t, t, keep_in_space=True):
        x0, _ = denoiser.denoise(x_t, hierarchy, t, stage=level)
        x0 = in_space(x0) if keep_in_space else x0
        a, s = float(schedule.a(t[0])), float(schedule.s(t[0]))
        return x0, (x_t - a * x0) / s

    start = float(schedule.s(schedule.grid(10)[0])) * fresh()
    with torch.no_grad():
        direct = run_on_level(name, stage_j, schedule, start, fresh, 10)
    assert direct.shape == (2, hierarchy.num_nodes(level), 1)
    torch.testing.assert_close(hierarchy.project(staged, finest, level), direct, rtol=0,
                               atol=1e-9 * direct.abs().max())
    if hierarchy.space_dimension(level) < hierarchy.num_nodes(level):
        # the stage's pixel output leaves the band V_J; the staged sampler keeps only its band-limited part
        generator.manual_seed(3)
        start = float(schedule.s(schedule.grid(10)[0])) * fresh()
        with torch.no_grad():
            unprojected = run_on_level(name, lambda x, t: stage_j(x, t, keep_in_space=False), schedule, start, fresh,
                                       10)
        assert (unprojected - direct).abs().max() > 1e-2 * direct.abs().max()
