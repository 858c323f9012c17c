"""Copy runs' ``metrics.json`` into an experiment folder with their training history thinned:
the rows of every ``--every``-th step and every row that holds a test evaluation are kept, the
rest of the per-step loss rows are dropped (a 19200-step run's history is 1 MB). Absolute paths
under the working directory (the repository root: a task's data file) are written relative to it,
so a stored copy names no machine's folders. Everything else in the file is kept as it is. Each
run folder ``<runs>/<name>/`` becomes ``<out>/<name>.json``.

    python experiments/thin_metrics.py --every 60 --out experiments/square_forced_turbulence/converged_19200/runs \\
        runs/converge19200/navier_stokes_forced/*/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def thinned(metrics: dict, every: int) -> dict:
    """``metrics`` with the history rows of every ``every``-th step and of every evaluation."""
    history = [row for row in metrics["history"] if row["step"] % every == 0 or "test_rel_l2_mean" in row]
    return {**metrics, "history": history}


def relative_paths(value, root: Path):
    """``value`` (nested dicts and lists) with every string that is an absolute path under ``root``
    made relative to ``root``."""
    if isinstance(value, dict):
        return {key: relative_paths(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [relative_paths(item, root) for item in value]
    if isinstance(value, str) and Path(value).is_absolute() and Path(value).is_relative_to(root):
        return str(Path(value).relative_to(root))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding a metrics.json")
    parser.add_argument("--every", type=int, required=True, help="keep the loss of every this many steps")
    parser.add_argument("--out", type=Path, required=True, help="the folder the thinned copies go to")
    args = parser.parse_args()
    if args.every < 1:
        parser.error(f"--every must be a positive number of steps, got {args.every}")
    args.out.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        metrics = json.loads((run / "metrics.json").read_text())
        kept = thinned(metrics, args.every)
        kept["config"] = relative_paths(kept["config"], Path.cwd())
        target = args.out / f"{run.resolve().name}.json"
        target.write_text(json.dumps(kept, separators=(",", ":")))
        print(f"{target}: {len(kept['history'])} of {len(metrics['history'])} history rows")


if __name__ == "__main__":
    main()
