"""The gain of doubling the training budget, from two comparisons of the same models and seeds
trained for N and for 2N steps (each under its own full schedule):

    gain = 1 - L(2N) / L(N)      per seed, L the held-out test error at the end of the run.

A model counts as converged when every seed's gain is below 2 % (the criterion of
experiments/RESULTS.md). Prints one row per model (mean ± std of both errors, the gains per
seed) and writes them as JSON.

    python experiments/budget_gains.py experiments/darcy_mesh/converged/steps1200/results.json \\
        experiments/darcy_mesh/converged/steps2400/results.json \\
        --out experiments/darcy_mesh/converged/budget_gains_1200_2400.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from geounet.analysis.paired import format_mean_std

CONVERGED = 0.02  # a doubling that gains less than this is a plateau


def per_seed(results: Path) -> dict[str, dict[int, float]]:
    """model -> seed -> test error, from a results.json of experiments/compare.py."""
    rows = json.loads(results.read_text())["rows"]
    return {model: dict(zip(row["seeds"], row["rel_l2_per_seed"], strict=True)) for model, row in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("budget", type=Path, help="results.json of the N-step runs")
    parser.add_argument("doubled", type=Path, help="results.json of the 2N-step runs")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    short, long = per_seed(args.budget), per_seed(args.doubled)
    report = {}
    print("| model | seeds | L(N) | L(2N) | gain of doubling (per seed) | converged (every gain < 2 %) |")
    print("|---|---|---:|---:|---|---|")
    for model in long:
        seeds = sorted(set(long[model]) & set(short.get(model, {})))
        if not seeds:
            continue
        gains = [1 - long[model][s] / short[model][s] for s in seeds]
        report[model] = {"seeds": seeds, "gain_per_seed": gains,
                         "error_n": [short[model][s] for s in seeds], "error_2n": [long[model][s] for s in seeds],
                         "converged": all(g < CONVERGED for g in gains)}
        print(f"| {model} | {', '.join(map(str, seeds))} | {format_mean_std(report[model]['error_n'])} | "
              f"{format_mean_std(report[model]['error_2n'])} | {', '.join(f'{100 * g:+.1f} %' for g in gains)} | "
              f"{'yes' if report[model]['converged'] else 'no'} |")
    args.out.write_text(json.dumps({"budget": str(args.budget.parent.name), "doubled": str(args.doubled.parent.name),
                                    "converged_below": CONVERGED, "models": report}, indent=1))


if __name__ == "__main__":
    main()
