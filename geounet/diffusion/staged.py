"""Staged diffusion (paper §5.2): stage j denoises data projected to level j on the noise
levels where level j or a finer one still carries information; a staged sampler hands the
noise levels from coarse stages to fine ones.

**The process at level j.** With ε white noise on the finest level I (covariance c M_I⁻¹,
:mod:`geounet.diffusion.noise`) and P_j = P_{I→j}, stage j sees the projection of the
finest process,

    x_t^{(j)} = P_j x_t = a_t P_j x_0 + s_t P_j ε,

with the same time t (the same log-SNR embedding) as every other stage. P_j ε is white in
V_j with the same constant c (on Haar levels: node variance c / m_n; it is drawn as the
projection of finest-level noise, which is exact for every hierarchy), so the coarse part of
a finer stage sees what the coarse stage saw: P_j x_t^{(k)} = x_t^{(j)} for k >= j. (The
official code adds fresh unit-variance noise at the coarse resolution instead; that raises
the coarse noise by the factor N_I / N_j and breaks this identity.)

**Which noise levels a stage trains on.** Level i's detail SNR is SNR_i(t) = SNR(t) e_i,
e_i = E‖D_i x_0‖² / E‖D_i ε‖² (:mod:`geounet.diffusion.detail_snr`), decreasing in t; it
falls to the threshold τ at the drowning time t_i (:func:`~geounet.diffusion.detail_snr.drowning_times`).
At time t the finest level that still carries information is

    k(t) = max{i : SNR_i(t) >= τ}      (0 when there is none),

and the levels above k(t) hold signal below τ times their noise: a model of the levels
<= k(t) loses only that. Stage j is needed wherever level j or a finer one carries
information, k(t) >= j, which is the interval

    T_j = [t_min, u_j],     u_j = max_{i >= j} t_i,     u_0 = t_max,

so stage j trains on t in T_j (:func:`stage_time_ranges`; the training loop is
:func:`geounet.train.staged.train_staged_diffusion`): the coarsest stage on every noise
level, each finer stage on lower noise only, up to the time where its finest detail (or a
finer one) drowns. The ranges are nested, T_I ⊂ ... ⊂ T_0, which frozen staged training
needs: a frozen coarse sub-network inside stage j was trained on every time stage j feeds
it. They also make every stage a sampler of its own resolution down to t = 0
(multi-resolution inference). For white data all e_i are equal, so all levels drown
together: the coarsest stage takes the high noise, the finest stage everything else and the
middle stages are never needed.

**The official code's rule** (``rule="official"``). The official diff_mnist code trains
stage j on the other side, where the levels above j are drowned:

    T_j = [u_{j+1}, t_max] for j < I,     T_I = [t_min, t_max],

so the finest stage sees every time and each coarser stage the high noise only. The ranges
are nested the other way, T_0 ⊂ ... ⊂ T_I, which suits unfrozen training (the last stage
trains the shared coarse parameters on every time); a frozen coarse sub-network is then
used inside stage j at lower noise than it was trained on, and a stage j < I so trained
cannot sample its own resolution to t = 0. The staged sampler is the same under both rules:
it runs stage k(t) at time t, and t lies in T_{k(t)} under both (u_{k+1} < t <= u_k), so
every stage is asked only for times it was trained on; pass the sampler the ``nested``
ranges, whose upper ends are its switch times.

**Sampling** (:func:`staged_sample`). The sampler walks t from t_max to 0 on the finest
level, and at time t the denoiser runs only stage j = min(k(t), J) (J the output
resolution; k(t) = max{j : t <= u_j}) on P_j x_t. The noise-dominated details above j get
their Wiener estimate, the posterior mean for Gaussian details independent of the coarse
part:

    x̂_0 = ι x̂_0^{(j)} + Σ_{i > j} w_i(t) D_i x_t,     w_i = a_t e_i / (a_t² e_i + s_t²),
    ε̂ = (x_t - a_t x̂_0) / s_t,

(the recursion x̂ ← ι x̂ + w_i D_i x_t from level j + 1 up to I). So a DDIM step keeps the
drowned details nearly pure noise, scaled from s_t to s_{t'}, and a stage hand-off needs no
special step. P_J of the sample depends on P_J x_t alone (P_J ι = id, P_J D_i = 0 for
i > J), so the projection of a sample capped at stage J *is* the resolution-J sample; the
network only ever runs on the coarse levels, and the finest-level bookkeeping (projections,
noise) costs little.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.diffusion import noise as noise_lib
from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.detail_snr import detail_energies, drowning_times, noise_energies
from geounet.diffusion.samplers import DenoiseFn, sample
from geounet.diffusion.schedules import Schedule
from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.staged import StagedUNet
from geounet.nn.unet import geometry_for


def per_dof_energies(data: Tensor, hierarchy: Hierarchy) -> Tensor:
    """e_i = E‖D_i x_0‖² / E‖D_i ε‖² of data ``[S, N_I, C]`` for every level, ``[levels]`` float64."""
    return detail_energies(data, hierarchy).to(torch.float64).cpu() / noise_energies(hierarchy)


STAGE_RULES = ("nested", "official")


def stage_time_ranges(per_dof: Sequence[float], schedule: Schedule, threshold: float = 0.1, rule: str = "nested"
                      ) -> list[tuple[float, float]]:
    """The training range T_j of every stage j, with u_j = max_{i >= j} t_i, t_i the time where
    SNR_i(t) = ``threshold`` and u_0 = t_max (module docstring): ``nested`` T_j = (t_min, u_j)
    (the sampler's switch times), ``official`` T_j = (u_{j+1}, t_max) and T_I = (t_min, t_max)."""
    if rule not in STAGE_RULES:
        raise GeounetError(f"the stage time rule must be one of {list(STAGE_RULES)}, got {rule!r}")
    if not threshold > 0:
        raise GeounetError(f"the SNR threshold must be positive, got {threshold}")
    if any(not e > 0 for e in per_dof):
        raise GeounetError(f"per-level energies must be positive (a level without signal has no stage), got {per_dof}")
    best = float(schedule.snr(torch.tensor(schedule.t_min, dtype=torch.float64)))  # SNR at the least noise
    for level in range(1, len(per_dof)):
        if best * max(per_dof[level:]) < threshold:
            raise GeounetError(f"levels >= {level} never reach detail SNR {threshold} (at t_min their SNR is "
                             f"{best * max(per_dof[level:]):.3g}), so stage {level} is never needed: build the "
                             f"U-Net with {level} levels or lower the threshold")
    drowned = drowning_times(per_dof, schedule, threshold)
    uppers = [schedule.t_max] + [max(drowned[j:]) for j in range(1, len(drowned))]
    if rule == "official":
        return [(lower, schedule.t_max) for lower in uppers[1:]] + [(schedule.t_min, schedule.t_max)]
    return [(schedule.t_min, upper) for upper in uppers]


def active_stage(t: float, ranges: Sequence[tuple[float, float]], resolution: int) -> int:
    """min(k(t), resolution) with k(t) = max{j : t <= u_j}: the stage that denoises at time t."""
    return min(max(j for j, (_, upper) in enumerate(ranges) if t <= upper or j == 0), resolution)


class StagedDenoiser(Denoiser):
    """A :class:`Denoiser` around a :class:`~geounet.nn.staged.StagedUNet`:
    ``denoiser(x_t, hierarchy, t, context=None, stage=None)`` with ``x_t [B, N_stage, C]`` on
    level ``stage`` (default: the finest) -> the prediction at that level."""

    def __init__(self, staged: StagedUNet, schedule: Schedule, prediction: str, cond_dim: int):
        super().__init__(staged, schedule, prediction, cond_dim)

    def level_outputs(self, x_t: Tensor, hierarchy: Hierarchy, t: Tensor, context: Tensor | None = None,
                      stage: int | None = None) -> list[Tensor]:
        """Predictions ``[B, N_j, C]`` at every level j = 0 .. ``stage``."""
        x, cond = self.network_input(x_t, t, context)
        return self.model(x, hierarchy, cond, stage=stage)

    def forward(self, x_t: Tensor, hierarchy: Hierarchy, t: Tensor, context: Tensor | None = None,
                stage: int | None = None) -> Tensor:
        return self.level_outputs(x_t, hierarchy, t, context, stage)[-1]

    def denoise(self, x_t: Tensor, hierarchy: Hierarchy, t: Tensor, context: Tensor | None = None,
                stage: int | None = None) -> tuple[Tensor, Tensor]:
        return noise_lib.split(self.prediction, self(x_t, hierarchy, t, context, stage), x_t,
                               self.schedule.a(t), self.schedule.s(t))


def staged_denoise_fn(denoiser: StagedDenoiser, hierarchy: Hierarchy, ranges: Sequence[tuple[float, float]],
                      per_dof: Tensor, resolution: int | None = None) -> DenoiseFn:
    """``denoise(x_t [B, N_I, C], t [B]) -> (x̂_0, ε̂)`` on the finest level that runs stage
    :func:`active_stage` on P_j x_t and Wiener-estimates the details above j (module docstring);
    all times of a batch must be equal (the samplers' case)."""
    levels = geometry_for(denoiser.model, hierarchy, denoiser.model.unet.kind, denoiser.model.num_levels)
    finest = levels.finest_level
    resolution = finest if resolution is None else resolution
    schedule = denoiser.schedule

    def denoise(x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.all(t == t[0]):
            raise GeounetError("staged denoising runs one stage per call: give every batch element the same time")
        stage = active_stage(float(t[0]), ranges, resolution)
        a, s = float(schedule.a(t[0])), float(schedule.s(t[0]))
        projected = [x_t]  # P_i x_t for i = I .. stage
        for level in range(finest, stage, -1):
            projected.append(levels.restrict(projected[-1], level))
        x0, _ = denoiser.denoise(projected[-1], levels, t, stage=stage)
        for level in range(stage + 1, finest + 1):
            fine = projected[finest - level]
            detail = fine - levels.prolong(projected[finest - level + 1], level - 1)  # D_level x_t
            e = float(per_dof[level])
            x0 = levels.prolong(x0, level - 1) + a * e / (a**2 * e + s**2) * detail
        return x0, (x_t - a * x0) / s

    return denoise


def staged_sample(sampler: str, denoiser: StagedDenoiser, hierarchy: Hierarchy, ranges: Sequence[tuple[float, float]],
                  per_dof: Tensor, num: int, channels: int, steps: int, generator: torch.Generator | None = None,
                  resolution: int | None = None) -> Tensor:
    """``num`` samples ``[num, N_resolution, channels]`` at level ``resolution`` (default: the
    finest) from the staged sampler (module docstring) with ``sampler`` (ddim, heun or ddpm)."""
    levels = geometry_for(denoiser.model, hierarchy, denoiser.model.unet.kind, denoiser.model.num_levels)
    finest = levels.finest_level
    resolution = finest if resolution is None else resolution
    if not 0 <= resolution <= finest:
        raise GeounetError(f"resolution must be a level in [0, {finest}], got {resolution}")
    denoise = staged_denoise_fn(denoiser, levels, ranges, per_dof, resolution)
    samples = sample(sampler, denoise, denoiser.schedule, noise_lib.noise_std(levels), num, channels, steps,
                     generator)
    return levels.project(samples, finest, resolution)

