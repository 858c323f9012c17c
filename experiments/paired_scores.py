"""Any test scores of finished runs, mean ± std over seeds and paired against a reference model.

compare.py pairs the one-step relative L2 error only; forecasting comparisons are also judged
on rollout scores at chosen leads. This reads run folders (``metrics.json`` of ``geounet
train`` or compare.py; the seed is the run's ``train.seed``), groups them by ``--model LABEL
RUN_DIR...`` (the first group is the reference) and reports, for every ``--scores`` entry,

    mean ± std over the seeds of each model, and  mean [95 % t-interval]  of the per-seed
    difference model - reference over the seeds both share (geounet.analysis.paired).

A score is a key of ``metrics["test"]``: a number (``rel_l2_mean``) or a per-lead list picked
by ``KEY@HOURS`` (``model_rmse_h@24``: the entry whose ``lead_hours`` is 24; ``@last`` is the
longest lead).

    python experiments/paired_scores.py --scores rel_l2_mean model_rmse_h@24 model_acc_vorticity@24 \\
        --model "Multi-ResNet" runs/x/unet-multiresnet-seed* --model DLWP runs/x/dlwp-seed* --out paired.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from geounet.analysis.paired import format_difference, paired_by_seed


def score_value(test: dict, score: str) -> float:
    """The number ``score`` names in a run's test metrics (``KEY`` or ``KEY@HOURS`` / ``KEY@last``)."""
    key, _, lead = score.partition("@")
    if key not in test:
        raise KeyError(f"the runs' test metrics have no {key!r}; choose from {sorted(test)}")
    if not lead:
        return float(test[key])
    leads = test["lead_hours"]
    index = len(leads) - 1 if lead == "last" else [float(h) for h in leads].index(float(lead))
    return float(test[key][index])


def read_model(run_dirs: list[Path], scores: list[str]) -> dict:
    """``{"runs", "parameters", "steps", "scores": {score: {seed: value}}}`` of one model's runs."""
    runs = [json.loads((run / "metrics.json").read_text()) for run in run_dirs]
    seeds = [m["config"]["train"]["seed"] for m in runs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"two runs of one model share a seed: {[str(r) for r in run_dirs]}")
    return {
        "runs": [str(run) for run in run_dirs],
        "parameters": sorted({m["parameters"]["total"] for m in runs}),
        "steps": sorted({m["steps"] for m in runs}),
        "scores": {score: {seed: score_value(m["test"], score) for seed, m in zip(seeds, runs, strict=True)}
                   for score in scores},
    }


def summary_rows(models: dict[str, dict], scores: list[str]) -> list[str]:
    lines = ["| model | params | steps | seeds | " + " | ".join(scores) + " |",
             "|---|---:|---:|---|" + "---:|" * len(scores)]
    for label, model in models.items():
        cells = []
        for score in scores:
            values = list(model["scores"][score].values())
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4g} ± {spread:.2g}")
        seeds = ", ".join(map(str, sorted(model["scores"][scores[0]])))
        params = "/".join(f"{p:,}" for p in model["parameters"])
        steps = "/".join(map(str, model["steps"]))
        lines.append(f"| {label} | {params} | {steps} | {seeds} | " + " | ".join(cells) + " |")
    return lines


def paired_rows(models: dict[str, dict], scores: list[str]) -> tuple[list[str], dict]:
    reference, *others = models
    lines = ["", f"Paired differences (model - {reference}, shared seeds; mean [95 % t-interval]):", "",
             "| model | " + " | ".join(scores) + " |", "|---|" + "---|" * len(scores)]
    results = {}
    for label in others:
        results[label] = {score: paired_by_seed(models[label]["scores"][score], models[reference]["scores"][score])
                          for score in scores}
        lines.append(f"| {label} | " + " | ".join(format_difference(results[label][s]) for s in scores) + " |")
    return lines, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scores", nargs="+", required=True)
    parser.add_argument("--model", nargs="+", action="append", required=True, metavar=("LABEL", "RUN_DIR"),
                        help="a label and that model's run folders (one per seed); the first --model is the reference")
    parser.add_argument("--out", type=Path, help="write the scores and paired differences as JSON here")
    args = parser.parse_args()
    if any(len(group) < 2 for group in args.model):
        parser.error("each --model needs a label and at least one run folder")
    models = {label: read_model([Path(d) for d in dirs], args.scores) for label, *dirs in args.model}
    lines = summary_rows(models, args.scores)
    paired_lines, paired = paired_rows(models, args.scores) if len(models) > 1 else ([], {})
    print("\n".join(lines + paired_lines))
    if args.out:
        args.out.write_text(json.dumps({"scores": args.scores, "models": models, "paired": paired}, indent=2) + "\n")


if __name__ == "__main__":
    main()
