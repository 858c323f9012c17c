"""Resolution transfer with and without matched cell sizes, from finished comparison runs.

For every U-Net run directory of a mesh task (written by experiments/compare.py), the
checkpoint is evaluated again with ``task.match_scales=false`` (``geounet evaluate --set``;
the run's own metrics.json holds the default, matched scales), and the mean relative L2
error on the refined and the coarsened held-out meshes is tabulated, mean ± std over seeds.

    python experiments/mesh_scale_ablation.py runs/compare_darcy_clusters/darcy_mesh \\
        --out experiments/darcy_mesh/clusters/match_scales.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from geounet.cli import main as geounet
from geounet.train.checkpoint import atomic_write_text

GROUPS = ("refined", "coarsened")


def group_error(test: dict, group: str) -> float:
    """The mean relative L2 error over the group's remeshed held-out meshes."""
    return test[group]["rel_l2_mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="directory holding <model>-seed<N> run directories")
    parser.add_argument("--out", type=Path, required=True, help="markdown table to write")
    args = parser.parse_args()

    errors: dict[tuple[str, str, bool], list[float]] = {}
    for run in sorted(args.runs.glob("unet-*-seed*")):
        unmatched = run / "evaluation-match_scales-false.json"
        if not unmatched.is_file() and geounet(["evaluate", str(run), "--set", "task.match_scales=false"]) != 0:
            raise SystemExit(f"evaluating {run} failed")
        model = run.name.rsplit("-seed", 1)[0].removeprefix("unet-")
        for matched, path in ((True, run / "metrics.json"), (False, unmatched)):
            test = json.loads(path.read_text())["test"]
            for group in GROUPS:
                errors.setdefault((model, group, matched), []).append(group_error(test, group))

    lines = ["| model | " + " | ".join(f"{g}: matched scales | {g}: unmatched" for g in GROUPS) + " |",
             "|---|" + "---:|" * (2 * len(GROUPS))]
    for model in dict.fromkeys(key[0] for key in errors):
        cells = []
        for group in GROUPS:
            for matched in (True, False):
                values = errors[(model, group, matched)]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.4f} ± {spread:.4f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    command = f"python experiments/mesh_scale_ablation.py {args.runs} --out {args.out}"
    text = "\n".join([f"Reproduce: `{command}` (after the comparison runs)", "", *lines]) + "\n"
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
