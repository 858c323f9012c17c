"""Tables of finished shallow-water runs, merged over seeds, plus the Galewsky out-of-distribution test.

compare.py trains and tabulates in one go; this reads run directories that already exist
(``<runs>/<model>-seed<k>/metrics.json``, e.g. seeds trained by separate compare.py calls)
and writes one markdown file with

1. the comparison table of compare.py (same columns, mean ± std over the seeds found),
2. the Galewsky test: RMSE / ACC of the rollout from the Galewsky jet at a few leads, mean
   ± std over seeds, with persistence. A run trained before the test existed is scored
   from ``evaluation.json`` (``geounet evaluate RUN_DIR`` on its checkpoint) instead;
   ``<out stem>_galewsky.png`` plots the RMSE of h against lead.

    python experiments/shallow_water_healpix/summarise.py --out summary.md \\
        runs/compare/shallow_water_healpix/unet-multiresnet-seed* runs/compare_base/shallow_water_healpix/*
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from compare import MAIN_JOB_LEAD_SCORES, model_label, summarise, table  # noqa: E402

from geounet.plot.fields import plot_rollout_curves  # noqa: E402

#: (metric, variable, column label, format, scale to the label's units)
GALEWSKY_SCORES = (("rmse", "h", "RMSE h [m]", ".1f", 1.0), ("rmse", "vorticity", "RMSE ζ [1e-6 s⁻¹]", ".2f", 1e6),
                   ("acc", "vorticity", "ACC ζ", ".3f", 1.0))


def read_runs(run_dirs: list[Path]) -> dict[str, list[dict]]:
    """``{model: [metrics of each seed]}`` in the order given, with Galewsky scores merged in
    from evaluation.json."""
    runs: dict[str, list[dict]] = {}
    for run_dir in run_dirs:
        match = re.fullmatch(r"(.+)-seed(\d+)", run_dir.name)
        if match is None or not (run_dir / "metrics.json").is_file():
            raise ValueError(f"{run_dir} is not a finished compare.py run (<model>-seed<k>/metrics.json)")
        metrics = json.loads((run_dir / "metrics.json").read_text())
        evaluation = run_dir / "evaluation.json"
        if "galewsky_model_rmse_h" not in metrics["test"] and evaluation.is_file():
            later = json.loads(evaluation.read_text())["test"]
            metrics["test"].update({k: v for k, v in later.items() if k.startswith("galewsky_")})
        model = match.group(1).replace("unet-", "unet:", 1) if match.group(1).startswith("unet-") else match.group(1)
        if model in runs and _setup(runs[model][0]) != _setup(metrics):
            raise ValueError(f"{run_dir} was trained with another config than the earlier {model} runs: "
                             "summarise them separately")
        runs.setdefault(model, []).append(metrics)
    return runs


def _setup(metrics: dict) -> dict:
    """A run's config without what may differ between seeds of one table row: the seed, and the
    Galewsky switch (runs made before it existed lack the key and are scored afterwards)."""
    config = json.loads(json.dumps(metrics["config"]))
    config["train"].pop("seed")
    config["task"].pop("galewsky_test", None)
    return config


def _cell(values: list[float], fmt: str) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{fmt}} ± {std:{fmt}}"


def galewsky_table(runs: dict[str, list[dict]], leads: list[int]) -> list[str]:
    """RMSE / ACC of the Galewsky rollout at ``leads`` (hours, 1-based) per model and persistence."""
    scored = {model: [m["test"] for m in ms if "galewsky_model_rmse_h" in m["test"]] for model, ms in runs.items()}
    scored = {model: tests for model, tests in scored.items() if tests}
    if not scored:
        return ["(no run has Galewsky scores)"]
    columns = [(f"{metric}_{var}", label, fmt, scale, lead) for metric, var, label, fmt, scale in GALEWSKY_SCORES
               for lead in leads]
    head = "| model | seeds |" + "".join(f" {label} @ {lead} h |" for _, label, _, _, lead in columns)
    lines = [head, "|---|---:|" + "---:|" * len(columns)]
    for model, tests in scored.items():
        cells = [_cell([t[f"galewsky_model_{key}"][lead - 1] * scale for t in tests], fmt)
                 for key, _, fmt, scale, lead in columns]
        lines.append(f"| {model_label(model)} | {len(tests)} | " + " | ".join(cells) + " |")
    first = next(iter(scored.values()))[0]
    persistence = [f"{first[f'galewsky_persistence_{key}'][lead - 1] * scale:{fmt}}"
                   for key, _, fmt, scale, lead in columns]
    lines.append("| Persistence | | " + " | ".join(persistence) + " |")
    return lines


def plot_galewsky(runs: dict[str, list[dict]], path: Path) -> None:
    """RMSE of h against lead for the Galewsky rollout: seed-mean per model, and persistence."""
    curves, persistence = {}, {}
    for model, ms in runs.items():
        tests = [m["test"] for m in ms if "galewsky_model_rmse_h" in m["test"]]
        if tests:
            leads = tests[0]["lead_hours"]
            mean = [statistics.mean(c) for c in zip(*(t["galewsky_model_rmse_h"] for t in tests), strict=True)]
            curves[model_label(model)] = (leads, mean)
            persistence["Persistence"] = (leads, tests[0]["galewsky_persistence_rmse_h"])
    if curves:
        plot_rollout_curves({**curves, **persistence}, "Galewsky: RMSE of h [m]", str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--leads", type=int, nargs="+", default=[6, 24], help="Galewsky leads to show (hours)")
    args = parser.parse_args()
    runs = read_runs(args.run_dirs)
    rows = {model: summarise(ms, [m["config"]["train"]["seed"] for m in ms]) for model, ms in runs.items()}
    forecasting = "lead_hours" in next(iter(rows.values()))
    lines = [
        *table(rows, MAIN_JOB_LEAD_SCORES if forecasting else []),
        "",
        "Training seconds per run (seed: s; 2 shared CPU cores, so contention varies):",
        "",
        *(f"- {model_label(model)}: " + ", ".join(f"{m['config']['train']['seed']}: {m['seconds']['train']:.0f}"
                                                          for m in ms) for model, ms in runs.items()),
        "",
        "Galewsky out-of-distribution rollout (trained on random balanced ICs; mean ± std over seeds):",
        "",
        *galewsky_table(runs, args.leads),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    plot_galewsky(runs, args.out.with_name(args.out.stem + "_galewsky.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
