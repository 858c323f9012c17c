"""Staged (coarse-to-fine) against end-to-end training at equal CPU time (paper §5.2).

Two tasks, each with a Multi-ResNet :class:`~geounet.nn.staged.StagedUNet` (a head per level):

- **regression**: 2-D Navier-Stokes vorticity on the 64 x 64 square (Haar, 4 levels),
  ω(t + 1) from ω(t) (experiments/square_navier_stokes/config.toml); test relative L2 error
  of every level's output against the target projected there.
- **diffusion**: shallow-water vorticity snapshots on HEALPix nside 32 (Haar, 4 levels;
  experiments/diffusion_sphere/config.toml), v-prediction under the VP cosine schedule;
  held-out denoising loss at fixed times and the per-level detail ("band") energies of
  DDIM samples against the data.

**Equal compute.** The unit is CPU seconds of training steps (``time.process_time``, one
thread). The end-to-end run takes ``--steps`` steps of the full U-Net; its cost per step
c_I and the per-step cost c_j of every stage j are measured before training (median of
timed steps on a throw-away copy), and the staged run gets the same total CPU time
B = steps · c_I: half of it to the finest stage, the other half split equally between the
coarser stages, n_j = share_j B / c_j steps. Step counts are fixed before training (so a
run is reproducible); the CPU seconds each run then really took are reported beside them.

Variants:

- regression: ``e2e`` (finest loss only), ``e2e_mr`` (end-to-end with the multi-resolution
  loss, so every head is trained), ``staged`` (stages 0..3, unfrozen, multi-resolution loss:
  the official code's schedule plus its MULTI_RES_LOSS option).
- diffusion: ``e2e`` (all noise levels), ``staged_frozen`` (stage j on its noise range
  T_j = [t_min, u_j] from :func:`geounet.diffusion.staged.stage_time_ranges`, coarser levels
  frozen), ``staged`` (the same ranges, unfrozen); with ``--variants`` also
  ``staged_official`` / ``staged_official_frozen`` (the official code's ranges
  T_j = [u_{j+1}, t_max], the finest stage on every time; ``rule="official"``). Staged models
  are evaluated and sampled with the staged sampler (stage j on (u_{j+1}, u_j], Wiener-estimated
  drowned details), which asks each stage only for times it trained on under either rule.

Usage: ``python experiments/staged_training/run.py {regression,diffusion} --seeds 0 1 2``
writes ``<part>.json``; ``python experiments/staged_training/summarise.py`` writes
tables.md and staged_training.png from the JSON files.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from geounet.data.forecast_samples import Snapshots
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.samplers import sample
from geounet.diffusion.schedules import VPCosine
from geounet.diffusion.staged import (
    StagedDenoiser,
    per_dof_energies,
    stage_time_ranges,
    staged_denoise_fn,
)
from geounet.experiment.config import load_config
from geounet.experiment.diffusion import load_config_file, read_config
from geounet.functional.losses import relative_l2, weighted_mse
from geounet.models import build_unet
from geounet.nn.staged import StagedUNet
from geounet.tasks import prepare_task
from geounet.train.staged import Stage, staged_config, train_staged, train_staged_diffusion

HERE = Path(__file__).parent
LEVELS = 4
FINEST = LEVELS - 1


def cpu_seconds(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def stage_costs(train_stage: Callable[[object, Stage], object], model, probe_steps: int) -> list[float]:
    """Median CPU seconds per step of every stage, measured on copies of ``model`` (after one warm-up step)."""
    costs = []
    for level in range(LEVELS):
        trial = copy.deepcopy(model)
        train_stage(trial, Stage(level, 1))
        times = [cpu_seconds(lambda trial=trial, level=level: train_stage(trial, Stage(level, 1)))
                 for _ in range(probe_steps)]
        costs.append(statistics.median(times))
    return costs


def staged_steps(costs: list[float], e2e_steps: int) -> list[int]:
    """Steps per stage for the CPU budget of ``e2e_steps`` full steps: half to the finest stage,
    half split equally between the coarser ones."""
    budget = e2e_steps * costs[FINEST]
    shares = [0.5 / FINEST] * FINEST + [0.5]
    return [max(1, round(share * budget / cost)) for share, cost in zip(shares, costs, strict=True)]


def seconds_per_stage(train_stage, model, stages: list[Stage]) -> list[float]:
    return [cpu_seconds(lambda stage=stage: train_stage(model, stage)) for stage in stages]


# ----------------------------------------------------------------------------------- regression

def regression_task():
    """The Navier-Stokes task on ``LEVELS`` levels and its config's model settings."""
    cfg = load_config(str(Path("experiments/square_navier_stokes/config.toml")))
    return prepare_task(cfg.task, LEVELS), cfg.model


