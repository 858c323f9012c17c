"""Compare models on one task under one config and training budget, over several seeds.

The paper's Table-1 question beyond the square: does a parameter-free (Multi-ResNet)
encoder match a learned one? Models are ``unet:<variant>`` (geounet's U-Net variants)
or a baseline architecture (``cheb_unet``, ``graph_unet``, ``flat_resnet``, ``sfno``, and
``dlwp``, physicsnemo's DLWP-HEALPix U-Net from the ``dlwp`` extra) sized to the U-Net's
parameter count. Writes ``results.md``, ``results.json`` and ``loss_curves.png`` (and
``rollout.png`` for forecasting tasks) into ``--results``. Tasks with transfer tests
(held-out or refined meshes) get one column per group of them (the mean over the group's
geometries, then mean ± std over seeds) and a per-geometry table. With ``--reuse`` a run
whose directory already holds metrics for the same config is read, not retrained (to add
seeds or models to a table); ``--resume`` also continues a run that was stopped before it
finished (its folder holds a checkpoint and no metrics) from its last checkpoint, to the same
numbers as an uninterrupted run.

Models run on the same seeds share their initial draws' seed and data order, so the table is
followed by paired differences against the first model (mean difference of the per-seed
errors with its 95 % t-interval, and a Wilcoxon signed-rank p from 5 seeds on,
:mod:`geounet.analysis.paired`). ``--paired RESULTS_JSON`` prints those from a finished
comparison's ``results.json`` without training (``--against MODEL`` compares with another of
its models). ``evaluation_curves.png`` shows every model's
test error against step, mean ± std over seeds (``--reference LABEL=ERROR`` adds a line, e.g.
persistence's error).

    python experiments/compare.py --config experiments/square_navier_stokes/config.toml \\
        --results experiments/square_navier_stokes
    python experiments/compare.py --paired experiments/square_forced_turbulence/results.json
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
from pathlib import Path

from geounet.analysis.convergence import doubling_gain, has_plateaued
from geounet.analysis.paired import format_difference, paired_by_seed
from geounet.errors import GeounetError
from geounet.experiment.config import load_config, model_overrides
from geounet.experiment.runner import run_experiment, with_defaults
from geounet.plot.fields import plot_evaluation_bands, plot_loss_curves, plot_rollout_curves
from geounet.train.checkpoint import atomic_write_text
from geounet.train.run_folder import stored_config

LABELS = {
    "unet:residual": "Residual U-Net (learned encoder)",
    "unet:multiresnet": "Multi-ResNet (no params added in dec.)",
    "unet:multiresnet_matched": "Multi-ResNet (saved params added in dec.)",
    "cheb_unet": "DeepSphere-style ChebConv U-Net",
    "graph_unet": "PyG GraphUNet",
    "flat_resnet": "Flat message-passing ResNet",
    "sfno": "SFNO (torch-harmonics, lat-lon regridded)",
    "dlwp": "DLWP-HEALPix U-Net (physicsnemo)",
}


#: the rollout scores a shallow-water table shows at the last lead (``--lead-scores``' default)
MAIN_JOB_LEAD_SCORES = ["rmse_h", "acc_vorticity"]


def model_label(model: str) -> str:
    """A model spec's name: its label, then the overrides a spec carries after ``|``
    (``"dlwp|model.dlwp_block=convnext"``: "DLWP-HEALPix U-Net (physicsnemo), model.dlwp_block=convnext")."""
    name, *overrides = model.split("|")
    return ", ".join([LABELS.get(name, name), *overrides])


def table_label(model: str) -> str:
    """The model's name in a Markdown table: a ``|`` (none of geounet's labels has one) escaped so
    the row keeps its cells."""
    return model_label(model).replace("|", "\\|")


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def transfer_errors(runs: list[dict]) -> dict[str, list[float]]:
    """Per transfer test (e.g. ``heldout/annulus``), the relative L2 error of every seed."""
    names = [k for k, v in runs[0]["test"].items() if isinstance(v, dict) and "rel_l2_mean" in v]
    return {name: [m["test"][name]["rel_l2_mean"] for m in runs] for name in names}


def transfer_groups(per_test: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Mean ± std over seeds of each group's (``heldout``, ``refined``, ...) mean error."""
    groups: dict[str, list[list[float]]] = {}
    for name, errors in per_test.items():
        groups.setdefault(name.split("/")[0], []).append(errors)
    return {group: mean_std([statistics.mean(seed) for seed in zip(*tests, strict=True)])
            for group, tests in groups.items()}


