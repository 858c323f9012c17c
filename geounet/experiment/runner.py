"""Run one experiment end to end: data, model, training, evaluation, files.

Writes into ``out_dir``: ``checkpoint.pt`` (atomic, resumable), ``metrics.json``
(config, parameter counts, test metrics, loss history, timings: wall seconds of the data
and the training, and ``train_cpu``, the CPU seconds of the training summed over this
process's threads) and
``predictions.png`` (input, target, prediction and error for test samples), plus the
task's own files where it writes some (``PreparedTask.write_outputs``, e.g. a segmentation
run's class probabilities). A task may bring its own training loss and test report
(``PreparedTask.loss``, ``PreparedTask.test_metrics``); the default is the weighted MSE and
the relative L2 error. Under
``torchrun`` every process trains and only rank 0 writes files.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geounet.experiment.config import ExperimentConfig, config_from_dict
from geounet.experiment.memory import check_run_memory
from geounet.models.baselines import ChebUNet, DLWPHealpixUNet, FlatResNet, GraphUNetBaseline
from geounet.models.sfno_healpix import SFNOHealpix
from geounet.models.sizing import count_parameters, parameter_counts, size_to_parameters
from geounet.models.unet import build_unet, operator_factory
from geounet.nn.unet import UNet
from geounet.plot.fields import plot_test_predictions
from geounet.tasks import PreparedTask, TaskStructure, prepare_task, task_structure
from geounet.train.checkpoint import atomic_write_text
from geounet.train.distributed import is_main_process, main_process_first
from geounet.train.loop import TestMetrics, evaluate, fit, regression_loss
from geounet.train.run_folder import claim_run_folder, clear_run_files
from geounet.train.run_lock import run_lock


def build_model(cfg: ExperimentConfig, task: TaskStructure) -> nn.Module:
    """The model of ``cfg.model`` on the task's hierarchy.

    Baselines (``architecture != "unet"``) get the width whose parameter count is nearest
    the U-Net that ``cfg.model`` describes, so comparisons are at matched budgets.
    """
    unet = build_configured_unet(cfg, task)
    if cfg.model.architecture == "unet":
        return unet if task.wrap_model is None else task.wrap_model(unet)
    levels = {"depth": task.hierarchy.num_levels}  # the ChebConv and DLWP U-Nets use the same levels as the U-Net
    baseline, options = {
        "cheb_unet": (ChebUNet, levels),
        "dlwp": (DLWPHealpixUNet, levels | {"block": cfg.model.dlwp_block}),
        "graph_unet": (GraphUNetBaseline, {}),
        "flat_resnet": (FlatResNet, {}),
        # on the task's solver grid where it has one (shallow water), else 2 nside x 4 nside
        "sfno": (SFNOHealpix, {key: getattr(cfg.task, key) for key in ("nlat", "nlon") if hasattr(cfg.task, key)}),
    }[cfg.model.architecture]
    _, model = size_to_parameters(
        lambda width: baseline(task.hierarchy, task.in_channels, task.out_channels, width=width, **options),
        count_parameters(unet),
    )
    return model if task.wrap_model is None else task.wrap_model(model)


def test_evaluation(cfg: ExperimentConfig, task: PreparedTask, device: torch.device) -> TestMetrics:
    """``(model, data) -> metrics`` on test data: the task's own report where it has one, else
    the relative L2 / MSE of :func:`~geounet.train.loop.evaluate`."""
    if task.test_metrics is not None:
        return lambda model, data: task.test_metrics(model, data, device)
    return lambda model, data: evaluate(model, data, cfg.train.batch_size, device)


def evaluate_transfers(cfg: ExperimentConfig, model: nn.Module, task: PreparedTask,
                       device: torch.device) -> dict[str, dict[str, float]]:
    """Relative L2 / MSE of the trained ``model`` on each of the task's transfer tests (the
    same weights, another geometry passed in)."""
    return {name: evaluate(model, test.data, cfg.train.batch_size, device) for name, test in task.transfer.items()}


def build_configured_unet(cfg: ExperimentConfig, task: TaskStructure, channels: tuple[int, int] | None = None,
                          cond_dim: int | None = None) -> UNet:
    """The U-Net of ``cfg.model`` on the task's hierarchy, with the task's ``(in, out)``
    channels and conditioning unless ``channels`` / ``cond_dim`` are given (a denoiser); its
    operators are the task's factory's for ``model.operator = "message_passing"``, else the
    named operator's (:func:`~geounet.models.unet.operator_factory`)."""
    m = cfg.model
    in_channels, out_channels = channels or (task.in_channels, task.out_channels)
    factory = task.factory if m.operator == "message_passing" else operator_factory(task.hierarchy, m.operator)
    return build_unet(
        task.hierarchy,
        in_channels,
        out_channels,
        factory,
        variant=m.variant,
        width=m.width,
        channel_mult=m.channel_mult,
        decoder_blocks=m.decoder_blocks,
        encoder_blocks=m.encoder_blocks,
        encoder_channel_mult=m.encoder_channel_mult,
        bottleneck_blocks=m.bottleneck_blocks,
        cond_dim=task.cond_dim if cond_dim is None else cond_dim,
        zero_init=m.zero_init,
        checkpoint=m.checkpoint,
    )


