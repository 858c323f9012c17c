"""Run one experiment end to end: data, model, training, evaluation, files.

Writes into ``out_dir``: ``checkpoint.pt`` (atomic, resumable), ``metrics.json``
(config, parameter counts, test metrics, loss history, timings) and
``predictions.png`` (input, target, prediction and error for test samples). Under
``torchrun`` every process trains and only rank 0 writes files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from geounet.models.unet import build_unet
from geounet.nn.unet import UNet
from geounet.tasks import TaskStructure, prepare_task
from geounet.train.checkpoint import atomic_write_text
from geounet.train.config import ExperimentConfig
from geounet.train.distributed import is_main_process, main_process_first
from geounet.train.loop import evaluate, fit


def build_model(cfg: ExperimentConfig, task: TaskStructure) -> UNet:
    """The U-Net of ``cfg.model`` on the task's hierarchy."""
    m = cfg.model
    return build_unet(
        task.hierarchy,
        task.in_channels,
        task.out_channels,
        task.factory,
        variant=m.variant,
        width=m.width,
        channel_mult=m.channel_mult,
        decoder_blocks=m.decoder_blocks,
        encoder_blocks=m.encoder_blocks,
        bottleneck_blocks=m.bottleneck_blocks,
    )


def run_experiment(
    cfg: ExperimentConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train and evaluate ``cfg``; returns (and writes) the metrics."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with main_process_first():  # one process generates the cached data, the others read it
        task = prepare_task(cfg.task, cfg.model.num_levels)
    data_seconds = time.perf_counter() - started

    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, task.structure)
    checkpoint = out_dir / "checkpoint.pt"
    train_started = time.perf_counter()
    result = fit(
        model,
        task.train,
        cfg.train,
        test=task.test,
        checkpoint_path=checkpoint,
        resume=resume,
        progress=progress,
        extra_state={"config": cfg.to_dict()},
    )
    train_seconds = time.perf_counter() - train_started

    device = torch.device(cfg.train.device)
    test_metrics = evaluate(model, task.test, cfg.train.batch_size, device)
    if task.evaluate_extra is not None:
        model.eval()
        test_metrics.update(task.evaluate_extra(model, device))
    metrics = {
        "config": cfg.to_dict(),
        "parameters": model.parameter_counts(),
        "hierarchy": task.structure.hierarchy.describe(),
        "test": test_metrics,
        "steps": result.step,
        "seconds": {"data": round(data_seconds, 2), "train": round(train_seconds, 2)},
        "history": result.history,
    }
    if not is_main_process():
        return metrics
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))

    with torch.no_grad():
        model.eval()
        samples = task.test.inputs[:2].to(device)
        predictions = model(samples).cpu()
    task.plot(task.test.inputs[:2], task.test.targets[:2], predictions, str(out_dir / "predictions.png"))
    return metrics
