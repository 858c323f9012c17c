"""The ``geounet`` command; ``geounet COMMAND --help`` describes each one.

geounet info     [--config FILE] [--set section.key=value ...]   levels, nodes, parameter counts
geounet datagen  [--config FILE] [--set ...]                      generate (or find cached) task data
geounet train    [--config FILE] [--set ...] [--out DIR] [--resume | --overwrite] [--quiet] [--json]
geounet evaluate RUN_DIR [--device DEV] [--plot]                  re-evaluate a run's checkpoint
geounet plot     RUN_DIR [RUN_DIR ...] [--out FILE] [--predictions] [--device DEV]
geounet bench    NAME [script options, e.g. --device cuda]  |  geounet bench --list
geounet analyse  noise --config FILE [--out DIR]                 per-level SNR of diffusion noise on the data
geounet diffuse  --config FILE --out RUN_DIR [--set ...]          train a diffusion model on a task's fields
geounet sample   RUN_DIR --num N --out samples.nc [--seed S]      samples of a diffusion run as netCDF
geounet forecast RUN_DIR --init DATE --steps N --out FILE        a forecast run's rollout as netCDF / zarr

``--config`` takes a TOML file or the name of a packaged config (geounet/configs/, e.g.
``triangle_poisson``); the default is the packaged main job, wherever the command runs.

Errors in the input (a bad config value, a missing file, a damaged checkpoint or data
file, an occupied run folder) print one line naming the problem and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from geounet.errors import GeounetError, TrainingDivergedError

# PyTorch Geometric calls the deprecated torch.jit.script when imported; the warning says
# nothing to a user of the command (libraries importing geounet keep their own filters).
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from geounet import configs  # noqa: E402
from geounet.cli_analyse import add_analyse_parser  # noqa: E402
from geounet.cli_diffusion import add_diffusion_parsers  # noqa: E402
from geounet.models.unet import VARIANTS  # noqa: E402
from geounet.train.curves import model_name  # noqa: E402


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="TOML config with [task], [model], [train], or a packaged config's name: "
        f"{', '.join(configs.names())} (default: {configs.DEFAULT}, the main job)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.steps=200 (repeatable)",
    )


def _load(args: argparse.Namespace):
    from geounet.experiment.config import load_config

    return load_config(configs.resolve(args.config), args.overrides)


def _info(args: argparse.Namespace) -> int:
    from geounet.experiment.runner import build_configured_unet
    from geounet.tasks import task_structure

    cfg = _load(args)
    structure = task_structure(cfg.task, cfg.model.num_levels)
    print(f"task      {cfg.task.name}")
    print(f"hierarchy {structure.hierarchy!r}")
    print(f"{'level':>5} {'nodes':>10} {'edges':>10}")
    for row in structure.hierarchy.describe():
        print(f"{row['level']:>5} {row['nodes']:>10,} {row['edges']:>10,}")
    print(f"\nparameters (width {cfg.model.width}, channel_mult {cfg.model.channel_mult}):")
    parts = ["lift", "encoder", "bottleneck", "decoder", "head", "total"]
    print(f"{'variant':<22}" + "".join(f"{p:>12}" for p in parts))
    for variant in VARIANTS:
        cfg.model.variant = variant
        counts = build_configured_unet(cfg, structure).parameter_counts()
        print(f"{variant:<22}" + "".join(f"{counts[p]:>12,}" for p in parts))
    return 0


def _train(args: argparse.Namespace) -> int:
    from geounet.experiment.runner import run_experiment
    from geounet.train import distributed

    cfg = _load(args)
    out = args.out or Path("runs") / f"{cfg.task.name}-{_model_name(cfg)}-seed{cfg.train.seed}"
    cfg.train.device = distributed.setup(cfg.train.device)
    main_process = distributed.is_main_process()
    try:
        metrics = run_experiment(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    finally:
        distributed.teardown()
    if not main_process:
        return 0
    test = metrics["test"]
    print(
        f"\n{_model_name(cfg)} on {cfg.task.name}: test relative L2 "
        f"{test['rel_l2_mean']:.4f} ± {test['rel_l2_std']:.4f} (mean ± std over test samples); "
        f"{metrics['parameters']['total']:,} parameters "
        f"({metrics['parameters']['encoder']:,} in the encoder); trained "
        f"{metrics['steps']} steps in {metrics['seconds']['train']:.0f} s"
    )
    if "lead_hours" in test:
        _print_rollout(test)
    _print_transfers(test)
    print(f"wrote {out}/metrics.json, {out}/checkpoint.pt, {out}/predictions.png")
    if args.json:
        print(json.dumps(test))
    return 0


def _datagen(args: argparse.Namespace) -> int:
    import torch

    from geounet.tasks import prepare_task

    cfg = _load(args)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    for split in ("train", "test"):
        data = getattr(task, split)
        first = data.batch(torch.arange(1))  # any data set: one grid, many meshes, or lazy files
        print(f"{split:<5} {len(data)} samples; the first: inputs {tuple(first.inputs.shape)}  "
              f"targets {tuple(first.targets.shape)}")
    print(f"cached in {cfg.task.cache_dir}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from geounet.experiment.runner import evaluate_transfers
    from geounet.train.checkpoint import atomic_write_text
    from geounet.train.loop import evaluate
    from geounet.train.plots import plot_test_predictions

    cfg, state, task, model, device = _load_run(args.run_dir, args.device, args.overrides)
    test = evaluate(model, task.test, cfg.train.batch_size, device)
    if task.evaluate_extra is not None:
        test.update(task.evaluate_extra(model, device))
    test.update(evaluate_transfers(cfg, model, task, device))
    if not math.isfinite(test["rel_l2_mean"]):
        raise TrainingDivergedError(
            f"the checkpoint's predictions on the test data are not finite (relative L2 {test['rel_l2_mean']}); "
            f"nothing written to {args.run_dir}"
        )
    suffix = "".join(f"-{o.split('.', 1)[-1].replace('=', '-')}" for o in args.overrides).replace("/", "_")
    evaluation = args.run_dir / f"evaluation{suffix}.json"
    atomic_write_text(evaluation, json.dumps({"step": state["step"], "overrides": args.overrides, "test": test},
                                             indent=2))
    error = f"{test['rel_l2_mean']:.4f} ± {test['rel_l2_std']:.4f}"
    print(f"{_model_name(cfg)} at step {state['step']}: test relative L2 {error}")
    if "lead_hours" in test:
        _print_rollout(test)
    _print_transfers(test)
    written = [evaluation]
    if args.plot:
        plot_test_predictions(model, task, device, str(args.run_dir / "predictions.png"))
        written.append(args.run_dir / "predictions.png")
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _load_run(run_dir: Path, device: str | None, task_overrides: list[str] = ()):
    """``(cfg, checkpoint state, prepared task, model, device)`` of a run directory: the model
    rebuilt from the checkpoint's config (with ``task.key=value`` overrides), with its
    weights, in eval mode on ``device`` (default: the run's ``train.device``)."""
    import torch

    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model
    from geounet.tasks import prepare_task
    from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config
    from geounet.train.config import parse_override

    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    raw = run_config(state, path)
    for override in task_overrides:
        (section, key), value = parse_override(override)
        if section != "task":
            raise GeounetError(f"evaluate --set changes [task] only (the model is the checkpoint's), got {override!r}")
        raw = {**raw, "task": {**raw["task"], key: value}}
    cfg = config_from_dict(raw)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, task.structure)
    load_model_state(model, state["model"], path)
    device = torch.device(device or cfg.train.device)
    model.to(device).eval()
    return cfg, state, task, model, device