def with_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` as the config this code reads, every key present (defaults filled in)."""
    return config_from_dict(raw).to_dict()


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
    progress: bool = True, force: bool = False
) -> dict[str, Any]:
    """Train and evaluate ``cfg``; returns (and writes) the metrics. ``out_dir`` must not hold
    another run unless ``overwrite``; the same run continues only with ``resume``
    (:func:`~geounet.train.run_folder.claim_run_folder`), and no other run may be writing
    into it (:func:`~geounet.train.run_lock.run_lock`, held for the whole run). A run whose
    memory estimate exceeds the memory available is refused unless ``force``
    (:mod:`geounet.experiment.memory`)."""
    out_dir = Path(out_dir)
    claim = functools.partial(claim_run_folder, out_dir, cfg.to_dict(), resume=resume, overwrite=overwrite,
                              complete=with_defaults)
    claim()  # refuse before writing anything
    if not force:
        check_run_memory(cfg, task_structure(cfg.task, cfg.model.num_levels))
    with run_lock(out_dir):
        claim()  # a run may have ended meanwhile
        if overwrite:
            clear_run_files(out_dir)
        return _train_and_evaluate(cfg, out_dir, resume, progress)


def _train_and_evaluate(cfg: ExperimentConfig, out_dir: Path, resume: bool, progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    with main_process_first():  # one process generates the cached data, the others read it
        task = prepare_task(cfg.task, cfg.model.num_levels)
    data_seconds = time.perf_counter() - started

    if is_main_process():
        for line in task.log:
            print(line)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, task.structure)
    checkpoint = out_dir / "checkpoint.pt"
    device = torch.device(cfg.train.device)
    train_started, train_cpu_started = time.perf_counter(), time.process_time()
    result = fit(
        model,
        task.train,
        cfg.train,
        test=task.test,
        checkpoint_path=checkpoint,
        resume=resume,
        progress=progress,
        extra_state={"config": cfg.to_dict(), "task_state": task.checkpoint_state},
        loss=task.loss or regression_loss,
        test_metrics=test_evaluation(cfg, task, device),
    )
    train_seconds, train_cpu_seconds = time.perf_counter() - train_started, time.process_time() - train_cpu_started

    # fit evaluates the test set at its last step; reuse that rather than evaluating twice
    test_metrics = {k.removeprefix("test_"): v for k, v in result.history[-1].items() if k.startswith("test_")}
    if task.evaluate_extra is not None:
        model.eval()
        test_metrics.update(task.evaluate_extra(model, device))
    test_metrics.update(evaluate_transfers(cfg, model, task, device))
    metrics = {
        "config": cfg.to_dict(),
        "parameters": parameter_counts(model),
        "hierarchy": task.structure.hierarchy.describe(),
        "test": test_metrics,
        **({"data": task.log} if task.log else {}),
        "steps": result.step,
        "seconds": {"data": round(data_seconds, 2), "train": round(train_seconds, 2),
                    "train_cpu": round(train_cpu_seconds, 2)},
        "history": result.history,
    }
    if not is_main_process():
        return metrics
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))

    model.eval()
    plot_test_predictions(model, task, device, str(out_dir / "predictions.png"))
    plot_transfers(cfg, model, task, out_dir)
    if task.write_outputs is not None:
        task.write_outputs(model, device, out_dir, test_metrics)
    return metrics


@torch.no_grad()
def plot_transfers(cfg: ExperimentConfig, model: nn.Module, task: PreparedTask, out_dir: Path) -> list[Path]:
    """``predictions_<group>_<geometry>.png`` for every transfer test that can be plotted."""
    written = []
    for name, test in task.transfer.items():
        if test.plot is None:
            continue
        device = next(model.parameters()).device
        inputs, targets = test.data.inputs[:1], test.data.targets[:1]
        prediction = model(inputs.to(device), test.data.hierarchy.to(device)).cpu()
        path = out_dir / f"predictions_{name.replace('/', '_')}.png"
        test.plot(inputs, targets, prediction, str(path))
        written.append(path)
    return written
