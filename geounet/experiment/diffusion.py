"""Diffusion runs: train a denoiser on a task's fields with the training loop, and sample
from a trained run.

A diffusion config is a task config (``[task]``, ``[model]``; ``[train]`` is ignored) plus a
``[diffusion]`` table (:data:`DIFFUSION_DEFAULTS`). The model learns the distribution of
the task's training ``inputs`` (or ``targets``) fields, in the task's normalised units, on
any task's data: one shared geometry, or one mesh per sample (a batch is then the disjoint
union of its meshes, and the noise is drawn white on that union,
:mod:`geounet.diffusion.noise`).

Training is :func:`geounet.train.loop.fit` with the denoising loss
(:func:`geounet.diffusion.loss.denoising_loss`) as its loss hook and an EMA of the weights
as a callback (``ema``: ``off``, ``fixed``, ``warmup`` or ``power``, :func:`make_ema`):
Adam at the constant ``lr`` (gradient clipping with ``grad_clip`` > 0), on ``device``
(``auto``: CUDA when present), under torchrun, with checkpoints every ``checkpoint_every``
steps that a killed run resumes from exactly (``resume``). Every ``eval_every`` steps (and
at the end) the history records the held-out denoising loss on the task's test split
(:func:`held_out_loss`).

``RUN_DIR/checkpoint.pt`` holds the config, the training state and the EMA weights;
``geounet sample`` rebuilds the geometry from the config (no data needed; for a task of
many meshes the geometry of the task's structure, its first training mesh) and writes
samples to netCDF.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import torch
from torch import Tensor, nn

from geounet.data.forecast_samples import Snapshots
from geounet.data.samples import Batch, Dataset, node_weights
from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.ema import EMA, EMA_POLICIES
from geounet.diffusion.loss import denoising_loss
from geounet.diffusion.noise import check_prediction, noise_std
from geounet.diffusion.samplers import SAMPLERS, sample
from geounet.diffusion.schedules import make_schedule
from geounet.errors import GeounetError, MissingFileError
from geounet.experiment.config import ExperimentConfig, config_from_dict
from geounet.experiment.runner import build_configured_unet
from geounet.hierarchy.base import Hierarchy
from geounet.models.autoregressive import ForecastInputs
from geounet.train.callbacks import EMAUpdate
from geounet.train.checkpoint import CheckpointError, atomic_write_text, load_checkpoint
from geounet.train.config import ConfigError, TrainConfig, parse_override
from geounet.train.distributed import is_main_process, main_process_first
from geounet.train.loop import fit, unwrap
from geounet.train.run_folder import claim_run_folder
from geounet.train.run_lock import run_lock

#: the ``[diffusion]`` table's keys and their values when a config leaves them out
#: ``ema = "warmup"`` by default: in 600-step constant-lr runs (experiments/diffusion_ema) it gave the
#: Multi-ResNet the same mean sample error as the trained weights with a far smaller spread over seeds
#: (the residual U-Net's trained weights did better; no policy was best for both).
DIFFUSION_DEFAULTS = {
    "field": "inputs", "schedule": "vp_cosine", "prediction": "v", "cond_dim": 32, "steps": 1000,
    "batch_size": 16, "lr": 1e-3, "ema": "warmup", "ema_decay": 0.999, "ema_sigma_rel": 0.05, "seed": 0,
    "sampler": "ddim", "sample_steps": 50,
    "device": "auto", "checkpoint_every": 250, "eval_every": 250, "grad_clip": 0.0,
}
#: the seed of the held-out loss's noise: the same noise levels and noise at every evaluation
HELD_OUT_SEED = 1234


def read_config(raw: dict) -> tuple[ExperimentConfig, dict]:
    """Split a config dict into the task / model config and the checked ``[diffusion]`` table."""
    raw = dict(raw)
    diffusion = {**DIFFUSION_DEFAULTS, **raw.pop("diffusion", {})}
    unknown = sorted(set(diffusion) - set(DIFFUSION_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown [diffusion] keys {unknown}; it takes {sorted(DIFFUSION_DEFAULTS)}")
    if diffusion["field"] not in ("inputs", "targets"):
        raise ConfigError(f"diffusion.field must be 'inputs' or 'targets', got {diffusion['field']!r}")
    if diffusion["sampler"] not in SAMPLERS:
        raise ConfigError(f"diffusion.sampler must be one of {sorted(SAMPLERS)}, got {diffusion['sampler']!r}")
    for key in ("steps", "batch_size", "lr", "checkpoint_every", "eval_every"):
        if not diffusion[key] > 0:
            raise ConfigError(f"diffusion.{key} must be positive, got {diffusion[key]!r}")
    if not diffusion["grad_clip"] >= 0:
        raise ConfigError(f"diffusion.grad_clip must be >= 0 (0: no clipping), got {diffusion['grad_clip']!r}")
    if diffusion["ema"] not in ("off", *EMA_POLICIES):
        raise ConfigError(f"diffusion.ema must be one of {['off', *EMA_POLICIES]}, got {diffusion['ema']!r}")
    check_prediction(diffusion["prediction"])
    make_schedule(diffusion["schedule"])
    make_ema(nn.Linear(1, 1), diffusion)  # checks ema_decay / ema_sigma_rel
    return config_from_dict(raw), diffusion


def load_config_file(path: Path, overrides: list[str] = ()) -> dict:
    """The raw config dict of a TOML file, with ``section.key=value`` overrides (TOML values)."""
    if not path.is_file():
        raise MissingFileError(f"config file {path} does not exist")
    raw = tomllib.loads(path.read_text())
    for override in overrides:
        (section, key), value = parse_override(override)
        raw.setdefault(section, {})[key] = value
    return raw


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is present, else ``cpu``; any other name as it is."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def build_denoiser(cfg: ExperimentConfig, diffusion: dict, structure, channels: int) -> Denoiser:
    unet = build_configured_unet(cfg, structure, (channels, channels), diffusion["cond_dim"])  # every [model] key
    return Denoiser(unet, make_schedule(diffusion["schedule"]), diffusion["prediction"], diffusion["cond_dim"])


def make_ema(denoiser: nn.Module, diffusion: dict) -> EMA:
    """The EMA of ``denoiser`` under the table's ``ema`` policy (:mod:`geounet.diffusion.ema`):
    ``fixed`` / ``warmup`` with ``ema_decay``, ``power`` with ``ema_sigma_rel``, ``off`` (decay 0:
    the EMA copy follows the trained weights, so sampling uses them)."""
    if diffusion["ema"] == "off":
        return EMA(denoiser, 0.0, warmup=False)
    if diffusion["ema"] == "power":
        return EMA(denoiser, diffusion["ema_decay"], sigma_rel=diffusion["ema_sigma_rel"])
    return EMA(denoiser, diffusion["ema_decay"], warmup=diffusion["ema"] == "warmup")


def training_config(diffusion: dict) -> TrainConfig:
    """The loop's settings of a ``[diffusion]`` table: Adam (no weight decay) at a constant
    learning rate, clipped at ``grad_clip`` (0: not clipped)."""
    return TrainConfig(
        steps=diffusion["steps"], batch_size=diffusion["batch_size"], lr=diffusion["lr"], weight_decay=0.0,
        warmup_steps=0, min_lr_ratio=1.0, grad_clip=diffusion["grad_clip"], eval_every=diffusion["eval_every"],
        checkpoint_every=diffusion["checkpoint_every"], seed=diffusion["seed"],
        device=resolve_device(diffusion["device"]),
    )


def denoising_step_loss(field: str):
    """The loop's loss hook: :func:`~geounet.diffusion.loss.denoising_loss` of the batch's
    ``field`` on the batch's geometry, weighted by :func:`~geounet.data.samples.node_weights`."""

    def loss(model: nn.Module, batch: Batch, generator: torch.Generator) -> Tensor:
        return denoising_loss(unwrap(model), getattr(batch, field), batch.hierarchy, generator,
                              weights=node_weights(batch.hierarchy), network=model)

    return loss


