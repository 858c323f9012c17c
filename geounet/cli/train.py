"""``geounet info | datagen | train | evaluate | plot``: commands on a config and its runs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from geounet.cli.common import add_config_arguments, load_config_arg
from geounet.errors import TrainingDivergedError
from geounet.inference.runs import load_run
from geounet.models.unet import VARIANTS
from geounet.plot.curves import model_name


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``info``, ``datagen``, ``evaluate``, ``train`` and ``plot``."""
    info = commands.add_parser("info", help="print a hierarchy's levels and the models' parameter counts")
    add_config_arguments(info)
    info.set_defaults(run=_info)

    datagen = commands.add_parser("datagen", help="generate (or find in the cache) the task's data")
    add_config_arguments(datagen)
    datagen.set_defaults(run=_datagen)

    evaluate = commands.add_parser("evaluate", help="re-evaluate a run's checkpoint on the test data")
    evaluate.add_argument("run_dir", type=Path, help="a run directory written by `geounet train`")
    evaluate.add_argument("--device", default=None, help="default: the run's train.device")
    evaluate.add_argument("--plot", action="store_true",
                          help="also redraw predictions.png and the task's own output files")
    evaluate.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="task.KEY=VALUE",
        help="evaluate under a changed [task] (e.g. --set task.match_scales=false); writes "
        "evaluation-<key>-<value>.json instead of evaluation.json",
    )
    evaluate.set_defaults(run=_evaluate)

    train = commands.add_parser("train", help="train and evaluate one model; writes metrics, checkpoint, plot")
    add_config_arguments(train)
    train.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/<task>-<variant>-seed<N>)"
    )
    train.add_argument(
        "--resume", action="store_true",
        help="continue the run in --out from its checkpoint.pt (same [task], [model]); without --config, "
        "under the run's own config and the --set overrides (e.g. --set train.steps=19200)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out (without it, an occupied --out is an error)"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--force", action="store_true",
                       help="train even when the run's memory estimate exceeds the memory available")
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
    plot.add_argument("--overwrite", action="store_true", help="replace the figure if it exists")
    plot.set_defaults(run=_plot)


def _info(args: argparse.Namespace) -> int:
    import torch

    from geounet.experiment.runner import build_configured_unet
    from geounet.tasks import task_structure

    cfg = load_config_arg(args)
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
        with torch.device("meta"):  # shapes without memory: any width can be counted
            counts = build_configured_unet(cfg, structure).parameter_counts()
        print(f"{variant:<22}" + "".join(f"{counts[p]:>12,}" for p in parts))
    return 0


