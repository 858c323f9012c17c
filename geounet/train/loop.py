"""The training loop of every kind of training: AdamW, warm-up + cosine schedule, atomic
checkpoints, exact resume, NaN guard, gradient clipping, progress, torchrun.

What is trained is set by three hooks: ``loss`` (default :func:`regression_loss`; a
diffusion run passes the denoising loss), ``stages`` (:mod:`geounet.train.stages`:
spans of steps with their own trainable parameters, loss and learning rate) and
``callbacks`` (:mod:`geounet.train.callbacks`, e.g. an EMA of the weights).

**Exact resume.** Batches are drawn without replacement per epoch from a permutation that
depends only on ``(seed, epoch)``, so the batch at any step is known without saved RNG
state. Any randomness of the loss (a diffusion loss's noise levels and noise) comes from
one CPU generator per process, seeded with ``train.seed`` (process r > 0: ``seed +
1_000_003 r``), whose states are part of the checkpoint. A checkpoint holds the model,
optimiser, schedule, generator states, step, history and callback states, so a run resumed
at step s sees exactly the batches, noise, learning rates and therefore losses of an
uninterrupted run. (Resumed under another number of processes, the generators restart from
seeds keyed by (seed, step, rank): still deterministic, no longer the interrupted stream.)

Under ``torch.distributed`` (launched by ``torchrun``; see :mod:`geounet.train.distributed`)
each of the W processes takes a contiguous 1/W slice of the same global batch and the
model is wrapped in ``DistributedDataParallel``, whose gradient average over equal
slices equals the single-process gradient of the whole batch: a W-process run of a
deterministic loss follows the same trajectory as a single-process run. Only rank 0 writes
checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from geounet.data.samples import Batch, Dataset, node_weights
from geounet.errors import GeounetError, MissingFileError, TrainingDivergedError
from geounet.functional.losses import relative_l2, weighted_mse
from geounet.nn.inputs import NonFiniteOutputError
from geounet.train.callbacks import Callback
from geounet.train.checkpoint import CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from geounet.train.config import TrainConfig
from geounet.train.memory import TRIM_EVERY, freed_memory_retained, release_free_heap
from geounet.train.stages import LossFn, TrainingStage, check_stages, stage_at, trainable

#: ``test_metrics(model, data) -> {name: value}``: what ``fit`` reports on its test data
TestMetrics = Callable[[nn.Module, Dataset], dict[str, float]]


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per logged step
    step: int = 0


def regression_loss(model: nn.Module, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
    """The weighted MSE (:func:`~geounet.functional.losses.weighted_mse` with
    :func:`~geounet.data.samples.node_weights`) of ``model(inputs, hierarchy)`` against the targets."""
    return weighted_mse(model(batch.inputs, batch.hierarchy), batch.targets, node_weights(batch.hierarchy))


def batch_indices(num_samples: int, batch_size: int, step: int, seed: int) -> Tensor:
    """The sample indices of ``step``: slices of a per-epoch permutation keyed by (seed, epoch)."""
    per_epoch = max(1, num_samples // batch_size)
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    permutation = torch.randperm(num_samples, generator=generator)
    return permutation[position * batch_size : (position + 1) * batch_size]


def _generator_seed(seed: int, rank: int, step: int = 0) -> int:
    """The loss generator's seed of process ``rank``: ``seed`` on rank 0 of a fresh run; after a
    resume under another number of processes, keyed by (seed, step, rank) as well."""
    if step == 0:
        return seed + 1_000_003 * rank
    digest = hashlib.sha256(f"geounet-loss-generator {seed} {step} {rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _generator_states(generator: torch.Generator, world: int) -> list[Tensor]:
    """Every process's generator state, in rank order (a collective under torchrun)."""
    if world == 1:
        return [generator.get_state()]
    states = [None] * world
    dist.all_gather_object(states, generator.get_state())
    return states


