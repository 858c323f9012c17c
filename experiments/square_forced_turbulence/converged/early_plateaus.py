"""Where the window criterion (:func:`geounet.analysis.convergence.has_plateaued`: < 1 % gain over
the last 20 % of the steps) would have stopped each run of this folder, had its budget ended at an
earlier evaluation: the first such step, the test error there and the run's final error.

Reads ``runs/*.json`` (converge.sh table) and writes ``early_plateaus.json``.

    PYTHONPATH=$PWD python experiments/square_forced_turbulence/converged/early_plateaus.py
"""

from __future__ import annotations

import json
from pathlib import Path

from geounet.analysis.convergence import has_plateaued

HERE = Path(__file__).parent


def first_plateau(curve: list[tuple[int, float]]) -> tuple[int, float] | None:
    """The first evaluation (step, error) at which the curve up to it counts as plateaued."""
    for end in range(3, len(curve) + 1):
        steps, errors = zip(*curve[:end], strict=True)
        if has_plateaued(steps, errors):
            return curve[end - 1]
    return None


def main() -> None:
    result = {"command": "PYTHONPATH=$PWD python experiments/square_forced_turbulence/converged/early_plateaus.py"}
    for path in sorted((HERE / "runs").glob("*.json")):
        history = json.loads(path.read_text())["history"]
        curve = [(row["step"], row["test_rel_l2_mean"]) for row in history if "test_rel_l2_mean" in row]
        early = first_plateau(curve)
        result[path.stem] = {"first_plateau_step": early and early[0], "error_there": early and early[1],
                             "final_step": curve[-1][0], "final_error": curve[-1][1]}
        print(path.stem, result[path.stem])
    (HERE / "early_plateaus.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