def held_out_loss(field: str, batch_size: int, device: torch.device):
    """``(denoiser, data) -> {"loss": ...}``: the mean denoising loss over ``data`` in batches of
    ``batch_size``, with noise levels and noise from a generator seeded with
    :data:`HELD_OUT_SEED` (the same draws at every evaluation, so values are comparable)."""

    @torch.no_grad()
    def metrics(denoiser: nn.Module, data: Dataset) -> dict[str, float]:
        denoiser.eval()
        data = data.to(device)
        generator = torch.Generator().manual_seed(HELD_OUT_SEED)
        total = 0.0
        for start in range(0, len(data), batch_size):
            indices = torch.arange(start, min(start + batch_size, len(data)))
            batch = data.batch(indices)
            x0 = getattr(batch, field).to(device)
            total += float(denoising_loss(denoiser, x0, batch.hierarchy, generator,
                                          weights=node_weights(batch.hierarchy))) * len(indices)
        denoiser.train()
        return {"loss": total / len(data)}

    return metrics


def train_run(raw: dict, out: Path, progress: bool = True, resume: bool = False) -> dict:
    """Train (or with ``resume`` continue) the diffusion model of config ``raw`` and write
    ``out/checkpoint.pt`` and ``out/losses.json``; returns a summary. The folder is locked
    for the run (:func:`~geounet.train.run_lock.run_lock`)."""
    cfg, diffusion = read_config(raw)
    _check_out(out, raw, resume)  # refuse before writing anything
    with run_lock(out):
        _check_out(out, raw, resume)  # a run may have ended meanwhile
        return _train(cfg, diffusion, raw, out, progress, resume)


def _with_defaults(raw: dict) -> dict:
    """``raw`` as the config this code reads, every key present (defaults filled in)."""
    cfg, diffusion = read_config(raw)
    return {**cfg.to_dict(), "diffusion": diffusion}


def _check_out(out: Path, raw: dict, resume: bool) -> None:
    if resume:
        claim_run_folder(out, raw, resume=True, overwrite=False, complete=_with_defaults)  # the same [task], [model]
    elif (out / "checkpoint.pt").exists():
        raise GeounetError(f"{out} already holds a diffusion run (checkpoint.pt); pass --resume to continue it or "
                           "choose another --out")


