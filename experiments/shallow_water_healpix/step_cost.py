"""Training-step cost of two models of one config, measured interleaved in one run.

Equal wall-clock comparisons on a shared machine cannot use each run's own timer: the
load changes between runs. This script times optimiser steps of every model on the same
batches, alternating models round by round, in CPU seconds of this process (one thread),
and prints the steps each model gets in the time the reference spends on its steps:

    python experiments/shallow_water_healpix/step_cost.py \
        --config experiments/shallow_water_healpix/config.toml \
        --models unet:multiresnet sfno --reference-steps 900
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from geounet.data.samples import node_weights
from geounet.experiment.config import load_config, model_overrides
from geounet.experiment.runner import build_model
from geounet.functional.losses import weighted_mse
from geounet.models.sizing import count_parameters
from geounet.tasks import prepare_task
from geounet.train.loop import batch_indices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--models", nargs="+", required=True,
                        help="model specs as in experiments/compare.py (unet:<variant>, sfno, "
                        "'unet:multiresnet|task.train_rollout=2'); the first is the reference")
    parser.add_argument("--reference-steps", type=int, default=900, help="steps of the first model to match")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    models = {}
    for name in args.models:
        cfg = load_config(args.config, model_overrides(name))
        task = prepare_task(cfg.task, cfg.model.num_levels)  # a spec may change the data (train_rollout)
        torch.manual_seed(0)
        model = build_model(cfg, task.structure)
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=cfg.train.lr), task.train, cfg.train.batch_size)

    def train_steps(name: str, first: int) -> float:
        model, optimiser, data, batch_size = models[name]
        weights = node_weights(data.hierarchy)
        start = time.process_time()
        for step in range(first, first + args.steps_per_round):
            batch = data.batch(batch_indices(len(data), batch_size, step, 0))
            loss = weighted_mse(model(batch.inputs, batch.hierarchy), batch.targets, weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return (time.process_time() - start) / args.steps_per_round

    for name in models:  # warm-up: memoised geometry, allocator
        train_steps(name, 0)
    seconds = {name: [] for name in models}
    for round_index in range(args.rounds):
        for name in models:
            seconds[name].append(train_steps(name, (round_index + 1) * args.steps_per_round))

    reference = args.models[0]
    per_step = {name: statistics.median(values) for name, values in seconds.items()}
    budget = per_step[reference] * args.reference_steps
    report = {
        name: {"parameters": count_parameters(models[name][0]), "cpu_s_per_step": per_step[name],
               "cpu_s_per_step_min_max": [min(seconds[name]), max(seconds[name])],
               "cost_vs_reference": per_step[name] / per_step[reference],
               "equal_time_steps": round(budget / per_step[name])}
        for name in models
    }
    print(f"CPU seconds per training step (the config's batch size, one thread, median of {args.rounds} "
          f"rounds of {args.steps_per_round}); budget = {args.reference_steps} steps of {reference}")
    for name, row in report.items():
        print(f"  {name:24s} {row['parameters']:>8,d} params  {row['cpu_s_per_step']:.3f} s/step "
              f"({row['cpu_s_per_step_min_max'][0]:.3f}-{row['cpu_s_per_step_min_max'][1]:.3f})  "
              f"x{row['cost_vs_reference']:.2f}  -> {row['equal_time_steps']} steps")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
