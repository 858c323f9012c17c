"""Train a diffusion model on a task's fields, and sample from a trained run.

A diffusion config is a task config (``[task]``, ``[model]``; ``[train]`` is ignored) plus a
``[diffusion]`` table (:data:`DIFFUSION_DEFAULTS`). The model learns the distribution of
the task's training ``inputs`` (or ``targets``) fields, in the task's normalised units, on
its one shared geometry: tasks whose samples live on different meshes are refused.

``RUN_DIR/checkpoint.pt`` holds the config and the EMA weights; ``geounet sample`` rebuilds
the geometry from the config (no data needed) and writes samples to netCDF.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import torch
from torch import Tensor

from geounet.data.samples import Dataset
from geounet.diffusion.denoiser import Denoiser
from geounet.diffusion.ema import EMA
from geounet.diffusion.loss import denoising_loss
from geounet.diffusion.noise import check_prediction, noise_std
from geounet.diffusion.samplers import SAMPLERS, sample
from geounet.diffusion.schedules import make_schedule
from geounet.errors import GeounetError, MissingFileError
from geounet.experiment.config import ExperimentConfig, config_from_dict
from geounet.experiment.runner import build_configured_unet
from geounet.hierarchy.base import Hierarchy
from geounet.train.checkpoint import atomic_write_text, load_checkpoint, save_checkpoint
from geounet.train.config import ConfigError, parse_override
from geounet.train.loop import batch_indices

DIFFUSION_DEFAULTS = {
    "field": "inputs", "schedule": "vp_cosine", "prediction": "v", "cond_dim": 32, "steps": 1000,
    "batch_size": 16, "lr": 1e-3, "ema_decay": 0.999, "seed": 0, "sampler": "ddim", "sample_steps": 50,
}


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
    check_prediction(diffusion["prediction"])
    make_schedule(diffusion["schedule"])
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


def build_denoiser(cfg: ExperimentConfig, diffusion: dict, structure, channels: int) -> Denoiser:
    unet = build_configured_unet(cfg, structure, (channels, channels), diffusion["cond_dim"])  # every [model] key
    return Denoiser(unet, make_schedule(diffusion["schedule"]), diffusion["prediction"], diffusion["cond_dim"])


def train_run(raw: dict, out: Path, progress: bool = True) -> dict:
    """Train the diffusion model of config ``raw`` and write ``out/checkpoint.pt`` and ``out/losses.json``."""
    from geounet.tasks import prepare_task

    cfg, diffusion = read_config(raw)
    if (out / "checkpoint.pt").exists():
        raise GeounetError(f"{out} already holds a diffusion run (checkpoint.pt); choose another --out")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    if not isinstance(task.train, Dataset):
        raise GeounetError(f"diffusion runs need a task whose samples share one geometry; {cfg.task.name} has "
                         "one mesh per sample")
    fields = getattr(task.train, diffusion["field"])  # [S, N, C]
    hierarchy = task.train.hierarchy
    torch.manual_seed(diffusion["seed"])
    denoiser = build_denoiser(cfg, diffusion, task.structure, fields.shape[-1])
    ema = EMA(denoiser, diffusion["ema_decay"])
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=diffusion["lr"])
    generator = torch.Generator().manual_seed(diffusion["seed"])
    losses = []
    for step in range(diffusion["steps"]):
        index = batch_indices(len(fields), diffusion["batch_size"], step, diffusion["seed"])
        loss = denoising_loss(denoiser, fields[index], hierarchy, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        ema.update(denoiser)
        losses.append(float(loss.detach()))
        if progress and (step + 1) % max(1, diffusion["steps"] // 10) == 0:
            print(f"step {step + 1}/{diffusion['steps']}  loss {sum(losses[-50:]) / len(losses[-50:]):.4f}")
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"config": raw, "channels": fields.shape[-1], "ema": ema.module.state_dict()},
                    out / "checkpoint.pt")  # atomic, hash-verified
    atomic_write_text(out / "losses.json", json.dumps({"loss": losses}))
    return {"steps": len(losses), "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:]))}


def load_run(run_dir: Path) -> tuple[Denoiser, Hierarchy, ExperimentConfig, dict]:
    """The EMA denoiser (eval mode) of the run in ``run_dir``, the geometry it was trained on
    (rebuilt from the config, no data needed), its task / model config and ``[diffusion]`` table."""
    from geounet.tasks import task_structure

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise MissingFileError(f"{run_dir} holds no diffusion checkpoint.pt; train one with `geounet diffuse`")
    state = load_checkpoint(path)  # hash-verified, weights_only
    cfg, diffusion = read_config(state["config"])
    structure = task_structure(cfg.task, cfg.model.num_levels)
    denoiser = build_denoiser(cfg, diffusion, structure, state["channels"])
    denoiser.load_state_dict(state["ema"])
    return denoiser.eval(), structure.hierarchy, cfg, {**diffusion, "channels": state["channels"]}


def draw_samples(denoiser: Denoiser, hierarchy: Hierarchy, diffusion: dict, num: int, seed: int = 0,
                 sampler: str | None = None, steps: int | None = None, batch_size: int = 32) -> Tensor:
    """``num`` samples ``[num, N, C]`` of a loaded run (:func:`load_run`), drawn ``batch_size`` at a
    time from one generator seeded with ``seed``: the same (seed, batch_size) gives the same samples."""
    if num < 1:
        raise GeounetError(f"--num must be >= 1, got {num}")
    if batch_size < 1:
        raise GeounetError(f"batch_size must be >= 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    sizes = [batch_size] * (num // batch_size) + ([num % batch_size] if num % batch_size else [])
    return torch.cat([
        sample(sampler or diffusion["sampler"], lambda x, t: denoiser.denoise(x, hierarchy, t), denoiser.schedule,
               noise_std(hierarchy), count, diffusion["channels"], steps or diffusion["sample_steps"], generator)
        for count in sizes
    ])


def sample_run(run_dir: Path, num: int, seed: int = 0, sampler: str | None = None, steps: int | None = None):
    """``num`` samples ``[num, N, C]`` (float32) of the run in ``run_dir`` and the geometry they live on."""
    if num < 1:
        raise GeounetError(f"--num must be >= 1, got {num}")
    denoiser, hierarchy, cfg, diffusion = load_run(run_dir)
    return draw_samples(denoiser, hierarchy, diffusion, num, seed, sampler, steps), hierarchy, cfg
