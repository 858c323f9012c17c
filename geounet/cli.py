"""The ``geounet`` command.

geounet info  [--config FILE] [--set section.key=value ...]
geounet train [--config FILE] [--set ...] [--out DIR] [--resume]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geounet.models.unet import VARIANTS

DEFAULT_CONFIG = Path("experiments/shallow_water_healpix/config.toml")


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"TOML config with [task], [model], [train] (default: {DEFAULT_CONFIG} if present, "
        "else built-in defaults)",
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
    from geounet.train.config import load_config

    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_config(path, args.overrides)


def _info(args: argparse.Namespace) -> int:
    from geounet.tasks import task_structure
    from geounet.train.experiment import build_configured_unet

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
    from geounet.train import distributed
    from geounet.train.experiment import run_experiment

    cfg = _load(args)
    out = args.out or Path("runs") / f"{cfg.task.name}-{_model_name(cfg)}-seed{cfg.train.seed}"
    cfg.train.device = distributed.setup(cfg.train.device)
    main_process = distributed.is_main_process()
    try:
        metrics = run_experiment(cfg, out, resume=args.resume, progress=not args.quiet)
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
    from geounet.tasks import prepare_task

    cfg = _load(args)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    for split in ("train", "test"):
        data = getattr(task, split)
        print(f"{split:<5} inputs {tuple(data.inputs.shape)}  targets {tuple(data.targets.shape)}")
    print(f"cached in {cfg.task.cache_dir}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from geounet.tasks import prepare_task
    from geounet.train.checkpoint import atomic_write_text, load_checkpoint
    from geounet.train.config import config_from_dict
    from geounet.train.experiment import build_model, evaluate_transfers
    from geounet.train.loop import evaluate

    state = load_checkpoint(args.run_dir / "checkpoint.pt")
    cfg = config_from_dict(state["config"])
    task = prepare_task(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, task.structure)
    model.load_state_dict(state["model"])
    device = torch.device(args.device or cfg.train.device)
    model.to(device).eval()
    test = evaluate(model, task.test, cfg.train.batch_size, device)
    if task.evaluate_extra is not None:
        test.update(task.evaluate_extra(model, device))
    test.update(evaluate_transfers(cfg, model, task, device))
    atomic_write_text(args.run_dir / "evaluation.json", json.dumps({"step": state["step"], "test": test}, indent=2))
    error = f"{test['rel_l2_mean']:.4f} ± {test['rel_l2_std']:.4f}"
    print(f"{_model_name(cfg)} at step {state['step']}: test relative L2 {error}")
    if "lead_hours" in test:
        _print_rollout(test)
    _print_transfers(test)
    written = [args.run_dir / "evaluation.json"]
    if args.plot:
        with torch.no_grad():
            predictions = model(task.test.inputs[:2].to(device)).cpu()
        task.plot(task.test.inputs[:2], task.test.targets[:2], predictions, str(args.run_dir / "predictions.png"))
        written.append(args.run_dir / "predictions.png")
    print("wrote " + ", ".join(map(str, written)))
    return 0


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
    return cfg.model.variant if cfg.model.architecture == "unet" else cfg.model.architecture


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
    evaluate.set_defaults(run=_evaluate)

    train = commands.add_parser("train", help="train and evaluate one model; writes metrics, checkpoint, plot")
    _add_config_arguments(train)
    train.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/<task>-<variant>-seed<N>)"
    )
    train.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--json", action="store_true", help="also print the test metrics as JSON")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        print(f"geounet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