def evaluation_curve(metrics: dict) -> list[list[float]]:
    """``[[step, test rel. L2], ...]`` at every evaluation of a run."""
    return [[row["step"], row["test_rel_l2_mean"]] for row in metrics["history"] if "test_rel_l2_mean" in row]


def plateaued(curve: list[list[float]]) -> bool | None:
    """The plateau criterion (:func:`has_plateaued`: no improvement by > 1 % over the last 20 % of
    the steps) on a run's evaluation curve; None with fewer than 3 evaluations."""
    if len(curve) < 3:
        return None
    steps, errors = zip(*curve, strict=True)
    return has_plateaued(steps, errors)


def second_half_gain(curve: list[list[float]]) -> float | None:
    """:func:`doubling_gain` of a run's evaluation curve (the error's relative improvement from
    step N/2 to N, each the mean of 3 evaluations); None with too few evaluations in a half."""
    steps, errors = zip(*curve, strict=True) if curve else ((), ())
    try:
        return doubling_gain(steps, errors)
    except GeounetError:
        return None


def summarise(runs: list[dict], seeds: list[int]) -> dict:
    errors = [m["test"]["rel_l2_mean"] for m in runs]
    row = {
        "seeds": seeds,
        "rel_l2_mean": statistics.mean(errors),
        "rel_l2_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
        "rel_l2_per_seed": errors,
        "evaluation_curves": [evaluation_curve(m) for m in runs],
        "parameters": runs[0]["parameters"],
        "train_seconds_mean": statistics.mean(m["seconds"]["train"] for m in runs),
        # other scalar test metrics of the task (e.g. a boundary-condition violation): worst seed
        "extras": {
            key: max(m["test"][key] for m in runs)
            for key, value in runs[0]["test"].items()
            if isinstance(value, float) and key not in ("rel_l2_mean", "rel_l2_std", "mse")
        },
        "transfer": transfer_errors(runs),
    }
    row["transfer_groups"] = transfer_groups(row["transfer"])
    row["plateaued"] = [plateaued(curve) for curve in row["evaluation_curves"]]
    row["second_half_gain"] = [second_half_gain(curve) for curve in row["evaluation_curves"]]
    if "lead_hours" in runs[0]["test"]:  # forecasting task: final-lead rollout scores
        for key in runs[0]["test"]:
            if key.startswith(("model_", "persistence_")):
                finals = [m["test"][key][-1] for m in runs]
                row[f"{key}_final"] = (statistics.mean(finals), statistics.stdev(finals) if len(finals) > 1 else 0.0)
                row[f"{key}_curve"] = [statistics.mean(c) for c in zip(*(m["test"][key] for m in runs), strict=True)]
        row["lead_hours"] = runs[0]["test"]["lead_hours"]
    return row