def build_regression_model(task, model_cfg, width: int, seed: int) -> StagedUNet:
    """The Multi-ResNet StagedUNet of the regression part, initialised from ``seed``."""
    torch.manual_seed(seed)
    return StagedUNet(build_unet(task.train.hierarchy, 1, 1, task.structure.factory, variant="multiresnet",
                                 width=width, channel_mult=model_cfg.channel_mult,
                                 decoder_blocks=model_cfg.decoder_blocks, encoder_blocks=model_cfg.encoder_blocks,
                                 bottleneck_blocks=model_cfg.bottleneck_blocks))


def regression_trainer(train, seed: int) -> Callable[[StagedUNet, Stage], object]:
    """``train_stage(model, stage)``: one stage of regression training on ``train`` (batch 16)."""
    return lambda model, stage: train_staged(model, train, [stage], staged_config([stage], batch_size=16, seed=seed))


def end_to_end_variants(steps: int) -> dict[str, list[Stage]]:
    """``e2e`` (finest loss only) and ``e2e_mr`` (multi-resolution loss): ``steps`` full steps each."""
    return {"e2e": [Stage(FINEST, steps, lr=2e-3)],
            "e2e_mr": [Stage(FINEST, steps, lr=2e-3, multi_res_loss=True)]}


def regression_errors(staged: StagedUNet, test) -> list[float]:
    """Test relative L2 error of every level's output against the target projected there."""
    hierarchy = test.hierarchy
    with torch.no_grad():
        outputs = staged(test.inputs, hierarchy)
    return [relative_l2(outputs[j], hierarchy.project(test.targets, FINEST, j), hierarchy.mass(j)).mean().item()
            for j in range(LEVELS)]


def regression(seeds: list[int], steps: int, width: int, probe_steps: int) -> dict:
    task, model_cfg = regression_task()
    runs = []
    for seed in seeds:
        train_stage = regression_trainer(task.train, seed)
        costs = stage_costs(train_stage, build_regression_model(task, model_cfg, width, seed), probe_steps)
        plan = staged_steps(costs, steps)
        variants = {**end_to_end_variants(steps),
                    "staged": [Stage(j, n, lr=2e-3, multi_res_loss=True) for j, n in enumerate(plan)]}
        for name, stages in variants.items():
            model = build_regression_model(task, model_cfg, width, seed)
            seconds = seconds_per_stage(train_stage, model, stages)
            runs.append({"variant": name, "seed": seed, "steps": [s.steps for s in stages], "cpu_s": seconds,
                         "step_costs": costs, "test_rel_l2": regression_errors(model, task.test)})
            print(json.dumps(runs[-1]), flush=True)
    return {"task": "navier_stokes_square", "width": width, "e2e_steps": steps, "runs": runs}


# ------------------------------------------------------------------------------------ diffusion

def v_target(schedule, x0, eps, t):
    a, s = schedule.a(t).float(), schedule.s(t).float()
    return (a * eps - s * x0) / torch.sqrt(a**2 + s**2)


