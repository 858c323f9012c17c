"""The test error and the budget-doubling gain of constant-rate runs at every doubling of the steps.

With the learning rate constant after the warm-up, the first M steps of an N-step run are the
M-step run, so one long run's evaluation curve gives, for every budget M = N, N/2, N/4, ..., the
error L̄(M) (the mean of the last 3 evaluations up to step M) and the gain of doubling to M,
1 - L̄(M) / L̄(M/2) (:func:`geounet.analysis.convergence.doubling_gain`). Reads the ``metrics.json``
of every run folder given (``<model>-seed<s>``), prints per model and budget the mean ± std over
seeds of L̄ and of the gain with the per-seed gains, and the paired difference of L̄ of every
model against the first, and writes all of it as JSON.

    python experiments/doublings.py --budgets 1200 2400 4800 9600 \\
        --out experiments/square_forced_turbulence/converged_9600/doublings.json \\
        experiments/square_forced_turbulence/converged_9600/runs/*.json

A run converges by the criterion of experiments/RESULTS.md once the gain of its last doubling is
below 2 %; a negative gain (the held-out error rose) counts as converged too.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from geounet.analysis.convergence import doubling_gain
from geounet.analysis.paired import format_difference, paired_by_seed

SMOOTH = 3  # evaluations averaged into L̄(M)


def curve(metrics: dict) -> tuple[list[int], list[float]]:
    """Steps and test errors of a run's evaluations."""
    points = [(h["step"], h["test_rel_l2_mean"]) for h in metrics["history"] if "test_rel_l2_mean" in h]
    return [s for s, _ in points], [e for _, e in points]


def at_budget(steps: list[int], errors: list[float], budget: int) -> tuple[float, float]:
    """``(L̄(budget), gain of doubling to budget)``."""
    kept = [(s, e) for s, e in zip(steps, errors, strict=True) if s <= budget]
    cut_steps, cut_errors = [s for s, _ in kept], [e for _, e in kept]
    return statistics.fmean(cut_errors[-SMOOTH:]), doubling_gain(cut_steps, cut_errors, SMOOTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="metrics.json files (or run folders holding one)")
    parser.add_argument("--budgets", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table: dict[str, dict[int, dict[int, tuple[float, float]]]] = {}  # model -> seed -> budget -> (L̄, gain)
    for path in args.runs:
        path = path / "metrics.json" if path.is_dir() else path
        model, seed = re.fullmatch(r"(.+)-seed(\d+)", path.parent.name if path.name == "metrics.json"
                                   else path.stem).groups()
        steps, errors = curve(json.loads(path.read_text()))
        if steps[-1] < max(args.budgets):
            raise SystemExit(f"{path} ends at step {steps[-1]}, before the budget {max(args.budgets)}")
        table.setdefault(model, {})[int(seed)] = {b: at_budget(steps, errors, b) for b in args.budgets}
    reference = next(iter(table))
    report = {"budgets": args.budgets, "smooth": SMOOTH, "reference": reference, "models": {}}
    print(f"| model | steps | seeds | test rel. L2 (mean of the last {SMOOTH} evaluations) "
          f"| gain of the last doubling (per seed) | − {reference} (paired) |")
    print("|---|---:|---|---:|---|---|")
    for model, seeds in table.items():
        per_seed = {s: {str(b): v for b, v in budgets.items()} for s, budgets in seeds.items()}
        report["models"][model] = {"per_seed": per_seed, "paired": {}}
        for budget in args.budgets:
            errors = {s: seeds[s][budget][0] for s in seeds}
            gains = [seeds[s][budget][1] for s in sorted(seeds)]
            spread = statistics.stdev(errors.values()) if len(errors) > 1 else 0.0
            cell = ""
            if model != reference:
                shared = set(seeds) & set(table[reference])
                if len(shared) >= 2:
                    paired = paired_by_seed(errors, {s: table[reference][s][budget][0] for s in shared})
                    report["models"][model]["paired"][str(budget)] = paired
                    cell = format_difference(paired)
            mean = statistics.fmean(errors.values())
            print(f"| {model} | {budget} | {', '.join(map(str, sorted(seeds)))} | {mean:.4f} ± {spread:.4f} | "
                  f"{', '.join(f'{100 * g:+.1f} %' for g in gains)} | {cell} |")
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