def table(rows: dict[str, dict], lead_scores: list[str]) -> list[str]:
    """The comparison table; ``lead_scores`` (forecasting tasks, e.g. ``rmse_h``) add their value at
    the last lead of the rollout, and a persistence row."""
    head = ("| model | encoder params | total params | seeds | test rel. L2 | per seed | plateaued (per seed) | "
            "gain N/2 → N (per seed) | train s/run |")
    rule = "|---|---:|---:|---|---:|---|---|---|---:|"
    head += "".join(f" {score.replace('_', ' ')}, last lead |" for score in lead_scores)
    rule += "---:|" * len(lead_scores)
    first = next(iter(rows.values()))
    extras, groups = list(first["extras"]), list(first["transfer_groups"])
    head += "".join(f" {group} (mean of geometries) |" for group in groups)
    head += "".join(f" {key} (worst seed) |" for key in extras)
    rule += "---:|" * (len(groups) + len(extras))
    lines = [head, rule]
    for model, row in rows.items():
        p = row["parameters"]
        per_seed = ", ".join(f"{e:.4f}" for e in row["rel_l2_per_seed"])
        plateau = ", ".join({True: "yes", False: "no", None: "-"}[p] for p in row["plateaued"])
        gains = ", ".join("-" if g is None else f"{100 * g:+.1f} %" for g in row.get("second_half_gain", []))
        encoder = f"{p['encoder']:,}" if model.startswith("unet") else "–"  # a baseline has no U-Net encoder
        line = (
            f"| {table_label(model)} | {encoder} | {p['total']:,} | {', '.join(map(str, row['seeds']))} | "
            f"{row['rel_l2_mean']:.4f} ± {row['rel_l2_std']:.4f} | {per_seed} | {plateau} | {gains} | "
            f"{row['train_seconds_mean']:.0f} |"
        )
        line += "".join(" {} ± {} |".format(*map(lead_format, row[f"model_{score}_final"])) for score in lead_scores)
        line += "".join(" {:.4f} ± {:.4f} |".format(*row["transfer_groups"][group]) for group in groups)
        line += "".join(f" {row['extras'][key]:.3g} |" for key in extras)
        lines.append(line)
    if lead_scores:
        first = next(iter(rows.values()))
        cells = " | ".join(lead_format(first[f"persistence_{score}_final"][0]) for score in lead_scores)
        lines.append(f"| Persistence (x(t+k) = x(t)) | 0 | 0 | | 1 (by definition) | | | | | {cells} |")
    return lines


def lead_format(value: float) -> str:
    """A rollout score in a table: 4 significant digits (RMSEs in m and in 1/s, ACCs near 1)."""
    return f"{value:.4g}"


def check_lead_scores(scores: list[str], row: dict, parser: argparse.ArgumentParser) -> None:
    """Every ``--lead-scores`` metric is one the forecasting runs recorded."""
    recorded = sorted(key[len("model_"):-len("_final")] for key in row if key.startswith("model_")
                      and key.endswith("_final"))
    missing = [score for score in scores if score not in recorded]
    if missing:
        parser.error(f"--lead-scores {' '.join(missing)}: not recorded by these runs; they have {', '.join(recorded)}")


