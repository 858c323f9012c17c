"""CPU time of one training step (forward, backward, AdamW) of each compared model on the
forced-turbulence task, models interleaved in one process, one thread.

Sizes the convergence study: the models of ``converge.sh`` on the config's task with the
given overrides (the CI size by default: 32 x 32, width 8, batch 8). Prints the median and
min-max over ``--repeats`` rounds of ``--steps`` steps per model and writes them to ``--out``.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/square_forced_turbulence/converged/time_per_step.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from geounet.experiment.config import load_config, model_overrides
from geounet.experiment.runner import build_model
from geounet.tasks import prepare_task
from geounet.train.checkpoint import atomic_write_text
from geounet.train.loop import regression_loss

HERE = Path(__file__).parent
CI_SIZE = ["task.resolution=32", "task.num_train=64", "task.num_test=32", "model.width=8", "train.batch_size=8"]
MODELS = ["unet:residual", "unet:multiresnet", "unet:multiresnet_matched", "cheb_unet"]


def seconds_per_step(model: torch.nn.Module, optimiser: torch.optim.Optimizer, batch, steps: int) -> float:
    """Mean CPU time of ``steps`` optimiser steps on one fixed batch."""
    started = time.process_time()
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        regression_loss(model, batch).backward()
        optimiser.step()
    return (time.process_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=HERE.parent / "config.toml")
    parser.add_argument("--set", dest="overrides", action="append", default=None, metavar="SECTION.KEY=VALUE")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "time_per_step.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = CI_SIZE if args.overrides is None else args.overrides

    trainers = {}
    for name in MODELS:
        cfg = load_config(args.config, [*overrides, *model_overrides(name)])
        task = prepare_task(cfg.task, cfg.model.num_levels)
        torch.manual_seed(0)
        model = build_model(cfg, task.structure)
        batch = task.train.batch(torch.arange(cfg.train.batch_size))
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        seconds_per_step(model, optimiser, batch, 2)  # warm-up: allocator, lazy caches
        trainers[name] = (model, optimiser, batch)
    rounds = {name: [] for name in MODELS}
    for _ in range(args.repeats):  # interleaved, so load changes hit every model alike
        for name, (model, optimiser, batch) in trainers.items():
            rounds[name].append(seconds_per_step(model, optimiser, batch, args.steps))
    table = {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)} for name, t in rounds.items()}
    command = "OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/square_forced_turbulence/converged/time_per_step.py"
    if args.overrides is not None:
        command += "".join(f' --set "{o}"' for o in args.overrides)
    atomic_write_text(args.out, json.dumps({"command": command, "overrides": overrides, "steps": args.steps,
                                            "repeats": args.repeats, "seconds_per_step": table}, indent=2) + "\n")
    for name, row in table.items():
        print(f"{name:28s} {row['median_s']:.4f} s/step ({row['min_s']:.4f}-{row['max_s']:.4f})")


if __name__ == "__main__":
    main()
