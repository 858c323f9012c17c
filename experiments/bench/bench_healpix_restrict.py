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


def timed(fn, device: torch.device) -> float:
    """Seconds of one call of ``fn``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def interleaved(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds per call of each of ``fns``, called in turn ``repeats`` times after a
    warm-up round, so that all of them see the same load on a shared machine."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} channels={args.channels} batch={args.batch} threads={torch.get_num_threads()}")
    print(f"{'nside':>6} {'copy ms':>9} {'restrict':>9} {'prolong':>9} {'ratio':>6} {'naive ratio':>11}")
    for nside in args.nside:
        h = HealpixHaarHierarchy(nside, 2)
        fine = torch.randn(args.batch, h.num_nodes(1), args.channels, device=device)
        coarse = torch.randn(args.batch, h.num_nodes(0), args.channels, device=device)
        b, n, c = fine.shape
        t = interleaved({
            "copy": fine.clone,
            "restrict": functools.partial(h.restrict, fine, 1),
            "prolong": functools.partial(h.prolong, coarse, 0),
            "naive restrict": functools.partial(torch.Tensor.mean, fine.view(b, n // 4, 4, c), -2),
            "naive prolong": functools.partial(torch.repeat_interleave, coarse, 4, dim=1),
        }, device, args.repeats)
        t_copy, t_restrict, t_prolong = t["copy"], t["restrict"], t["prolong"]
        t_naive = t["naive restrict"] + t["naive prolong"]
        ratio = (t_restrict + t_prolong) / t_copy
        print(f"{nside:>6} {1e3 * t_copy:>9.3f} {1e3 * t_restrict:>9.3f} {1e3 * t_prolong:>9.3f} "
              f"{ratio:>6.2f} {t_naive / t_copy:>11.2f}")
    print("ratio = (restrict + prolong) / copy of the fine tensor; floor 1.25, target <= 1.3")


if __name__ == "__main__":
    main()
