"""Tables of the forecast runs: RMSE and ACC at each lead time, model against persistence and climatology.

    python experiments/forecast_shallow_water/summarise.py runs/fsw_* \
        --out experiments/forecast_shallow_water/results.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def label(metrics: dict) -> str:
    model, task = metrics["config"]["model"], metrics["config"]["task"]
    name = model["variant"] if model["architecture"] == "unet" else model["architecture"]
    return f"{name}, k={task['train_rollout']}"


def table(runs: dict[str, dict], score: str, variable: str) -> list[str]:
    first = next(iter(runs.values()))
    leads = first["lead_hours"]
    rows = [f"| {score.upper()} {variable} | " + " | ".join(f"{h:g} h" for h in leads) + " |",
            "|---|" + "---|" * len(leads)]
    references = {"persistence": first, "climatology": first}
    for name, test in {**runs, **references}.items():
        key = f"{'model' if name not in references else name}_{score}_{variable}"
        if key in test:
            rows.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in test[key]) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs, lines = {}, ["# Forecast on shallow water written as ERA5-like netCDF", ""]
    for run in args.run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        runs[label(metrics)] = metrics["test"]
        lines.append(f"- {label(metrics)}: {run}, {metrics['parameters']['total']:,} parameters, "
                     f"{metrics['steps']} steps in {metrics['seconds']['train']:.0f} s")
    variables = json.loads((args.run_dirs[0] / "metrics.json").read_text())["config"]["task"]["variables"]
    for variable in variables:
        for score in ("rmse", "acc"):
            lines += ["", *table(runs, score, variable)]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
