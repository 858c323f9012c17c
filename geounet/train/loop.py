"""The training loop: AdamW, warm-up + cosine schedule, atomic checkpoints, exact resume.

Batches are drawn without replacement per epoch from a permutation that depends only on
``(seed, epoch)``, so the batch at any step is known without saved RNG state: a run
resumed from a checkpoint at step s sees exactly the batches, learning rates and
therefore losses of an uninterrupted run with the same seed.

Under ``torch.distributed`` (launched by ``torchrun``; see :mod:`geounet.train.distributed`)
each of the W processes takes a contiguous 1/W slice of the same global batch and the
model is wrapped in ``DistributedDataParallel``, whose gradient average over equal
slices equals the single-process gradient of the whole batch: a W-process run follows
the same trajectory as a single-process run. Only rank 0 writes checkpoints.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from geounet.data.samples import Dataset, node_weights
from geounet.errors import GeounetError, MissingFileError, TrainingDivergedError
from geounet.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from geounet.train.config import TrainConfig

#: a test hook: ``GEOUNET_KILL_AFTER_CHECKPOINT=k`` kills the process with SIGKILL right
#: after it has written the checkpoint of step k (a crash at a known point, not a race)
KILL_AFTER_CHECKPOINT = "GEOUNET_KILL_AFTER_CHECKPOINT"


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per logged step
    step: int = 0


def weighted_mse(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared error Σ_n w_n |ŷ_n - y_n|², averaged over batch and channels.

    With ``weights`` = :func:`~geounet.data.samples.node_weights` (masses normalised per
    geometry) this is ∫ |ŷ - y|² / |domain| averaged over the geometries of the batch.
    """
    weights = (weights / weights.sum()).to(prediction.dtype)
    return torch.einsum("bnc,n->", (prediction - target) ** 2, weights) / (prediction.shape[0] * prediction.shape[2])


def relative_l2(prediction: Tensor, target: Tensor, mass: Tensor, components: Sequence[int] | None = None) -> Tensor:
    """Relative L2 errors ‖ŷ - y‖_M / ‖y‖_M over nodes and channels: one per sample, ``[B]``, or
    with ``components`` (node counts of the geometries of a union) one per sample and geometry,
    ``[B * len(components)]``."""
    weights = mass.to(prediction.dtype)
    error = torch.einsum("bnc,n->bn", (prediction - target) ** 2, weights)  # [B, N]
    norm = torch.einsum("bnc,n->bn", target**2, weights)
    if components is None:
        error, norm = error.sum(1), norm.sum(1)
    else:
        error = torch.stack([part.sum(1) for part in error.split(list(components), dim=1)], dim=1).reshape(-1)
        norm = torch.stack([part.sum(1) for part in norm.split(list(components), dim=1)], dim=1).reshape(-1)
    return torch.sqrt(error / norm.clamp_min(torch.finfo(norm.dtype).tiny))


def batch_indices(num_samples: int, batch_size: int, step: int, seed: int) -> Tensor:
    """The sample indices of ``step``: slices of a per-epoch permutation keyed by (seed, epoch)."""
    per_epoch = max(1, num_samples // batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    permutation = torch.randperm(num_samples, generator=generator)
    return permutation[position * batch_size : (position + 1) * batch_size]


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine

    return factor


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean ± std of the relative L2 error (per sample and geometry) and the weighted MSE over ``data``."""
    model.eval()
    errors, squared = [], []
    data = data.to(device)
    for start in range(0, len(data), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(data)))
        batch = data.batch(indices)
        x, y, hierarchy = batch.inputs.to(device), batch.targets.to(device), batch.hierarchy
        prediction = model(x, hierarchy)
        level = hierarchy.finest_level
        errors.append(relative_l2(prediction, y, hierarchy.mass(level), hierarchy.components(level)).cpu())
        squared.append(weighted_mse(prediction, y, node_weights(hierarchy)).cpu() * len(indices))
    model.train()
    errors = torch.cat(errors)
    return {
        "rel_l2_mean": errors.mean().item(),
        "rel_l2_std": errors.std().item() if len(errors) > 1 else 0.0,
        "mse": (torch.stack(squared).sum() / len(data)).item(),
    }


def fit(
    model: nn.Module,
    train: Dataset,
    cfg: TrainConfig,
    *,
    test: Dataset | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    extra_state: dict | None = None,
) -> TrainResult:
    """Train ``model`` on ``train`` for ``cfg.steps`` steps.

    Checkpoints (model, optimiser, scheduler, step, history and ``extra_state``) are written
    atomically to ``checkpoint_path`` every ``cfg.checkpoint_every`` steps and at the end.
    With ``resume=True`` training continues from that checkpoint.
    """
    device = torch.device(cfg.device)
    model.to(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.batch_size % world:
        raise GeounetError(f"train.batch_size ({cfg.batch_size}) must be divisible by the {world} processes")
    trained = DistributedDataParallel(model) if world > 1 else model
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(cfg))
    result = TrainResult()
    if resume:
        if checkpoint_path is None or not Path(checkpoint_path).is_file():
            raise MissingFileError(f"--resume needs an existing checkpoint, {checkpoint_path} not found")
        state = load_checkpoint(checkpoint_path)
        load_model_state(model, state["model"], checkpoint_path)
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        result = TrainResult(history=state["history"], step=state["step"])

    def checkpoint() -> None:
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": result.step,
                    "history": result.history,
                    **(extra_state or {}),
                },
                checkpoint_path,
            )

    train = train.to(device)  # the geometry moves once; samples move batch by batch
    model.train()
    bar = tqdm(total=cfg.steps, initial=result.step, disable=not progress or rank > 0, desc="train", unit="step")
    while result.step < cfg.steps:
        idx = batch_indices(len(train), cfg.batch_size, result.step, cfg.seed)
        idx = idx.tensor_split(world)[rank]  # this process's slice of the global batch
        batch = train.batch(idx)
        x, y, hierarchy = batch.inputs.to(device), batch.targets.to(device), batch.hierarchy
        loss = weighted_mse(trained(x, hierarchy), y, node_weights(hierarchy))
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        if not torch.isfinite(logged):
            raise TrainingDivergedError(
                f"the training loss became {logged.item()} at step {result.step}; lower train.lr "
                f"(now {cfg.lr}) or check the data normalisation"
                + (f"; the last good checkpoint is {checkpoint_path}" if checkpoint_path else "")
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimiser.step()
        scheduler.step()
        result.step += 1
        row = {"step": result.step, "loss": logged.item(), "lr": scheduler.get_last_lr()[0]}
        if test is not None and (result.step % cfg.eval_every == 0 or result.step == cfg.steps):
            row.update({f"test_{k}": v for k, v in evaluate(model, test, cfg.batch_size, device).items()})
        result.history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3e}")
        bar.update(1)
        if result.step % cfg.checkpoint_every == 0 or result.step == cfg.steps:
            checkpoint()
            if os.environ.get(KILL_AFTER_CHECKPOINT) == str(result.step):
                os.kill(os.getpid(), signal.SIGKILL)  # a crash at a known step, for the resume test
    bar.close()
    return result
