"""How closely each model fits its training data against how it does on held-out data, from the
run metrics that compare.py writes (or their thinned copies, experiments/thin_metrics.py).

Per model, mean ± std over seeds of the training loss averaged over the last ``--last`` steps of
the run (every logged step in that window; thinned metrics keep every 10th) and of the held-out
MSE (``test.mse``), and each model's paired difference to the first one over their shared seeds
(mean [95 % t-interval], :mod:`geounet.analysis.paired`). A model with the lower training loss
and the higher held-out error fits the training geometries more closely and generalises less.

    python experiments/fit_and_heldout.py --last 240 \\
        --model "Residual U-Net" experiments/darcy_mesh/converged/steps2400/runs/unet-residual-seed*.json \\
        --model Multi-ResNet experiments/darcy_mesh/converged/steps2400/runs/unet-multiresnet-seed*.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from geounet.analysis.paired import format_difference, format_mean_std, paired_by_seed


def training_loss_tail(metrics: dict, last: int) -> float:
    """Mean of the logged training losses of the run's last ``last`` steps."""
    end = metrics["steps"]
    losses = [h["loss"] for h in metrics["history"] if "loss" in h and h["step"] > end - last]
    if not losses:
        raise SystemExit(f"no training loss logged in the last {last} of {end} steps")
    return statistics.fmean(losses)


def read_metrics(path: Path) -> dict:
    """The metrics of a run: a metrics JSON, or a run folder's metrics.json."""
    file = path / "metrics.json" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"{file} does not exist: pass a run's metrics JSON or its folder, of a finished run")
    return json.loads(file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", action="append", required=True, metavar=("LABEL", "RUN"),
                        help="a label, then each of its seeds' metrics JSON or run folder (its metrics.json)")
    parser.add_argument("--last", type=int, required=True, help="steps at the end of each run to average the loss over")
    args = parser.parse_args()
    print(f"| model | seeds | training loss, last {args.last} steps | held-out MSE | "
          "− first model (paired): training loss | held-out MSE |")
    print("|---|---:|---:|---:|---:|---:|")
    first = None  # the first model's ({seed: loss}, {seed: held-out MSE})
    for label, *paths in args.model:
        runs = [read_metrics(Path(path)) for path in paths]
        fit = {m["config"]["train"]["seed"]: training_loss_tail(m, args.last) for m in runs}  # {seed: loss}
        heldout = {m["config"]["train"]["seed"]: m["test"]["mse"] for m in runs}
        if first is None:
            first, paired = (fit, heldout), ("", "")
        else:
            paired = (format_difference(paired_by_seed(fit, first[0])),
                      format_difference(paired_by_seed(heldout, first[1])))
        print(f"| {label} | {len(runs)} | {format_mean_std(list(fit.values()))} | "
              f"{format_mean_std(list(heldout.values()))} | {paired[0]} | {paired[1]} |")


if __name__ == "__main__":
    main()