def _plot(args: argparse.Namespace) -> int:
    from geounet.train.curves import read_curves
    from geounet.train.plots import plot_run_curves, plot_test_predictions

    curves = read_curves(args.run_dirs)
    out = args.out or (args.run_dirs[0] / "curves.png" if len(args.run_dirs) == 1 else Path("curves.png"))
    out.parent.mkdir(parents=True, exist_ok=True)
    panels = plot_run_curves(curves.histories, curves.finals, curves.rollouts, str(out))
    print(f"wrote {out}: " + "; ".join(panels))
    if args.predictions:
        for run_dir in args.run_dirs:
            _, _, task, model, device = _load_run(run_dir, args.device)
            plot_test_predictions(model, task, device, str(run_dir / "predictions.png"))
            print(f"wrote {run_dir / 'predictions.png'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from geounet import bench

    directory = bench.find_bench_dir()
    if args.list:
        if args.name is not None:
            raise GeounetError("pass either --list or a benchmark name, not both")
        print(f"benchmarks in {directory} (geounet bench NAME --help for a benchmark's options):")
        for name, script in bench.benchmarks(directory).items():
            print(f"  {name:<18} {bench.summary(script)}")
        return 0
    if args.name is None:
        raise GeounetError("name a benchmark (geounet bench --list shows them)")
    script = bench.resolve(args.name, directory)
    return bench.run_benchmark(script, args.script_args)


def _print_transfers(test: dict) -> None:
    """The relative L2 error on each geometry the model was not trained on."""
    transfers = {name: value for name, value in test.items() if isinstance(value, dict) and "rel_l2_mean" in value}
    if transfers:
        print("\non other geometries (relative L2, mean ± std over samples):")
    for name, value in transfers.items():
        print(f"  {name:<28} {value['rel_l2_mean']:.4f} ± {value['rel_l2_std']:.4f}")


def _print_rollout(test: dict) -> None:
    """A few lead times of the rollout scores, model against persistence."""
    leads = test["lead_hours"]
    picks = sorted({0, len(leads) // 4, len(leads) // 2, len(leads) - 1})
    scores = [k[len("model_") :] for k in test if k.startswith("model_")]
    print(
        f"\nrollout on the test trajectories (model / persistence):\n{'score':<22}"
        + "".join(f"{leads[i]:>8g} h{'':>12}" for i in picks)
    )
    for score in scores:
        cells = "".join(f"{test['model_' + score][i]:>10.3g} / {test['persistence_' + score][i]:<9.3g}" for i in picks)
        print(f"{score:<22}{cells}")


def _model_name(cfg) -> str:
    return model_name(cfg.model.architecture, cfg.model.variant)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geounet",
        description="U-Nets on the sphere, triangles and meshes (Williams, Falck et al. 2023, beyond the square)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="print a hierarchy's levels and the models' parameter counts")
    _add_config_arguments(info)
    info.set_defaults(run=_info)

    datagen = commands.add_parser("datagen", help="generate (or find in the cache) the task's data")
    _add_config_arguments(datagen)
    datagen.set_defaults(run=_datagen)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's checkpoint on the test data")
    evaluate.add_argument("run_dir", type=Path, help="a run directory written by `geounet train`")
    evaluate.add_argument("--device", default=None, help="default: the run's train.device")
    evaluate.add_argument("--plot", action="store_true", help="also redraw predictions.png")
    evaluate.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="task.KEY=VALUE",
        help="evaluate under a changed [task] (e.g. --set task.match_scales=false); writes "
        "evaluation-<key>-<value>.json instead of evaluation.json",
    )
    evaluate.set_defaults(run=_evaluate)

    train = commands.add_parser("train", help="train and evaluate one model; writes metrics, checkpoint, plot")
    _add_config_arguments(train)
    train.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/<task>-<variant>-seed<N>)"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint.pt (same [task], [model])"
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (without it, an occupied --out is an error)"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="also print the test metrics as JSON")
    train.set_defaults(run=_train)

    plot = commands.add_parser(
        "plot",
        help="redraw loss, test-error and rollout curves of runs (and their predictions.png)",
        description="One PNG with the training loss and test relative L2 against step of every run "
        "(overlaid, labelled <variant> seed <N>), and for forecasting tasks the rollout error of "
        "each score against lead time, persistence dashed. Also reads the --results directories "
        "of experiments/compare.py (results.json: test error over seeds, rollout curves).",
    )
    plot.add_argument(
        "run_dirs",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="run directories written by `geounet train` (with metrics.json)",
    )
    plot.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the figure (default: RUN_DIR/curves.png for one run, ./curves.png for several)",
    )
    plot.add_argument(
        "--predictions", action="store_true", help="also redraw each RUN_DIR/predictions.png from its checkpoint.pt"
    )
    plot.add_argument("--device", default=None, help="for --predictions (default: the run's train.device)")
    plot.set_defaults(run=_plot)

    bench = commands.add_parser(
        "bench",
        help="run a benchmark of experiments/bench/ (needs a checkout)",
        description="Run experiments/bench/bench_NAME.py of the checkout around the current directory "
        "(or the one geounet is installed from) with the given options; every benchmark times its "
        "subject and a reference in the same run and prints the ratio.",
        epilog="examples: geounet bench --list; geounet bench sht --help; "
        "geounet bench healpix_restrict --device cuda --nside 512",
    )
    bench.add_argument("--list", action="store_true", help="list the benchmarks and what each measures")
    bench.add_argument("name", nargs="?", metavar="NAME", help="the benchmark, e.g. sht for bench_sht.py")
    bench.add_argument(
        "script_args",
        nargs=argparse.REMAINDER,
        metavar="...",
        help="options for the benchmark script (e.g. --device cuda); NAME --help lists them",
    )
    bench.set_defaults(run=_bench)

    from geounet.forecast_command import add_forecast_parser

    add_forecast_parser(commands)
    add_analyse_parser(commands)
    add_diffusion_parsers(commands)
    return parser


def _is_user_error(error: BaseException) -> bool:
    """A :class:`GeounetError`, or an OS error about a path the user named (missing, a folder
    where a file was meant, no permission, disk full): the user can fix those."""
    return isinstance(error, GeounetError) or (isinstance(error, OSError) and error.filename is not None)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors in what the user gave print as one line with status 2;
    anything else is a defect and raises with its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        if not _is_user_error(error):
            raise
        print(f"geounet {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)  # one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