def _diverged(what: str, step: int, cfg: TrainConfig, checkpoint_path) -> str:
    """The message of a divergence at ``step``: the fix, and the checkpoint to go back to when one was written."""
    message = f"{what} at step {step}; lower train.lr (now {cfg.lr}) or check the data normalisation"
    if checkpoint_path and Path(checkpoint_path).is_file():
        return f"{message}; the last good checkpoint is {checkpoint_path}"
    return f"{message}; no checkpoint was written before it" if checkpoint_path else message


def _schedule(cfg: TrainConfig, steps: int) -> Callable[[int], float]:
    """The learning-rate factor at step k of a span of ``steps`` steps: linear warm-up, then cosine.

    The warm-up is ``(k + 1) / warmup_steps`` for k < ``warmup_steps`` whatever ``steps`` is: a
    warm-up at least as long as the span (``warmup_steps >= steps``) ramps up over the whole span
    and peaks at ``lr steps / warmup_steps`` on the last step, with no cosine phase (documented,
    not refused: short test runs of the packaged configs do exactly this).
    """

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine

    return factor


def _on_device(batch: Batch, device: torch.device) -> Batch:
    return dataclasses.replace(batch, inputs=batch.inputs.to(device), targets=batch.targets.to(device))


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


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (``model`` itself otherwise): where a
    loss hook reads attributes; the forward pass goes through the wrapper."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def _check_callbacks(callbacks: Sequence[Callback]) -> None:
    keys = [c.key for c in callbacks if c.state_dict() is not None]
    if len(set(keys)) != len(keys):
        raise GeounetError(f"callbacks with state need distinct keys, got {keys}")


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
    loss: LossFn = regression_loss,
    stages: Sequence[TrainingStage] | None = None,
    callbacks: Sequence[Callback] = (),
    test_metrics: TestMetrics | None = None,
) -> TrainResult:
    """Train ``model`` on ``train`` (any data set with ``len``, ``batch(indices)`` and ``to``:
    one shared geometry or one mesh per sample) for ``cfg.steps`` steps.

    Args:
        loss: ``loss(model, batch, generator) -> scalar`` (:data:`~geounet.train.stages.LossFn`).
        stages: consecutive stages whose steps add up to ``cfg.steps`` (default: one stage
            training every parameter on ``loss``); see :mod:`geounet.train.stages` for the
            optimiser policy. With stages each history row records its ``stage``.
        callbacks: :class:`~geounet.train.callbacks.Callback` objects, called at their events.
        test_metrics: ``(model, test) -> metrics`` reported as ``test_<name>`` every
            ``cfg.eval_every`` steps and at the end (default: :func:`evaluate`).

    Checkpoints (model, optimiser, scheduler, stage, loss generators, step, history, callback states and
    ``extra_state``) are written atomically to ``checkpoint_path`` every
    ``cfg.checkpoint_every`` steps and at the end. With ``resume=True`` training continues
    from that checkpoint. A non-finite loss raises :class:`TrainingDivergedError`.
    """
    plan = list(stages) if stages is not None else [TrainingStage(cfg.steps)]
    check_stages(plan, model, cfg.steps)
    _check_callbacks(callbacks)
    device = torch.device(cfg.device)
    model.to(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.batch_size % world:
        raise GeounetError(f"train.batch_size ({cfg.batch_size}) must be divisible by the {world} processes")
    if test_metrics is None:
        def test_metrics(model: nn.Module, data: Dataset) -> dict[str, float]:
            return evaluate(model, data, cfg.batch_size, device)

    result, state = TrainResult(), None
    if resume:
        if checkpoint_path is None or not Path(checkpoint_path).is_file():
            raise MissingFileError(f"--resume needs an existing checkpoint, {checkpoint_path} not found")
        state = load_checkpoint(checkpoint_path)
        load_model_state(model, state["model"], checkpoint_path)
        for callback in callbacks:
            if callback.state_dict() is not None:
                if callback.key not in state.get("callbacks", {}):
                    raise CheckpointError(f"checkpoint {checkpoint_path} holds no state of the {callback.key!r} "
                                          "callback; it was written by a run without it")
                callback.load_state_dict(state["callbacks"][callback.key])
        result = TrainResult(history=state["history"], step=state["step"])
    generator = torch.Generator().manual_seed(_generator_seed(cfg.seed, rank))
    saved = state.get("generators", []) if state is not None else []
    if len(saved) == world:
        generator.set_state(saved[rank])
    elif state is not None:
        generator.manual_seed(_generator_seed(cfg.seed, rank, result.step))
    for callback in callbacks:
        callback.on_train_start(model)

    train = train.to(device)  # the geometry moves once; samples move batch by batch
    requires_grad = [p.requires_grad for p in model.parameters()]
    current, optimiser, scheduler, trained = -1, None, None, model

    def checkpoint() -> None:
        if checkpoint_path is None:
            return
        generator_states = _generator_states(generator, world)
        if rank == 0:
            callback_states = {c.key: c.state_dict() for c in callbacks if c.state_dict() is not None}
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "stage": current,
                    "generators": generator_states,
                    "step": result.step,
                    "history": result.history,
                    "callbacks": callback_states,
                    **(extra_state or {}),
                },
                checkpoint_path,
            )
        for callback in callbacks:
            callback.on_checkpoint_written(Path(checkpoint_path), result.step)

    model.train()
    bar = tqdm(total=cfg.steps, initial=result.step, disable=not progress or rank > 0, desc="train", unit="step")
    allocation = contextlib.ExitStack()
    if cfg.retain_freed_memory:
        allocation.enter_context(freed_memory_retained())  # geounet.train.memory
    try:
        while result.step < cfg.steps:
            if stage_at(plan, result.step) != current:  # a new stage: its parameters, a fresh optimiser
                current = stage_at(plan, result.step)
                stage = plan[current]
                for p, flag in zip(model.parameters(), requires_grad, strict=True):
                    p.requires_grad_(flag)
                parameters = trainable(model, stage)
                lr = cfg.lr if stage.lr is None else stage.lr
                optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=cfg.weight_decay)
                scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, _schedule(cfg, stage.steps))
                if state is not None and state.get("stage", 0) == current:  # resumed mid-stage
                    optimiser.load_state_dict(state["optimizer"])
                    scheduler.load_state_dict(state["scheduler"])
                state = None
                if world > 1:  # unused parameters: a stage may leave some of its set without gradient
                    trained = DistributedDataParallel(model, find_unused_parameters=stages is not None)
                step_loss = stage.loss or loss
            idx = batch_indices(len(train), cfg.batch_size, result.step, cfg.seed)
            idx = idx.tensor_split(world)[rank]  # this process's slice of the global batch
            batch = _on_device(train.batch(idx), device)
            try:
                value = step_loss(trained, batch, generator)
            except NonFiniteOutputError:  # the model's own guard: reported below, on every process, as a NaN loss
                value = torch.full((), math.nan, device=device)
            logged = value.detach().clone()
            if world > 1:
                dist.all_reduce(logged)
                logged /= world
            if not torch.isfinite(logged):
                raise TrainingDivergedError(_diverged(f"the training loss became {logged.item()}", result.step, cfg,
                                                      checkpoint_path))
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(parameters, cfg.grad_clip)
            optimiser.step()
            scheduler.step()
            result.step += 1
            if result.step % TRIM_EVERY == 0:
                release_free_heap()  # mixed-mesh batches leave free heap behind (geounet.train.memory)
            for callback in callbacks:
                callback.on_step_end(model, result.step)
            row = {"step": result.step, "loss": logged.item(), "lr": scheduler.get_last_lr()[0]}
            if stages is not None:
                row["stage"] = current
            if test is not None and (result.step % cfg.eval_every == 0 or result.step == cfg.steps):
                row.update({f"test_{k}": v for k, v in test_metrics(model, test).items()})
            result.history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3e}")
            bar.update(1)
            if result.step % cfg.checkpoint_every == 0 or result.step == cfg.steps:
                checkpoint()
    finally:
        bar.close()
        allocation.close()
        for p, flag in zip(model.parameters(), requires_grad, strict=True):
            p.requires_grad_(flag)
    return result