def transfer_table(rows: dict[str, dict]) -> list[str]:
    """Relative L2 error on every transfer geometry (mean over seeds); empty without any."""
    names = list(next(iter(rows.values()))["transfer"])
    if not names:
        return []
    lines = ["| model | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for model, row in rows.items():
        cells = " | ".join(f"{statistics.mean(row['transfer'][n]):.4f}" for n in names)
        lines.append(f"| {table_label(model)} | {cells} |")
    return ["", "Per geometry (relative L2, mean over seeds):", "", *lines]


def with_seeds(rows: dict[str, dict], command: str) -> dict[str, dict]:
    """``rows`` with each row's ``seeds``; results written before rows recorded them take the
    ``--seeds`` of their command (compare.py's default 0 1 2 when it has none)."""
    match = re.search(r"--seeds ([\d ]+)", command)
    seeds = [int(s) for s in match.group(1).split()] if match else [0, 1, 2]
    return {model: {"seeds": seeds, **row} for model, row in rows.items()}


def paired_table(rows: dict[str, dict]) -> list[str]:
    """Paired differences of every model's per-seed error against the first model's."""
    reference, *others = rows
    if not others or len(rows[reference]["seeds"]) < 2:  # a single seed has no paired interval
        return []

    def by_seed(row: dict) -> dict[int, float]:
        return dict(zip(row["seeds"], row["rel_l2_per_seed"], strict=True))

    lines = ["", f"Paired differences against {table_label(reference)} (test rel. L2 of the model minus "
             "the reference's, same seeds; mean [95 % t-interval]; an interval excluding 0 is a difference):", "",
             "| model | seeds | difference |", "|---|---|---|"]
    for model in others:
        shared = sorted(set(rows[model]["seeds"]) & set(rows[reference]["seeds"]))
        if len(shared) < 2:
            lines.append(f"| {table_label(model)} | {', '.join(map(str, shared))} | (needs >= 2 shared seeds) |")
            continue
        result = paired_by_seed(by_seed(rows[model]), by_seed(rows[reference]))
        lines.append(f"| {table_label(model)} | {', '.join(map(str, result['seeds']))} | "
                     f"{format_difference(result)} |")
    return lines


def parse_references(values: list[str], parser: argparse.ArgumentParser) -> dict[str, float]:
    """``{label: error}`` from ``--reference LABEL=ERROR`` options."""
    references = {}
    for value in values:
        label, _, error = value.partition("=")
        try:
            references[label] = float(error)
        except ValueError:
            parser.error(f"--reference takes LABEL=ERROR with a number after '=', got {value!r}")
    return references


def run_or_reuse(cfg, out: Path, reuse: bool, finished_only: bool = False, resume: bool = False) -> dict | None:
    """Train ``cfg`` into ``out``, or with ``reuse`` read ``out``'s metrics if they are for ``cfg``;
    with ``finished_only`` read them or return None (the run did not finish), never train; with
    ``resume`` read them like ``reuse``, and continue a run of ``cfg`` stopped before its metrics
    were written from its checkpoint (a checkpoint of another config, [train] included, is refused
    by the run folder's claim)."""
    path = out / "metrics.json"
    if (reuse or resume or finished_only) and path.is_file():
        metrics = json.loads(path.read_text())
        if same_config(metrics["config"], cfg) and metrics["steps"] == cfg.train.steps:
            return metrics
    if finished_only:
        return None
    stopped = resume and not path.is_file() and (out / "checkpoint.pt").is_file()
    return run_experiment(cfg, out, resume=stopped and same_config(stored_config(out), cfg), progress=False)


def same_config(stored: dict, cfg) -> bool:
    """Whether a run's stored config is ``cfg``, with today's defaults filled in (a key added
    since, left at its default, is no difference)."""
    return json.loads(json.dumps(with_defaults(stored))) == json.loads(json.dumps(cfg.to_dict()))


def reproduce_command(args: argparse.Namespace, lead_scores: list[str]) -> str:
    """The shell command that makes this table again; a model spec with overrides is quoted (its
    ``|`` would pipe)."""
    return f"python experiments/compare.py --config {args.config} --results {args.results} " + " ".join(
        [f"--models {' '.join(map(shlex.quote, args.models))}", f"--seeds {' '.join(map(str, args.seeds))}"]
        + [f'--set "{o}"' for o in args.overrides] + [f'--reference "{r}"' for r in args.reference]
        + ([f"--lead-scores {' '.join(lead_scores)}"] if lead_scores else [])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--paired", type=Path, metavar="RESULTS_JSON",
                        help="print the paired differences of a finished comparison and exit")
    parser.add_argument("--against", metavar="MODEL",
                        help="with --paired: the model the others are compared with (default: the first)")
    parser.add_argument(
        "--models", nargs="+", default=["unet:residual", "unet:multiresnet", "unet:multiresnet_matched"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--runs", type=Path, default=Path("runs/compare"))
    parser.add_argument("--results", type=Path)
    parser.add_argument("--reuse", action="store_true", help="read finished runs with the same config")
    parser.add_argument("--resume", action="store_true",
                        help="as --reuse, and continue runs stopped before they finished from their checkpoints")
    parser.add_argument("--finished-only", action="store_true",
                        help="tabulate the finished runs with the same config, train none (the others are listed)")
    parser.add_argument("--lead-scores", nargs="+", default=MAIN_JOB_LEAD_SCORES, metavar="METRIC",
                        help="forecasting tasks: the rollout scores tabulated at the last lead, e.g. rmse_z500 "
                        "acc_vo (default: the shallow-water main job's rmse_h acc_vorticity); the first rmse_* "
                        "one is drawn in rollout.png")
    parser.add_argument("--reference", action="append", default=[], metavar="LABEL=ERROR",
                        help="a horizontal line on the evaluation curves, e.g. persistence's test error")
    args = parser.parse_args()
    if args.paired:
        results = json.loads(args.paired.read_text())
        rows = with_seeds(results["rows"], results["command"])
        if args.against is not None:
            if args.against not in rows:
                parser.error(f"--against {args.against} is not a model of {args.paired} ({', '.join(rows)})")
            rows = {args.against: rows[args.against], **{m: r for m, r in rows.items() if m != args.against}}
        print("\n".join(paired_table(rows)))
        return
    if args.config is None or args.results is None:
        parser.error("--config and --results are required unless --paired is given")

    rows, histories, unfinished = {}, {}, []
    for model in args.models:
        runs, seeds = [], []
        for seed in args.seeds:
            cfg = load_config(args.config, [*args.overrides, *model_overrides(model), f"train.seed={seed}"])
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", model)  # a folder name for "unet:x|task.k=2"
            metrics = run_or_reuse(cfg, args.runs / cfg.task.name / f"{name}-seed{seed}", args.reuse,
                                   args.finished_only, args.resume)
            if metrics is None:
                unfinished.append(f"{model} seed {seed}")
                continue
            runs.append(metrics)
            seeds.append(seed)
            print(f"{model} seed {seed}: rel L2 {metrics['test']['rel_l2_mean']:.4f}", flush=True)
        if runs:
            rows[model] = summarise(runs, seeds)
            histories[model_label(model)] = runs[0]["history"]
    if not rows:
        parser.error(f"no finished run under {args.runs} for these models, seeds and settings")

    cfg = load_config(args.config, args.overrides)
    references = parse_references(args.reference, parser)
    forecasting = "lead_hours" in next(iter(rows.values()))
    lead_scores = args.lead_scores if forecasting else []
    check_lead_scores(lead_scores, next(iter(rows.values())), parser)
    command = reproduce_command(args, lead_scores)
    lines = [
        f"Task `{cfg.task.name}` ({args.config}); {cfg.train.steps} AdamW steps, batch {cfg.train.batch_size}, "
        f"lr {cfg.train.lr}, {cfg.model.num_levels} levels, width {cfg.model.width}, device {cfg.train.device}; "
        f"test relative L2 error (mass-weighted), mean ± std over the seeds of each row. Plateaued: the test "
        "error did not improve by > 1 % over the last 20 % of the steps (evaluations every "
        f"{cfg.train.eval_every} steps; the curves are in results.json and evaluation_curves.png). "
        "Gain N/2 → N: 1 - (mean of the last 3 evaluations up to step N) / (the same up to N/2); "
        + ("with the learning rate constant after the warm-up, the first N/2 steps are the N/2-step run, so "
           "this is the gain from doubling the budget." if cfg.train.min_lr_ratio == 1 else
           "under the decaying schedule it is the second half's gain, not a budget-doubling check."),
        "",
        f"Reproduce: `{command}`",
        "",
        *table(rows, lead_scores),
        *transfer_table(rows),
        *paired_table(rows),
        *([] if not unfinished else ["", f"Not finished (no metrics under {args.runs}): {', '.join(unfinished)}."]),
    ]
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "results.md", "\n".join(lines) + "\n")
    atomic_write_text(args.results / "results.json", json.dumps({"command": command, "rows": rows}, indent=2))
    plot_loss_curves(histories, str(args.results / "loss_curves.png"))
    plot_evaluation_bands({model_label(m): r["evaluation_curves"] for m, r in rows.items()}, references,
                          "test relative L2", str(args.results / "evaluation_curves.png"))
    rmse = next((score for score in lead_scores if score.startswith("rmse_")), None)
    if rmse is not None:
        curves = {model_label(m): (r["lead_hours"], r[f"model_{rmse}_curve"]) for m, r in rows.items()}
        first = next(iter(rows.values()))
        curves["Persistence"] = (first["lead_hours"], first[f"persistence_{rmse}_curve"])
        plot_rollout_curves(curves, f"RMSE of {rmse[len('rmse_'):]}", str(args.results / "rollout.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
