"""Summaries shared by the vector-field experiments: mean ± std over seeds per model, and
paired differences against the first model over the seeds they share.

    python experiments/vector_fields/common.py experiments/vector_fields/<name>.json   # (re)write its summary
"""

from __future__ import annotations

import json
import sys

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


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as handle:
            result = json.load(handle)
        result["summary"] = summarise(result["runs"], metric_names(result["runs"][0]))
        with open(path, "w") as handle:
            json.dump(result, handle, indent=1)
        print(json.dumps(result["summary"], indent=1))