def _train(cfg: ExperimentConfig, diffusion: dict, raw: dict, out: Path, progress: bool, resume: bool) -> dict:
    from geounet.tasks import prepare_task

    with main_process_first():  # one process generates the cached data, the others read it
        task = prepare_task(cfg.task, cfg.model.num_levels)
    field = diffusion["field"]
    train, test = (plain_fields(data) for data in (task.train, task.test))
    channels = getattr(train.batch(torch.arange(1)), field).shape[-1]
    torch.manual_seed(diffusion["seed"])
    denoiser = build_denoiser(cfg, diffusion, task.structure, channels)
    ema = make_ema(denoiser, diffusion)
    train_cfg = training_config(diffusion)
    result = fit(
        denoiser, train, train_cfg, test=test, checkpoint_path=out / "checkpoint.pt", resume=resume,
        progress=progress, extra_state={"config": raw, "channels": channels}, loss=denoising_step_loss(field),
        callbacks=[EMAUpdate(ema)],
        test_metrics=held_out_loss(field, train_cfg.batch_size, torch.device(train_cfg.device)),
    )
    losses = [row["loss"] for row in result.history]
    held_out = [{"step": row["step"], "loss": row["test_loss"]} for row in result.history if "test_loss" in row]
    if is_main_process():
        atomic_write_text(out / "losses.json", json.dumps({"loss": losses, "test_loss": held_out}))
    return {"steps": result.step, "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "test_loss": held_out[-1]["loss"] if held_out else float("nan"), "device": train_cfg.device}


def plain_fields(data):
    """``data``, or for a forecast data set (structured inputs) its
    :class:`~geounet.data.forecast_samples.Snapshots`: a denoiser learns the standardised states."""
    if isinstance(data.batch(torch.arange(1)).inputs, ForecastInputs):
        return Snapshots(data)
    return data


def load_run(run_dir: Path) -> tuple[Denoiser, Hierarchy, ExperimentConfig, dict]:
    """The EMA denoiser (eval mode) of the run in ``run_dir``, the geometry it samples on
    (rebuilt from the config, no data needed), its task / model config and ``[diffusion]`` table."""
    from geounet.tasks import task_structure

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise MissingFileError(f"{run_dir} holds no diffusion checkpoint.pt; train one with `geounet diffuse`")
    state = load_checkpoint(path)  # hash-verified, weights_only
    if "config" not in state or "channels" not in state:
        raise CheckpointError(f"{path} is not the checkpoint of a `geounet diffuse` run")
    cfg, diffusion = read_config(state["config"])
    structure = task_structure(cfg.task, cfg.model.num_levels)
    denoiser = build_denoiser(cfg, diffusion, structure, state["channels"])
    if "callbacks" in state:
        ema = make_ema(denoiser, diffusion)
        ema.load_state_dict(state["callbacks"]["ema"])
        denoiser.load_state_dict(ema.module.state_dict())
    else:  # written before diffusion trained through fit: the EMA weights alone
        denoiser.load_state_dict(state["ema"])
    return denoiser.eval(), structure.hierarchy, cfg, {**diffusion, "channels": state["channels"]}


def _check_counts(num: int, steps: int | None) -> None:
    """``num`` samples and ``steps`` sampling steps (None: the run's diffusion.sample_steps) must be >= 1."""
    if num < 1:
        raise GeounetError(f"--num must be >= 1, got {num}")
    if steps is not None and steps < 1:
        raise GeounetError(f"--steps (sampling steps) must be >= 1, got {steps}; leave it out for the run's "
                           "diffusion.sample_steps")


def draw_samples(denoiser: Denoiser, hierarchy: Hierarchy, diffusion: dict, num: int, seed: int = 0,
                 sampler: str | None = None, steps: int | None = None, batch_size: int = 32) -> Tensor:
    """``num`` samples ``[num, N, C]`` of a loaded run (:func:`load_run`), drawn ``batch_size`` at a
    time from one generator seeded with ``seed``: the same (seed, batch_size) gives the same samples."""
    _check_counts(num, steps)
    if batch_size < 1:
        raise GeounetError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    sizes = [batch_size] * (num // batch_size) + ([num % batch_size] if num % batch_size else [])
    steps = diffusion["sample_steps"] if steps is None else steps
    return torch.cat([
        sample(sampler or diffusion["sampler"], lambda x, t: denoiser.denoise(x, hierarchy, t), denoiser.schedule,
               noise_std(hierarchy), count, diffusion["channels"], steps, generator)
        for count in sizes
    ])


def sample_run(run_dir: Path, num: int, seed: int = 0, sampler: str | None = None, steps: int | None = None):
    """``num`` samples ``[num, N, C]`` (float32) of the run in ``run_dir`` and the geometry they live on."""
    _check_counts(num, steps)
    denoiser, hierarchy, cfg, diffusion = load_run(run_dir)
    return draw_samples(denoiser, hierarchy, diffusion, num, seed, sampler, steps), hierarchy, cfg
