"""Compare models on a segmentation task over several training seeds: mean IoU and paired differences.

Every model (``unet:<variant>`` or a baseline architecture sized to the U-Net's parameter
count, as in ``experiments/compare.py``) is trained with ``geounet``'s runner for every
seed (the seed sets the initial weights and the batch order; the data are the same). Writes
``results.json`` (per model: mean IoU per seed, mean ± std, per-class IoU and boundary
distances averaged over seeds; the trivial baselines; paired differences of mean IoU against
``--reference`` over the shared seeds) and ``results.md`` into ``--results``.

    python experiments/segmentation/compare_segmentation.py --config part_segmentation \\
        --results experiments/segmentation/part --runs runs/segmentation
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from geounet import configs
from geounet.experiment.config import load_config, model_overrides
from geounet.experiment.runner import run_experiment
from geounet.train.checkpoint import atomic_write_text

MODELS = ["unet:multiresnet", "unet:residual", "unet:multiresnet_matched", "cheb_unet"]


def spread(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def run(config: str, overrides: list[str], model: str, seed: int, runs: Path) -> dict:
    """The metrics of ``model`` trained with ``seed`` (read back when its run folder holds the same config)."""
    cfg = load_config(configs.resolve(config), [*overrides, *model_overrides(model), f"train.seed={seed}"])
    out = runs / cfg.task.name / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', model)}-seed{seed}"
    path = out / "metrics.json"
    if path.is_file():
        metrics = json.loads(path.read_text())
        if metrics["config"] == json.loads(json.dumps(cfg.to_dict())) and metrics["steps"] == cfg.train.steps:
            return metrics
    return run_experiment(cfg, out, progress=False, overwrite=True)


def summary(runs: dict[int, dict]) -> dict:
    """Mean IoU per seed and over seeds, the other per-class scores averaged over seeds."""
    tests = [m["test"] for m in runs.values()]
    shared = set.intersection(*(set(t) for t in tests))
    scores = sorted(k for k in shared if k.startswith(("iou_", "dice_", "boundary_")))
    return {
        "mean_iou_per_seed": {seed: m["test"]["mean_iou"] for seed, m in runs.items()},
        "mean_iou": spread([t["mean_iou"] for t in tests]),
        "accuracy": spread([t["accuracy"] for t in tests]),
        "per_class": {k: statistics.mean(t[k] for t in tests) for k in scores},
        "parameters": next(iter(runs.values()))["parameters"]["total"],
        "train_seconds": statistics.mean(m["seconds"]["train"] for m in runs.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a config file or packaged config name")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--reference", default="unet:multiresnet", help="the model paired differences are taken to")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--runs", type=Path, default=Path("runs/segmentation"))
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args()

    runs = {}
    for model in args.models:
        runs[model] = {}
        for seed in args.seeds:
            runs[model][seed] = run(args.config, args.overrides, model, seed, args.runs)
            print(f"{model} seed {seed}: mean IoU {runs[model][seed]['test']['mean_iou']:.4f}", flush=True)
    rows = {model: summary(model_runs) for model, model_runs in runs.items()}
    reference = runs[args.reference]
    for model, model_runs in runs.items():
        seeds = sorted(set(model_runs) & set(reference))
        differences = [model_runs[s]["test"]["mean_iou"] - reference[s]["test"]["mean_iou"] for s in seeds]
        rows[model]["paired_difference_to_reference"] = {**spread(differences), "seeds": seeds}
    first = next(iter(reference.values()))
    command = (f"python experiments/segmentation/compare_segmentation.py --config {args.config} --results "
               f"{args.results} --models {' '.join(args.models)} --seeds {' '.join(map(str, args.seeds))}"
               + "".join(f' --set "{o}"' for o in args.overrides))
    results = {
        "command": command,
        "config": first["config"],
        "reference": args.reference,
        "baselines": {k: first["test"][k] for k in ("majority_class_mean_iou", "pointwise_baseline_mean_iou")},
        "data": first.get("data", []),
        "models": rows,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "results.json", json.dumps(results, indent=2))
    lines = [f"`{command}`", "", *[f"- {line}" for line in results["data"]], "",
             f"| model | parameters | test mean IoU (mean ± std over seeds {args.seeds}) | paired difference to "
             f"{args.reference} |", "|---|---|---|---|"]
    for model, row in rows.items():
        iou, diff = row["mean_iou"], row["paired_difference_to_reference"]
        lines.append(f"| {model} | {row['parameters']:,} | {iou['mean']:.4f} ± {iou['std']:.4f} | "
                     f"{diff['mean']:+.4f} ± {diff['std']:.4f} |")
    baselines = results["baselines"]
    lines += ["", f"Trivial baselines (test mean IoU): majority class {baselines['majority_class_mean_iou']:.4f}, "
              f"best pointwise classifier of the inputs {baselines['pointwise_baseline_mean_iou']:.4f}."]
    atomic_write_text(args.results / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
