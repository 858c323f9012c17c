"""Training step of the spherical-harmonic U-Net against the Haar U-Net, interleaved in one run.

The shallow-water task's model (experiments/shallow_water_healpix/config.toml: Multi-ResNet,
width 16, channel_mult [1, 2, 4], 4 levels, message passing, 3 variables) on the same
HEALPix grids twice: with :class:`~geounet.hierarchy.HealpixSHHierarchy` and with
:class:`~geounet.hierarchy.HealpixHaarHierarchy`. One step is forward + weighted MSE +
backward + AdamW step on a random batch; the two models alternate step by step (after a
warm-up step each, which also builds the SH operators), so both see the same load. Prints
the median and min-max seconds per step and the SH / Haar ratio (target <= 3 at nside 64).

Then the accuracy / iterations trade-off of the finest restriction (nside -> nside / 2,
analysis up to L = nside, the coarse level's band), for k Jacobi iterations:

- ``band err``: max |restrict(x) - x_coarse| for x of degree <= nside sampled on the fine
  grid (its exact restriction is the same function sampled on the coarse grid), float64;
- ``nested err``: max |restrict(prolong(y)) - y| for y of degree <= nside on the coarse
  grid, where prolong's analysis (L = 2 nside_coarse) converges most slowly, float64;
- ``iterated ms`` / ``folded ms``: one restrict of the benchmark batch (batch x width
  float32 channels) with the iterations run one by one or folded into one operator
  (median and min-max over the repeats, interleaved); the folded operator's one-off float64
  build is timed once.

    .venv/bin/python experiments/bench/bench_sh_training.py [--nside 64] [--iterations 20] \
        [--jacobi auto] [--repeats 7] [--threads 1 --clock cpu]
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch
from bench_healpix_restrict import CLOCKS, timed  # the script's directory is on sys.path

from geounet.functional.losses import weighted_mse
from geounet.functional.sht import JACOBI_METHODS, HealpixSHT
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
from geounet.models.unet import build_unet
from geounet.nn.message_passing import MessagePassingFactory

CHANNELS = 3  # h, vorticity, divergence
TABLE_ITERATIONS = (0, 1, 3, 10, 20)


def training_step(hierarchy, args, device: torch.device):
    """A closure running one optimiser step of the task's U-Net on ``hierarchy``."""
    torch.manual_seed(0)
    model = build_unet(hierarchy, CHANNELS, CHANNELS, MessagePassingFactory(hierarchy), variant="multiresnet",
                       width=args.width, channel_mult=[1, 2, 4], encoder_blocks=1, bottleneck_blocks=1).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n = hierarchy.num_nodes(hierarchy.finest_level)
    inputs, targets = (torch.randn(args.batch, n, CHANNELS, device=device) for _ in range(2))  # [B, N, C]
    weights = torch.full((n,), 1.0 / n, device=device)  # equal-area pixels

    def step() -> None:
        loss = weighted_mse(model(inputs, hierarchy), targets, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


def spread(values: list[float], scale: float = 1.0) -> str:
    """``median (min-max)`` of ``values`` times ``scale``."""
    return f"{scale * statistics.median(values):.1f} ({scale * min(values):.1f}-{scale * max(values):.1f})"


def band_limited(hierarchy: HealpixSHHierarchy, level: int, lmax: int, count: int) -> torch.Tensor:
    """Pixel values at ``level`` of ``count`` random functions of degree <= ``lmax``, ``[1, N, count]`` float64."""
    sht = hierarchy.sht(level)
    generator = torch.Generator().manual_seed(0)  # the same function on every level
    alm = torch.zeros(count, sht.lmax + 1, sht.mmax + 1, dtype=torch.complex128)
    values = torch.randn(count, lmax + 1, lmax + 1, 2, dtype=torch.float64, generator=generator)
    alm[:, : lmax + 1, : lmax + 1] = torch.view_as_complex(values).tril()  # zero where m > l
    alm[..., 0] = alm[..., 0].real  # a_l0 of a real map is real
    return sht.synthesis(alm).T[None]


def iteration_table(args, clock) -> None:
    """Errors and restrict times against the number of Jacobi iterations (module docstring)."""
    fine = args.levels - 1
    print(f"\nrestrict nside {args.nside} -> {args.nside // 2} ({args.batch} x {args.width} float32 channels) "
          f"against Jacobi iterations k; errors in float64, times in ms: median (min-max)")
    print(f"{'k':>3} {'band err':>9} {'nested err':>10} {'iterated ms':>20} {'folded ms':>20} {'build s':>8}")
    x = torch.randn(args.batch, 12 * args.nside**2, args.width)  # [B, N, C]
    for k in TABLE_ITERATIONS:
        variants = {jacobi: HealpixSHHierarchy(args.nside, args.levels, iterations=k, jacobi=jacobi)
                    for jacobi in ("iterated", "folded")}
        h = variants["folded"]
        band = h.lmax[fine - 1]  # the coarse level's band, = nside
        build = timed(HealpixSHT(args.nside, band, iterations=k, jacobi="folded").materialize,
                      torch.device("cpu"), clock)  # what the first restrict pays once
        coarse_field = band_limited(h, fine - 1, band, 4)
        band_error = (h.restrict(band_limited(h, fine, band, 4), fine) - coarse_field).abs().max().item()
        nested_error = (h.restrict(h.prolong(coarse_field, fine - 1), fine) - coarse_field).abs().max().item()
        calls = {name: functools.partial(v.restrict, x, fine) for name, v in variants.items()}
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        for call in calls.values():  # warm-up: float32 casts of the tables
            call()
        for _ in range(args.repeats):
            for name, call in calls.items():
                seconds[name].append(timed(call, torch.device("cpu"), clock))
        print(f"{k:>3} {band_error:>9.1e} {nested_error:>10.1e} {spread(seconds['iterated'], 1e3):>20} "
              f"{spread(seconds['folded'], 1e3):>20} {build:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, default=64)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=20, help="Jacobi iterations of every SH analysis")
    parser.add_argument("--jacobi", default="auto", choices=JACOBI_METHODS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-table", action="store_true", help="skip the accuracy / iterations table")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall, or cpu: process CPU time (with --threads 1, robust to load)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (args.device != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu needs --device cpu and --threads 1 (CPU time sums over threads)")
    clock, device = CLOCKS[args.clock], torch.device(args.device)
    sh = HealpixSHHierarchy(args.nside, args.levels, iterations=args.iterations, jacobi=args.jacobi).to(device)
    steps = {"sh": training_step(sh, args, device),
             "haar": training_step(HealpixHaarHierarchy(args.nside, args.levels).to(device), args, device)}
    for step in steps.values():  # warm-up: level graphs, SHT tables and folded Jacobi operators
        step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            seconds[name].append(timed(step, device, clock))
    ratios = [s / h for s, h in zip(seconds["sh"], seconds["haar"], strict=True)]  # per round, same load
    print(f"nside={args.nside} levels={args.levels} width={args.width} batch={args.batch} "
          f"iterations={args.iterations} jacobi={args.jacobi} device={device} "
          f"threads={torch.get_num_threads()} clock={args.clock} repeats={args.repeats}")
    for name, values in (*seconds.items(), ("sh / haar", ratios)):
        unit = "" if name == "sh / haar" else " s/step"
        print(f"  {name:10s} median {statistics.median(values):.3f}{unit}  "
              f"(min {min(values):.3f}, max {max(values):.3f})")
    print("target: sh / haar <= 3")
    if args.device == "cpu" and not args.no_table:
        iteration_table(args, clock)


if __name__ == "__main__":
    main()
