"""Table 1 of the paper on the square, scaled to this project's machines.

Trains the three U-Net variants (Multi-ResNet, residual U-Net, Multi-ResNet with the
saved encoder parameters spent in the decoder) on 2-D Navier-Stokes for several seeds
under one config and budget, and writes results.md, results.json and loss_curves.png
next to this script.

    python experiments/square_navier_stokes/run.py                 # CPU, config.toml budget
    python experiments/square_navier_stokes/run.py --device cuda --set train.steps=3000
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from geounet.train.checkpoint import atomic_write_text
from geounet.train.config import load_config
from geounet.train.experiment import run_experiment
from geounet.train.plots import plot_loss_curves

HERE = Path(__file__).resolve().parent
LABELS = {
    "residual": "Residual U-Net (learned encoder)",
    "multiresnet": "Multi-ResNet (no params added in dec.)",
    "multiresnet_matched": "Multi-ResNet (saved params added in dec.)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--runs", type=Path, default=Path("runs/square_navier_stokes"))
    parser.add_argument("--results", type=Path, default=HERE)
    args = parser.parse_args()

    rows, histories = {}, {}
    for variant in LABELS:
        runs = []
        for seed in args.seeds:
            overrides = [*args.overrides, f"model.variant='{variant}'", f"train.seed={seed}"]
            overrides.append(f"train.device='{args.device}'")
            cfg = load_config(HERE / "config.toml", overrides)
            metrics = run_experiment(cfg, args.runs / f"{variant}-seed{seed}")
            runs.append(metrics)
            print(f"{variant} seed {seed}: rel L2 {metrics['test']['rel_l2_mean']:.4f}")
        errors = [m["test"]["rel_l2_mean"] for m in runs]
        rows[variant] = {
            "rel_l2_mean": statistics.mean(errors),
            "rel_l2_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "rel_l2_per_seed": errors,
            "parameters": runs[0]["parameters"],
            "train_seconds_mean": statistics.mean(m["seconds"]["train"] for m in runs),
        }
        histories[LABELS[variant]] = runs[0]["history"]

    cfg = load_config(HERE / "config.toml", args.overrides)
    command = "python experiments/square_navier_stokes/run.py " + " ".join(
        [f"--device {args.device}", "--seeds " + " ".join(map(str, args.seeds))]
        + [f'--set "{o}"' for o in args.overrides]
    )
    lines = [
        "# 2-D Navier-Stokes on the square: the role of the encoder (paper Table 1 setting)",
        "",
        f"Task: ω(t0) -> ω(t0 + {cfg.task.horizon}) on the periodic {cfg.task.resolution}^2 torus, "
        f"ν = {cfg.task.viscosity}, {cfg.task.num_train} training / {cfg.task.num_test} test pairs "
        f"from geounet's pseudo-spectral solver. {cfg.train.steps} AdamW steps, batch "
        f"{cfg.train.batch_size}, lr {cfg.train.lr}, {cfg.model.num_levels} levels, width "
        f"{cfg.model.width}, on {args.device}. Test relative L2 error, mean ± std over seeds "
        f"{args.seeds}.",
        "",
        f"Reproduce: `{command}`",
        "",
        "| model | encoder params | total params | test rel. L2 | per seed | train s/run |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for variant, row in rows.items():
        p = row["parameters"]
        per_seed = ", ".join(f"{e:.4f}" for e in row["rel_l2_per_seed"])
        lines.append(
            f"| {LABELS[variant]} | {p['encoder']:,} | {p['total']:,} | "
            f"{row['rel_l2_mean']:.4f} ± {row['rel_l2_std']:.4f} | {per_seed} | {row['train_seconds_mean']:.0f} |"
        )
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / "results.md", "\n".join(lines) + "\n")
    atomic_write_text(args.results / "results.json", json.dumps({"command": command, "rows": rows}, indent=2))
    plot_loss_curves(histories, str(args.results / "loss_curves.png"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
