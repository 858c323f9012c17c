"""HEALPix Haar restrict + prolong against a tensor copy of the fine field, same run.

Restrict reads N and writes N/4 values, prolong reads N/4 and writes N, so together they
move 2.5 N values against the 2 N of a copy of the fine tensor: the floor ratio is 1.25.
Also times the naive pair (view(...).mean + repeat_interleave) for comparison.

    .venv/bin/python experiments/bench/bench_healpix_restrict.py [--device cuda] [--nside 512 1024]
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from geounet.hierarchy.healpix import HealpixHaarHierarchy


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds per call of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device={device} channels={args.channels} batch={args.batch} threads={torch.get_num_threads()}")
    print(f"{'nside':>6} {'copy ms':>9} {'restrict':>9} {'prolong':>9} {'ratio':>6} {'naive ratio':>11}")
    for nside in args.nside:
        h = HealpixHaarHierarchy(nside, 2)
        fine = torch.randn(args.batch, h.num_nodes(1), args.channels, device=device)
        coarse = torch.randn(args.batch, h.num_nodes(0), args.channels, device=device)
        b, n, c = fine.shape
        t_copy = timed(fine.clone, device, args.repeats)
        t_restrict = timed(functools.partial(h.restrict, fine, 1), device, args.repeats)
        t_prolong = timed(functools.partial(h.prolong, coarse, 0), device, args.repeats)
        naive_restrict = functools.partial(torch.Tensor.mean, fine.view(b, n // 4, 4, c), -2)
        naive_prolong = functools.partial(torch.repeat_interleave, coarse, 4, dim=1)
        t_naive = timed(naive_restrict, device, args.repeats) + timed(naive_prolong, device, args.repeats)
        ratio = (t_restrict + t_prolong) / t_copy
        print(f"{nside:>6} {1e3 * t_copy:>9.3f} {1e3 * t_restrict:>9.3f} {1e3 * t_prolong:>9.3f} "
              f"{ratio:>6.2f} {t_naive / t_copy:>11.2f}")
    print("ratio = (restrict + prolong) / copy of the fine tensor; floor 1.25, target <= 1.5")


if __name__ == "__main__":
    main()
