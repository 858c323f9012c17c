"""Does the square task separate models? Mode shares, persistence and spin-up of both settings.

For FNO's single-forcing setting and for forced turbulence (random forcing per sample, drag,
long spin-up), on ``--samples`` draws: the share of the targets' energy, and of the change
target - input, held by the largest Fourier mode pair (:func:`largest_mode_share`), the
relative L2 error of persistence, and that error with the largest pair of the change taken
out. For forced turbulence also the spin-up: domain-mean energy and enstrophy every time
unit up to ``--spinup-record`` and the settling time (within 5 % of the mean over the last
half of the record, :func:`settling_time`). Writes ``setting.json``.

    PYTHONPATH=$PWD python experiments/square_forced_turbulence/measure_setting.py
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch

from geounet.analysis.convergence import settling_time
from geounet.analysis.fourier_modes import largest_mode_share
from geounet.datagen.navier_stokes import (
    ForcedNavierStokesConfig,
    NavierStokesConfig,
    generate_forced_navier_stokes,
    generate_navier_stokes,
    spinup_history,
)


def without_mode(fields: torch.Tensor, mode: list[int]) -> torch.Tensor:
    """``fields [S, n, n]`` with the Fourier pair ±mode removed."""
    coefficients = torch.fft.fft2(fields.double())
    kx, ky = mode
    coefficients[:, ky, kx] = 0
    coefficients[:, -ky, -kx] = 0
    return torch.fft.ifft2(coefficients).real


def describe(inputs: torch.Tensor, targets: torch.Tensor) -> dict:
    change = targets - inputs
    change_mode = largest_mode_share(change)
    norms = targets.double().norm(dim=(-2, -1))
    return {
        "target_largest_mode": largest_mode_share(targets),
        "change_largest_mode": change_mode,
        "persistence_rel_l2": (change.double().norm(dim=(-2, -1)) / norms).mean().item(),
        "persistence_rel_l2_without_that_mode": (without_mode(change, change_mode["mode"]).norm(dim=(-2, -1))
                                                 / norms).mean().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--spinup-record", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "setting.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    fno = NavierStokesConfig(num_samples=args.samples)
    forced = ForcedNavierStokesConfig(num_samples=args.samples)
    history = spinup_history(forced, every=1.0, total=args.spinup_record)
    times = history["times"].tolist()
    mean_energy, mean_enstrophy = (history[key].mean(dim=1).tolist() for key in ("energy", "enstrophy"))
    data = generate_forced_navier_stokes(forced)
    result = {
        "command": "PYTHONPATH=$PWD python experiments/square_forced_turbulence/measure_setting.py "
                   f"--samples {args.samples} --spinup-record {args.spinup_record}",
        "fno_single_forcing": {"config": asdict(fno), **describe(*generate_navier_stokes(fno))},
        "forced_turbulence": {
            "config": asdict(forced),
            **describe(data["inputs"], data["targets"]),
            "forcing_largest_mode": largest_mode_share(data["forcings"]),
            "spinup": {
                "times": times, "energy_mean": mean_energy, "enstrophy_mean": mean_enstrophy,
                "criterion": "first time after which the sample-mean series stays within 5 % of its mean "
                             "over the last half of the record",
                "energy_settles_at": settling_time(times, mean_energy, 0.05),
                "enstrophy_settles_at": settling_time(times, mean_enstrophy, 0.05),
            },
        },
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "command"}, indent=1)[:3000])


if __name__ == "__main__":
    main()
