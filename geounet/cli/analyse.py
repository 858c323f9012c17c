"""``geounet analyse noise`` (the noise-dominance study of a TOML config, as JSON and PNGs) and
``geounet analyse samples`` (sample metrics of diffusion runs against held-out data).

The config has an ``[analysis]`` table (``schedule``, ``noise_draws``, ``seed``,
``cache_dir``) and one ``[[study]]`` table per data set: ``name``, ``source`` and that
source's options (:mod:`geounet.analysis.noise_study`). The command writes
``OUT/noise_analysis.json`` (every measured and predicted number), one
``OUT/<name>.png`` per study (per-level SNR against t; detail energy per degree of
freedom against level, measured and predicted) and ``OUT/decays.png`` (measured against
predicted decay, every study and level).

``geounet analyse samples RUN_DIR ... --num N --out DIR`` draws N samples from every run
and compares them with the task's test split (:mod:`geounet.analysis.sample_eval`,
metrics in :mod:`geounet.analysis.sample_metrics`); it writes ``DIR/sample_metrics.json``
(every run's and data reference's metrics), ``DIR/sample_metrics.md`` (mean ± std over
seeds), ``DIR/samples.png`` (samples next to test data) and ``DIR/spectra.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import tomllib
from pathlib import Path

from geounet.data.outputs import check_folder, check_output, write_output, write_text_output
from geounet.errors import GeounetError, MissingFileError
from geounet.plot.noise import log2_or_none, plot_noise_decays, plot_noise_study

ANALYSIS_KEYS = {"schedule": "vp_cosine", "noise_draws": 64, "seed": 0, "cache_dir": "data"}


def add_parsers(commands) -> None:
    """Register ``geounet analyse noise`` on the ``geounet`` subcommand parser."""
    analyse = commands.add_parser("analyse", help="analyses of data and models (noise: per-level SNR of diffusion)")
    kinds = analyse.add_subparsers(dest="analysis", required=True)
    noise = kinds.add_parser(
        "noise", help="per-level SNR under x_t = a_t x_0 + s_t eps on geounet's data, measured vs predicted",
        description=__doc__.split("\n\n", 1)[1])
    noise.add_argument("--config", type=Path, required=True, help="TOML with [analysis] and [[study]] tables")
    noise.add_argument("--out", type=Path, default=Path("noise_analysis"), help="output folder")
    noise.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this study (repeatable)")
    noise.add_argument("--overwrite", action="store_true", help="replace the files of an earlier analysis in --out")
    noise.set_defaults(run=_noise)
    samples = kinds.add_parser(
        "samples", help="sample metrics of `geounet diffuse` runs against the task's held-out data",
        description="Draw samples from every run and compare them with the task's test split: band-energy and "
        "angular-power-spectrum errors, sliced Wasserstein and MMD on band energies and random features; "
        "disjoint training subsets give the data's own floor. Runs that differ only in diffusion.seed are "
        "grouped (mean ± std).")
    samples.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="runs written by `geounet diffuse`")
    samples.add_argument("--num", type=int, default=64, help="samples per run (and size of each data reference)")
    samples.add_argument("--seed", type=int, default=0, help="seed of the samplers, data subsets and metric features")
    samples.add_argument("--show", type=int, default=4, help="fields per row in samples.png")
    samples.add_argument("--out", type=Path, required=True, help="output folder")
    samples.add_argument("--overwrite", action="store_true", help="replace the files of an earlier analysis in --out")
    samples.set_defaults(run=_samples)


def _read_config(path: Path) -> tuple[dict, list[dict]]:
    if not path.is_file():
        raise MissingFileError(f"no config file {path}")
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    unknown = sorted(set(config) - {"analysis", "study"})
    if unknown:
        raise GeounetError(f"{path}: unknown tables {unknown}; the config has [analysis] and [[study]] tables")
    analysis = dict(config.get("analysis", {}))
    bad = sorted(set(analysis) - set(ANALYSIS_KEYS))
    if bad:
        raise GeounetError(f"{path}: unknown [analysis] keys {bad}; it takes {sorted(ANALYSIS_KEYS)}")
    studies = config.get("study", [])
    if not studies or any("name" not in study for study in studies):
        raise GeounetError(f"{path}: give at least one [[study]] table, each with a name")
    names = [study["name"] for study in studies]
    if len(set(names)) != len(names):
        raise GeounetError(f"{path}: study names must be unique, got {names}")
    return {**ANALYSIS_KEYS, **analysis}, studies


def _noise(args: argparse.Namespace) -> int:
    import torch

    from geounet.analysis.noise_study import analyse, make_study
    from geounet.diffusion.schedules import make_schedule

    analysis, studies = _read_config(args.config)
    missing = sorted(set(args.only) - {study["name"] for study in studies})
    if missing:
        raise GeounetError(f"--only names {missing} are not studies of {args.config}")
    studies = [s for s in studies if not args.only or s["name"] in args.only]
    _check_outputs(args, ["noise_analysis.json", "decays.png", *(f"{study['name']}.png" for study in studies)])
    schedule = make_schedule(analysis["schedule"])
    results = {}
    for options in studies:
        name = options["name"]
        study = make_study({k: v for k, v in options.items() if k != "name"})
        data = study.build(analysis["cache_dir"])
        result = analyse(data, schedule, analysis["noise_draws"], torch.Generator().manual_seed(analysis["seed"]))
        results[name] = {"study": {"source": options["source"], **dataclasses.asdict(study)},
                         "hierarchy": repr(data.hierarchy), "samples": data.x.shape[0],
                         **dataclasses.asdict(result)}
        write_output(args.out / f"{name}.png", functools.partial(plot_noise_study, name, result, schedule))
        _print_study(name, result)
    write_output(args.out / "decays.png", lambda tmp: plot_noise_decays(results, tmp))
    summary = {"analysis": analysis, "schedule": repr(schedule), "studies": results}
    write_text_output(args.out / "noise_analysis.json", json.dumps(summary, indent=1))
    print(f"wrote {args.out}/noise_analysis.json, {args.out}/decays.png and one PNG per study")
    return 0


def _samples(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from geounet.analysis.sample_eval import DATA_LABEL, evaluate_runs, markdown_table
    from geounet.plot.samples import plot_field_grid, plot_spectra

    if args.num < 2 or args.show < 1:
        raise GeounetError(f"--num must be >= 2 and --show >= 1, got {args.num} and {args.show}")
    _check_outputs(args, ["sample_metrics.json", "sample_metrics.md", "samples.png", "spectra.png"])
    evaluation = evaluate_runs(args.run_dirs, args.num, args.seed)
    rows = [{"label": row.label, "name": row.name, "parameters": row.parameters, "metrics": row.metrics}
            for row in evaluation.rows]
    summary = {"command": "geounet analyse samples", "num": args.num, "seed": args.seed, "task": evaluation.task,
               "field": evaluation.field, "hierarchy": repr(evaluation.hierarchy), "test_samples": len(evaluation.test),
               "summary": evaluation.summary(), "rows": rows}
    write_text_output(args.out / "sample_metrics.json", json.dumps(summary, indent=1))
    table = markdown_table(evaluation)
    write_text_output(args.out / "sample_metrics.md", table)
    print(table)
    spread = torch.linspace(0, len(evaluation.test) - 1, min(args.show, len(evaluation.test))).round().long()
    shown = {"data (test)": evaluation.test[spread]}  # spread over the test set (neighbours may be one trajectory)
    for label in evaluation.labels()[1:]:  # the first run of every model
        shown[label] = next(row for row in evaluation.rows if row.label == label).fields[: args.show]
    write_output(args.out / "samples.png", lambda tmp: plot_field_grid(shown, evaluation.hierarchy, str(tmp)))
    curves = {"data (test)": _curves(evaluation.rows[0].metrics, "data")}
    for label in evaluation.labels():
        group = [row.metrics for row in evaluation.rows if row.label == label]
        name = "data (train subsets)" if label == DATA_LABEL else label
        curves[name] = {key: np.mean([_curves(m, "samples")[key] for m in group], axis=0).tolist()
                        for key in _curves(group[0], "samples")}
    write_output(args.out / "spectra.png", lambda tmp: plot_spectra(curves, str(tmp)))
    print(f"wrote {args.out}/sample_metrics.json, sample_metrics.md, samples.png and spectra.png")
    return 0


def _check_outputs(args: argparse.Namespace, names: list[str]) -> None:
    """Refuse, before any work, an ``--out`` that is a file or holds these outputs (without ``--overwrite``)."""
    check_folder(args.out)
    for name in names:
        check_output(args.out / name, (Path(name).suffix,), overwrite=args.overwrite, option="--out file")


def _curves(metrics: dict, which: str) -> dict[str, list[float]]:
    """The mean band energies (and C_l on HEALPix) of the ``which`` ("samples" / "data") set of a row."""
    curves = {"bands": metrics[f"band_energy_{which}"]}
    if f"cl_{which}" in metrics:
        curves["cl"] = metrics[f"cl_{which}"]
    return curves


def _print_study(name: str, result) -> None:
    def row(label, values):
        return f"  {label:<22}" + "".join(f"{'-' if v is None else f'{v:.2f}':>8}" for v in values)

    print(f"{name}: beta = {result.beta:.2f}; log2 decay of the detail SNR per finer level (levels 1..I)")
    print(row("measured", log2_or_none(result.decay_measured)))
    print(row("spectrum prediction", log2_or_none(result.decay_spectrum)))
    print(row("power-law prediction", log2_or_none(result.decay_power_law)))
    print(row("noise MC / c dim W", [m / a for m, a in zip(result.noise_sampled, result.noise, strict=True)]))
