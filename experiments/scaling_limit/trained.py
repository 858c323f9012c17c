"""The high-resolution scaling gaps d_i = ‖U_{i+1} P_{i+1} v − ι U_i P_i v‖ / ‖U_{i+1} P_{i+1} v‖ of
TRAINED U-Nets, against the data's own gaps.

The models are the Multi-ResNet StagedUNets of the staged-training regression part
(experiments/staged_training/run.py: Navier-Stokes ω(t) -> ω(t + 1) on the 64 x 64 square,
4 Haar levels, width 8), trained the same way: ``e2e`` (finest loss only) and ``e2e_mr``
(multi-resolution loss, every head trained), each for ``--steps`` steps. U_i is the sub-U-Net
of levels 0..i with its own head on level i (``staged(P_i v, stage=i)[-1]``), v the task's test
inputs. References: the gaps ‖P_{i+1} y − ι P_i y‖ / ‖P_{i+1} y‖ of the test targets y (and of
the inputs v). Norms in the level's mass inner product, averaged over the 64 test samples.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/scaling_limit/trained.py

writes ``experiments/scaling_limit/trained.json``.
"""

from __future__ import annotations

import argparse
import json

import torch

from experiments.scaling_limit.run import HERE, level_outputs, scaling_gaps
from experiments.staged_training.run import (
    build_regression_model,
    end_to_end_variants,
    regression_errors,
    regression_task,
    regression_trainer,
    seconds_per_stage,
)


def staged_at(staged, hierarchy):
    """U_i x: the StagedUNet evaluated at stage i, its level-i head's output."""
    return lambda x, level: staged(x, hierarchy, stage=level)[-1]


def data_gaps(fields: torch.Tensor, hierarchy) -> list[float]:
    """‖P_{i+1} f − ι P_i f‖ / ‖P_{i+1} f‖ of ``fields [B, N, C]`` on the finest level."""
    return scaling_gaps(level_outputs(lambda x, level: x, hierarchy, fields), hierarchy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--width", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task, model_cfg = regression_task()
    test, hierarchy = task.test, task.test.hierarchy
    rows = [{"model": "data (targets P_i y)", "seed": None, "gaps": data_gaps(test.targets, hierarchy)},
            {"model": "data (inputs P_i v)", "seed": None, "gaps": data_gaps(test.inputs, hierarchy)}]
    for seed in args.seeds:
        for name, stages in end_to_end_variants(args.steps).items():
            model = build_regression_model(task, model_cfg, args.width, seed)
            seconds = seconds_per_stage(regression_trainer(task.train, seed), model, stages)
            rows.append({"model": name, "seed": seed, "cpu_s": seconds, "test_rel_l2": regression_errors(model, test),
                         "gaps": scaling_gaps(level_outputs(staged_at(model, hierarchy), hierarchy, test.inputs),
                                              hierarchy)})
            print(json.dumps(rows[-1]), flush=True)
    (HERE / "trained.json").write_text(json.dumps({
        "task": "navier_stokes_square (test split)", "hierarchy": "square Haar 64² with 4 levels",
        "model": "Multi-ResNet StagedUNet", "width": args.width, "steps": args.steps,
        "test_samples": len(test.inputs), "rows": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
