"""geounet's torch SHT (analysis + synthesis) against healpy map2alm + alm2map, same run.

Both use lmax = 2 nside and the same number of Jacobi iterations (healpy's ``iter``;
default 0, i.e. one quadrature pass each way). Operators are built before timing (a warm-up
call, interleaved medians).

    .venv/bin/python experiments/bench/bench_sht.py [--device cuda] [--nside 64 128 256] [--iterations 3] \
        [--jacobi folded]

Target: ratio (torch / healpy) within 3x on CPU. With ``--batch B`` torch transforms B maps
in one call and healpy's single-map time is multiplied by B (the multi-channel use case).
"""

from __future__ import annotations

import argparse
import functools

import healpy
import numpy as np
import torch
from bench_healpix_restrict import interleaved  # the script's directory is on sys.path

from geounet.functional.sht import JACOBI_METHODS, HealpixSHT
from geounet.geometry.healpix import from_nest


def _round_trip(sht: HealpixSHT, x: torch.Tensor) -> torch.Tensor:
    return sht.synthesis(sht.analysis(x))


def _healpy_round_trip(ring: np.ndarray, nside: int, lmax: int, iterations: int) -> np.ndarray:
    return healpy.alm2map(healpy.map2alm(ring, lmax=lmax, iter=iterations), nside, lmax=lmax)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--iterations", type=int, default=0)
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ring-method", default="auto", choices=["auto", "grouped", "chirp"])
    parser.add_argument("--jacobi", default="auto", choices=JACOBI_METHODS,
                        help="how torch runs the iterations (folded: one precomputed operator)")
    parser.add_argument("--batch", type=int, default=1,
                        help="maps per torch call (channels); healpy transforms them one by one")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"device={device} dtype={args.dtype} iterations={args.iterations} batch={args.batch} "
          f"ring_method={args.ring_method} jacobi={args.jacobi} "
          f"threads={torch.get_num_threads()}")
    print(f"{'nside':>6} {'lmax':>5} {'torch ms':>9} {'healpy ms':>10} {'ratio':>6} {'max |diff|':>11}")
    for nside in args.nside:
        lmax = 2 * nside
        sht = HealpixSHT(nside, lmax, iterations=args.iterations, ring_method=args.ring_method,
                         jacobi=args.jacobi)
        x = torch.randn(args.batch, 12 * nside**2, dtype=torch.float64)
        ring = from_nest(x[0], "ring").numpy()
        xd = x.to(device=device, dtype=dtype)

        ours = functools.partial(_round_trip, sht, xd)
        theirs = functools.partial(_healpy_round_trip, ring, nside, lmax, args.iterations)
        medians = interleaved({"torch": ours, "healpy": theirs}, device, args.repeats)
        t_ours, t_theirs = medians["torch"], args.batch * medians["healpy"]
        diff = np.abs(from_nest(ours().cpu().double()[0], "ring").numpy() - theirs()).max()
        print(f"{nside:>6} {lmax:>5} {1e3 * t_ours:>9.1f} {1e3 * t_theirs:>10.1f} "
              f"{t_ours / t_theirs:>6.2f} {diff:>11.2e}")
    print("ratio = torch / healpy (analysis + synthesis); target <= 3 on CPU")


if __name__ == "__main__":
    main()