def _train(args: argparse.Namespace) -> int:
    from geounet.experiment.runner import run_experiment
    from geounet.train import distributed

    if args.resume and args.config is None:
        cfg, out = _stored_run_config(args)
    else:
        cfg = load_config_arg(args)
        out = args.out or Path("runs") / f"{cfg.task.name}-{_model_name(cfg)}-seed{cfg.train.seed}"
    cfg.train.device = distributed.setup(cfg.train.device)
    main_process = distributed.is_main_process()
    try:
        metrics = run_experiment(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                                 force=args.force)
    finally:
        distributed.teardown()
    if not main_process:
        return 0
    test = metrics["test"]
    print(
        f"\n{_model_name(cfg)} on {cfg.task.name}: {_headline(test)}; "
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


def _stored_run_config(args: argparse.Namespace):
    """``--resume`` without ``--config``: the run in ``--out`` continues under its own stored
    config, with the ``--set`` overrides (e.g. ``train.steps`` for a larger budget). At a constant
    learning rate (``train.min_lr_ratio = 1``) the continued run is the longer run; under the cosine
    decay the remaining steps follow the new budget's schedule, which jumps up where the old one ended."""
    from geounet.experiment.config import load_run_config
    from geounet.train.config import ConfigError
    from geounet.train.run_folder import stored_config

    if args.out is None:
        raise ConfigError("--resume without --config continues the run in --out; name the run folder with --out")
    stored = stored_config(args.out)
    if stored is None:
        raise ConfigError(f"{args.out} holds no run (no checkpoint.pt or metrics.json) to resume; "
                          "pass --config to start one there")
    return load_run_config(stored, args.overrides), args.out


def _datagen(args: argparse.Namespace) -> int:
    import torch

    from geounet.tasks import prepare_task

    cfg = load_config_arg(args)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    for split in ("train", "test"):
        data = getattr(task, split)
        first = data.batch(torch.arange(1))  # any data set: one grid, many meshes, or lazy files
        print(f"{split:<5} {len(data)} samples; the first: inputs {tuple(first.inputs.shape)}  "
              f"targets {tuple(first.targets.shape)}")
    print(f"cached in {cfg.task.cache_dir}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from geounet.experiment.runner import evaluate_transfers, test_evaluation
    from geounet.plot.fields import plot_test_predictions
    from geounet.train.checkpoint import atomic_write_text

    cfg, state, task, model, device = load_run(args.run_dir, args.device, args.overrides)
    test = test_evaluation(cfg, task, device)(model, task.test)
    if task.evaluate_extra is not None:
        test.update(task.evaluate_extra(model, device))
    test.update(evaluate_transfers(cfg, model, task, device))
    if not math.isfinite(test.get("mean_iou", test.get("rel_l2_mean"))):
        raise TrainingDivergedError(
            f"the checkpoint's predictions on the test data are not finite ({_headline(test)}); "
            f"nothing written to {args.run_dir}"
        )
    suffix = "".join(f"-{o.split('.', 1)[-1].replace('=', '-')}" for o in args.overrides).replace("/", "_")
    evaluation = args.run_dir / f"evaluation{suffix}.json"
    atomic_write_text(evaluation, json.dumps({"step": state["step"], "overrides": args.overrides, "test": test},
                                             indent=2))
    print(f"{_model_name(cfg)} at step {state['step']}: {_headline(test)}")
    if "lead_hours" in test:
        _print_rollout(test)
    _print_transfers(test)
    written = [evaluation]
    if args.plot:
        plot_test_predictions(model, task, device, str(args.run_dir / "predictions.png"))
        written.append(args.run_dir / "predictions.png")
        if task.write_outputs is not None:  # e.g. a segmentation run's probability maps
            written += task.write_outputs(model, device, args.run_dir, test)
    print("wrote " + ", ".join(map(str, written)))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from geounet.data.outputs import check_output, write_output
    from geounet.plot.curves import read_curves
    from geounet.plot.fields import plot_run_curves, plot_test_predictions

    out = args.out or (args.run_dirs[0] / "curves.png" if len(args.run_dirs) == 1 else Path("curves.png"))
    check_output(out, (".png", ".pdf", ".svg"), overwrite=args.overwrite)
    curves = read_curves(args.run_dirs)
    panels = []
    write_output(out, lambda tmp: panels.extend(plot_run_curves(curves.histories, curves.finals, curves.rollouts,
                                                                str(tmp))))
    print(f"wrote {out}: " + "; ".join(panels))
    if args.predictions:
        for run_dir in args.run_dirs:
            _, _, task, model, device = load_run(run_dir, args.device)
            plot_test_predictions(model, task, device, str(run_dir / "predictions.png"))
            print(f"wrote {run_dir / 'predictions.png'}")
    return 0


def _headline(test: dict) -> str:
    """The main test score: mean IoU for segmentation tasks, else the relative L2 error."""
    if "mean_iou" in test:
        return f"test mean IoU {test['mean_iou']:.4f} (accuracy {test['accuracy']:.4f})"
    return f"test relative L2 {test['rel_l2_mean']:.4f} ± {test['rel_l2_std']:.4f} (mean ± std over test samples)"


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