def diffusion(seeds: list[int], steps: int, width: int, probe_steps: int, threshold: float,
              eval_times: int, num_samples: int, sample_steps: int, names: list[str]) -> dict:
    cfg, _ = read_config(load_config_file(Path("experiments/diffusion_sphere/config.toml")))
    task = prepare_task(cfg.task, LEVELS)
    snapshots = Snapshots(task.train)  # the standardised vorticity states
    data = snapshots.batch(torch.arange(len(snapshots))).inputs  # [S, N, 1]
    held_out = Snapshots(task.test).batch(torch.arange(32)).inputs
    hierarchy = task.train.hierarchy
    schedule = VPCosine()
    per_dof = per_dof_energies(data, hierarchy)
    ranges = stage_time_ranges(per_dof.tolist(), schedule, threshold)
    official = stage_time_ranges(per_dof.tolist(), schedule, threshold, rule="official")
    all_times = [(schedule.t_min, schedule.t_max)] * LEVELS  # end-to-end: the finest stage at every t
    m = cfg.model

    def build(seed: int) -> StagedDenoiser:
        torch.manual_seed(seed)
        unet = build_unet(hierarchy, 1, 1, task.structure.factory, variant="multiresnet", width=width,
                          channel_mult=m.channel_mult, decoder_blocks=m.decoder_blocks,
                          encoder_blocks=m.encoder_blocks, bottleneck_blocks=m.bottleneck_blocks, cond_dim=32)
        return StagedDenoiser(StagedUNet(unet), schedule, "v", 32)

    # held-out loss at fixed times (midpoints of [t_min, t_max], the VP training law's quantiles), fixed noise
    times = [schedule.t_min + (k + 0.5) / eval_times * (schedule.t_max - schedule.t_min) for k in range(eval_times)]
    generator = torch.Generator().manual_seed(1234)
    eval_noise = [white_noise(noise_std(hierarchy), len(held_out), 1, generator) for _ in times]

    def evaluate(denoiser: StagedDenoiser, stage_ranges) -> tuple[list[float], dict]:
        denoise = staged_denoise_fn(denoiser, hierarchy, stage_ranges, per_dof)
        losses = []
        with torch.no_grad():
            for t_value, eps in zip(times, eval_noise, strict=True):
                t = torch.full((len(held_out),), t_value, dtype=torch.float64)
                x_t = schedule.marginal(held_out, t, eps)
                x0, eps_hat = denoise(x_t, t)
                predicted = v_target(schedule, x0, eps_hat, t[:1])
                losses.append(weighted_mse(predicted, v_target(schedule, held_out, eps, t[:1]),
                                           hierarchy.mass(FINEST)).item())
        start = time.process_time()
        samples = sample("ddim", denoise, schedule, noise_std(hierarchy), num_samples, 1, sample_steps,
                         torch.Generator().manual_seed(0))
        sample_seconds = time.process_time() - start
        energy_ratio = (per_dof_energies(samples, hierarchy) / per_dof).tolist()
        return losses, {"sample_cpu_s": sample_seconds, "band_energy_ratio": energy_ratio,
                        "band_energy_log_error": sum(abs(math.log(r)) for r in energy_ratio) / LEVELS}

    def trainer(stage_ranges, seed: int):
        return lambda model, stage: train_staged_diffusion(model, snapshots, [stage], stage_ranges,
                                                           staged_config([stage], batch_size=8, seed=seed))

    runs = []
    for seed in seeds:
        costs = stage_costs(trainer(ranges, seed), build(seed), probe_steps)
        plan = staged_steps(costs, steps)
        frozen = [Stage(j, n, lr=2e-3, freeze_coarser=j > 0) for j, n in enumerate(plan)]
        unfrozen = [Stage(j, n, lr=2e-3) for j, n in enumerate(plan)]
        variants = {  # name: (stages, training ranges, the sampler's switch ranges)
            "e2e": ([Stage(FINEST, steps, lr=2e-3)], all_times, all_times),
            "staged_frozen": (frozen, ranges, ranges),
            "staged": (unfrozen, ranges, ranges),
            "staged_official": (unfrozen, official, ranges),
            "staged_official_frozen": (frozen, official, ranges),
        }
        for name in names:
            stages, stage_ranges, switch_ranges = variants[name]
            model = build(seed)
            seconds = seconds_per_stage(trainer(stage_ranges, seed), model, stages)
            losses, sample_scores = evaluate(model, switch_ranges)
            runs.append({"variant": name, "seed": seed, "steps": [s.steps for s in stages], "cpu_s": seconds,
                         "step_costs": costs, "held_out_loss": losses, "mean_held_out_loss": sum(losses) / len(losses),
                         **sample_scores})
            print(json.dumps(runs[-1]), flush=True)
    return {"task": "shallow_water_healpix vorticity, nside 32", "width": width, "e2e_steps": steps,
            "threshold": threshold, "per_dof_energies": per_dof.tolist(), "stage_ranges": ranges,
            "official_stage_ranges": official, "eval_times": times,
            "eval_log_snr": [float(schedule.log_snr(torch.tensor(t, dtype=torch.float64))) for t in times],
            "num_samples": num_samples, "sample_steps": sample_steps, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["regression", "diffusion"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="end-to-end steps (the CPU budget)")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--probe-steps", type=int, default=5)
    parser.add_argument("--threshold", type=float, default=0.1, help="detail SNR threshold τ of the stage ranges")
    parser.add_argument("--variants", nargs="+", default=["e2e", "staged_frozen", "staged"],
                        help="diffusion variants; staged_official and staged_official_frozen train on the official "
                             "code's ranges")
    parser.add_argument("--out", type=Path, help="the JSON file to write (default: <part>.json here)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "regression":
        result = regression(args.seeds, args.steps or 300, args.width, args.probe_steps)
    else:
        result = diffusion(args.seeds, args.steps or 300, args.width, args.probe_steps, args.threshold,
                           eval_times=10, num_samples=16, sample_steps=32, names=args.variants)
    (args.out or HERE / f"{args.part}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
