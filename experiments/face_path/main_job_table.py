"""The main job's scores and training cost per model over seeds, with paired differences.

Reads the ``metrics.json`` of run folders written by ``experiments/compare.py`` (one folder per
model and seed, ``<runs>/<model>-seed<s>``), or their thinned copies ``<runs>/<model>-seed<s>.json``
(``experiments/thin_metrics.py``, as stored under ``experiments/``), and prints, per model, mean ±
std over seeds of the columns of RESULTS §5 (one-step relative L2 error of the increments, RMSE of
h at 1 h and 24 h, ACC of the vorticity at 1 h and 24 h) and of the training cost (CPU seconds of the training,
``seconds.train_cpu``, and its wall seconds), then every model's paired differences (model minus
the first model, same seeds; mean [95 % t-interval], :mod:`geounet.analysis.paired`). Writes the
table as Markdown and every per-seed value as JSON. With ``--reference-from TABLE NAME`` the
reference is row NAME of a table this script wrote before (its stored per-seed values), for runs
made later in another folder.

    python experiments/face_path/main_job_table.py --runs runs/face_main/shallow_water_healpix \\
        --models nest=unet-multiresnet conv3x3_w12=... --seeds 0 1 2 --out experiments/face_path/main_job
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from geounet.analysis.paired import format_difference, paired_by_seed


def at_lead(metrics: dict, score: str, hours: float) -> float:
    """The rollout score ``score`` (e.g. ``model_rmse_h``) at lead ``hours``."""
    return metrics["test"][score][metrics["test"]["lead_hours"].index(hours)]


#: column -> how to read it from a run's metrics.json
COLUMNS = {
    "one-step rel. L2": lambda m: m["test"]["rel_l2_mean"],
    "RMSE h 1 h [m]": lambda m: at_lead(m, "model_rmse_h", 1.0),
    "RMSE h 24 h [m]": lambda m: at_lead(m, "model_rmse_h", 24.0),
    "ACC ζ 1 h": lambda m: at_lead(m, "model_acc_vorticity", 1.0),
    "ACC ζ 24 h": lambda m: at_lead(m, "model_acc_vorticity", 24.0),
    "train CPU s": lambda m: m["seconds"]["train_cpu"],
    "train wall s": lambda m: m["seconds"]["train"],
}


def run_metrics(runs: Path, folder: str, seed: int) -> dict:
    """The metrics of run ``<runs>/<folder>-seed<seed>``: its folder's metrics.json, else its thinned copy."""
    run = runs / f"{folder}-seed{seed}"
    for path in (run / "metrics.json", run.with_name(run.name + ".json")):
        if path.is_file():
            return json.loads(path.read_text())
    raise SystemExit(f"no run {run}: neither {run}/metrics.json nor {run}.json exists")


def per_seed(runs: Path, folder: str, seeds: list[int]) -> dict[str, dict[int, float]]:
    """``{column: {seed: value}}`` of the runs ``<runs>/<folder>-seed<s>``."""
    metrics = {seed: run_metrics(runs, folder, seed) for seed in seeds}
    values = {column: {seed: read(m) for seed, m in metrics.items()} for column, read in COLUMNS.items()}
    values["parameters"] = {seed: m["parameters"]["total"] for seed, m in metrics.items()}
    values["steps"] = {seed: m["steps"] for seed, m in metrics.items()}
    return values


def stored_row(table: Path, name: str, seeds: list[int]) -> dict[str, dict[int, float]]:
    """Row ``name`` of a JSON table written by this script, restricted to ``seeds``."""
    rows = json.loads(table.read_text())["per_seed"]
    if name not in rows:
        raise SystemExit(f"{table} has no row {name!r}; its rows: {', '.join(rows)}")
    values = {column: {int(seed): value for seed, value in by_seed.items()} for column, by_seed in rows[name].items()}
    missing = [seed for seed in seeds if seed not in values["steps"]]
    if missing:
        raise SystemExit(f"row {name!r} of {table} has no seed {missing}; pass --seeds among {sorted(values['steps'])}")
    return {column: {seed: by_seed[seed] for seed in seeds} for column, by_seed in values.items()}


def mean_std(values: dict[int, float]) -> str:
    numbers = list(values.values())
    spread = statistics.stdev(numbers) if len(numbers) > 1 else 0.0
    return f"{statistics.mean(numbers):.4g} ± {spread:.2g}"


def markdown(rows: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    lines = ["| model | params | steps | " + " | ".join(COLUMNS) + " |", "|---|---:|---:|" + "---:|" * len(COLUMNS)]
    for name, values in rows.items():
        cells = " | ".join(mean_std(values[column]) for column in COLUMNS)
        params, steps = next(iter(values["parameters"].values())), next(iter(values["steps"].values()))
        lines.append(f"| {name} | {params:,} | {steps} | {cells} |")
    reference, *others = rows
    lines += ["", f"Paired differences, model minus {reference} (same seeds; mean [95 % t-interval]):", "",
              "| model | " + " | ".join(COLUMNS) + " | CPU time ratio (reference / model), per seed |",
              "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name in others:
        cells = " | ".join(format_difference(paired_by_seed(rows[name][column], rows[reference][column]))
                           for column in COLUMNS)
        cpu, cpu_reference = rows[name]["train CPU s"], rows[reference]["train CPU s"]
        ratios = ", ".join(f"{cpu_reference[seed] / cpu[seed]:.2f}" for seed in sorted(cpu))
        lines.append(f"| {name} | {cells} | {ratios} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="the folder holding <model>-seed<s> run folders")
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=FOLDER",
                        help="table name and run-folder prefix of each model; the first is the reference")
    parser.add_argument("--reference-from", nargs=2, metavar=("TABLE_JSON", "NAME"),
                        help="the reference is row NAME of a JSON table written by this script (before --models)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    args = parser.parse_args()
    rows, folders = {}, {}
    if args.reference_from:
        table, name = args.reference_from
        rows[name], folders[name] = stored_row(Path(table), name, args.seeds), table
    for spec in args.models:
        name, folder = spec.split("=", 1)
        rows[name], folders[name] = per_seed(args.runs, folder, args.seeds), folder
    lines = markdown(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"models": folders,
                                                         "seeds": args.seeds, "per_seed": rows}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
