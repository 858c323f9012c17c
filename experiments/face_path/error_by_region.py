"""Where on the sphere one main-job model's rollout error exceeds another's: RMSE of h by region.

Loads trained shallow-water runs (``metrics.json`` + ``checkpoint.pt`` folders written by
``experiments/compare.py``, one per model and seed), rolls every one out from the first state
of each test trajectory as the task's evaluation does, and splits the squared error of the
height h (NEST pixels, equal areas) at the chosen leads by

- latitude band (30° bands): the Coriolis parameter f = 2Ω sin(latitude) varies across them;
- distance in pixels to the nearest edge of the pixel's base face (0 = on the face's rim);
- angular distance to the nearest of the 8 points where three base faces meet (z = ±2/3).

Per region it reports the RMSE over the test trajectories, mean over seeds, for every model,
and the paired difference of every model against the first (same seeds; mean [95 % t-interval]).

    PYTHONPATH=$PWD python experiments/face_path/error_by_region.py --leads 12 24 \\
        --model "NEST=runs/face_main/shallow_water_healpix/unet-multiresnet-seed{}" \\
        --model "face conv3x3=runs/.../<face run>-seed{}" --seeds 0 1 2 3 4 --out error_by_region.json

(``{}`` in a run pattern is the seed.) The data cache ``task.cache_dir`` of the runs must be
reachable from the working directory (the default ``data`` at the repository root).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch

from geounet.analysis.paired import format_difference, paired_by_seed
from geounet.geometry.healpix import deinterleave, pixel_vectors
from geounet.inference.runs import load_run
from geounet.tasks.rollouts import roll_out
from geounet.tasks.shallow_water_healpix import nest_nodes


def squared_errors(run_dir: Path) -> tuple[torch.Tensor, list[float]]:
    """Squared error of h of the run's test rollouts, mean over trajectories ``[L, N]`` (NEST), and the leads."""
    cfg, _, task, model, device = load_run(run_dir, "cpu")
    steps = cfg.task.rollout_steps  # one window per test trajectory, from its first state
    samples = dataclasses.replace(task.test, trajectories=task.test.trajectories[:, : steps + 1], steps=steps)
    with torch.no_grad():
        rolled = roll_out(model, samples, np.arange(len(samples)), device)
    forecast, truth = nest_nodes(cfg.task, rolled.forecast), nest_nodes(cfg.task, rolled.truth)  # [S, L, N, C]
    h = cfg.task.variables.index("h")
    leads = [cfg.task.dt_hours * (k + 1) for k in range(steps)]
    return ((forecast - truth)[..., h] ** 2).mean(0), leads


def regions(nside: int) -> dict[str, torch.Tensor]:
    """Boolean masks ``[N]`` (NEST) of the regions named in the module docstring."""
    xyz = pixel_vectors(nside)  # [N, 3]
    latitude = torch.rad2deg(torch.asin(xyz[:, 2].clamp(-1, 1)))
    x, y = deinterleave(torch.arange(len(xyz)) % (nside * nside))
    rim = torch.minimum(torch.minimum(x, y), torch.minimum(nside - 1 - x, nside - 1 - y))
    r = math.sqrt(1 - (2 / 3) ** 2)
    corners = torch.tensor([[r * math.cos(k * math.pi / 2), r * math.sin(k * math.pi / 2), z]
                            for z in (2 / 3, -2 / 3) for k in range(4)], dtype=torch.float64)  # [8, 3]
    corner = torch.rad2deg(torch.acos((xyz @ corners.T).clamp(-1, 1)).min(1).values)
    masks = {"all": torch.ones(len(xyz), dtype=torch.bool)}
    for low in range(-90, 90, 30):
        high = low + 30 if low < 60 else 91  # the last band holds the pole
        masks[f"latitude {low}..{low + 30}"] = (latitude >= low) & (latitude < high)
    for low, high in ((0, 0), (1, 3), (4, 7), (8, nside)):
        masks[f"face rim distance {low}-{high} px"] = (rim >= low) & (rim <= high)
    for low, high in ((0, 10), (10, 20), (20, 180)):
        masks[f"three-face point {low}-{high} deg"] = (corner >= low) & (corner < high)
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=RUN_PATTERN")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--leads", type=float, nargs="+", default=[12.0, 24.0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = dict(spec.split("=", 1) for spec in args.model)
    errors, leads = {}, None
    for label, pattern in models.items():
        per_seed = {}
        for seed in args.seeds:
            per_seed[seed], leads = squared_errors(Path(pattern.format(seed)))
        errors[label] = per_seed  # {seed: [L, N]}
    nside = round(math.sqrt(next(iter(errors[next(iter(errors))].values())).shape[1] / 12))
    masks = regions(nside)
    reference = next(iter(models))
    report = {"command": "python experiments/face_path/error_by_region.py " + " ".join(
        [*(f'--model "{spec}"' for spec in args.model), "--seeds", *map(str, args.seeds),
         "--leads", *map(str, args.leads), "--out", str(args.out)]), "leads": {}}
    for lead in args.leads:
        index = leads.index(lead)
        table = {}
        print(f"\nRMSE of h at {lead:g} h [m], mean over seeds {args.seeds}; paired difference to {reference}")
        for name, mask in masks.items():
            rmse = {label: {s: float(e[index, mask].mean().sqrt()) for s, e in per_seed.items()}
                    for label, per_seed in errors.items()}
            row = {"pixels": int(mask.sum()), "rmse": rmse, "difference": {}}
            cells = [f"{label} {np.mean(list(v.values())):7.1f}" for label, v in rmse.items()]
            for label in list(models)[1:]:
                row["difference"][label] = paired_by_seed(rmse[label], rmse[reference])
                cells.append(f"{label} − {reference} {format_difference(row['difference'][label])}")
            print(f"  {name:30s} ({row['pixels']:5d} px)  " + " | ".join(cells))
            table[name] = row
        report["leads"][f"{lead:g}"] = table
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
