"""Summaries shared by the vector-field experiments: mean ± std over seeds per model, and
paired differences against the first model over the seeds they share.

    # the runs of one or more result files (e.g. one per seed) into one file with their summary
    python experiments/vector_fields/common.py --out <name>.json <name>_seed0.json <name>_seed1.json ...
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


def summarise(runs: list[dict], metrics: list[str]) -> dict:
    """Per model: mean ± std of every metric and its parameter count; per model after the first:
    the paired difference (model - first model) of every metric over the shared seeds."""
    models = list(dict.fromkeys(r["model"] for r in runs))
    by_model = {m: {r["seed"]: r for r in runs if r["model"] == m} for m in models}
    summary = {}
    for model, seeds in by_model.items():
        summary[model] = {key: _mean_std([r[key] for r in seeds.values()]) for key in metrics}
        summary[model]["parameters"] = next(iter(seeds.values()))["parameters"]
        shared = sorted(set(seeds) & set(by_model[models[0]]))
        if model != models[0] and shared:
            summary[model][f"minus_{models[0]}"] = {
                key: _mean_std([seeds[s][key] - by_model[models[0]][s][key] for s in shared]) for key in metrics}
    return summary


def metric_names(run: dict) -> list[str]:
    return [key for key, value in run.items() if key not in ("model", "seed", "parameters")
            and isinstance(value, float)]


def main() -> None:
    parser = argparse.ArgumentParser(description="merge result files and summarise their runs")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = []
    for path in args.inputs:
        with open(path) as handle:
            results.append(json.load(handle))
    merged = {**results[0], "inputs": args.inputs, "runs": [run for result in results for run in result["runs"]]}
    merged["summary"] = summarise(merged["runs"], metric_names(merged["runs"][0]))
    with open(args.out, "w") as handle:
        json.dump(merged, handle, indent=1)
    print(json.dumps(merged["summary"], indent=1))


if __name__ == "__main__":
    main()
