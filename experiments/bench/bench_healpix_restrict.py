"""HEALPix Haar restrict + prolong against a tensor copy of the fine field, same run.

Restrict reads N and writes N/4 values, prolong reads N/4 and writes N, so together they
move 2.5 N values against the 2 N of a copy of the fine tensor: the floor ratio is 1.25.
Also times the naive pair (view(...).mean + repeat_interleave) for comparison.

Inside the decoder prolong only feeds ``cat([prolong(u), skip])`` and ``r += prolong(u)``.
The second table times that merge three ways, interleaved: with the generic prolong, with
the fused one (geounet.nn.fused_prolong: the concatenation and the sum read ``u`` through
a broadcast view), and with an already prolonged ``u`` (the floor: a merge that pays no
prolong). What the hierarchy's operators add to a U-Net level is then restrict plus
(merge - floor); its ratio to the copy is the restrict + prolong cost in the decoder.

    .venv/bin/python experiments/bench/bench_healpix_restrict.py [--device cuda] [--nside 512 1024]
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.nn.fused_prolong import prolong_add_, prolong_concat

#: wall-clock time, or the CPU time of the process (user + system, page faults included), which
#: other processes on a loaded machine do not inflate; meaningful with one thread
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, device: torch.device, clock=time.perf_counter) -> float:
    """Seconds of one call of ``fn``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def interleaved(fns: dict, device: torch.device, repeats: int, clock=time.perf_counter) -> dict[str, float]:
    """Median seconds per call of each of ``fns``, called in turn ``repeats`` times after a
    warm-up round, so that all of them see the same load on a shared machine."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device, clock))
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall, or cpu: process CPU time (on the CPU with --threads 1, robust to load)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (args.device != "cpu" or torch.get_num_threads() != 1):
        parser.error("--clock cpu needs --device cpu and --threads 1 (CPU time sums over threads)")
    args.clock = CLOCKS[args.clock]
    device = torch.device(args.device)
    print(f"device={device} channels={args.channels} batch={args.batch} threads={torch.get_num_threads()} "
          f"clock={args.clock.__name__}")
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
        }, device, args.repeats, args.clock)
        t_copy, t_restrict, t_prolong = t["copy"], t["restrict"], t["prolong"]
        t_naive = t["naive restrict"] + t["naive prolong"]
        ratio = (t_restrict + t_prolong) / t_copy
        print(f"{nside:>6} {1e3 * t_copy:>9.3f} {1e3 * t_restrict:>9.3f} {1e3 * t_prolong:>9.3f} "
              f"{ratio:>6.2f} {t_naive / t_copy:>11.2f}")
    print("ratio = (restrict + prolong) / copy of the fine tensor; floor 1.25, target <= 1.3")
    decoder_merge(args, device)


def decoder_merge(args, device: torch.device) -> None:
    """The decoder's merge ``cat([ι u, skip])`` + ``r += ι u`` with generic, fused and no prolong."""
    print(f"\ndecoder merge, {args.channels} + {args.channels} channels (ms; ratios to the copy)")
    print(f"{'nside':>6} {'copy':>8} {'restrict':>9} {'generic':>8} {'fused':>8} {'floor':>8} "
          f"{'generic ratio':>13} {'fused ratio':>11}")
    for nside in args.nside:
        t = merge_times(HealpixHaarHierarchy(nside, 2), args, device)
        added = {name: (t["restrict"] + t[name] - t["floor"]) / t["copy"] for name in ("generic", "fused")}
        print(f"{nside:>6} {1e3 * t['copy']:>8.3f} {1e3 * t['restrict']:>9.3f} {1e3 * t['generic']:>8.3f} "
              f"{1e3 * t['fused']:>8.3f} {1e3 * t['floor']:>8.3f} {added['generic']:>13.2f} {added['fused']:>11.2f}")
    print("ratio = (restrict + merge - floor) / copy: what restrict and prolong add to a decoder level")


def merge_times(h: HealpixHaarHierarchy, args, device: torch.device) -> dict[str, float]:
    """Interleaved median seconds of the copy, restrict and the three merges on ``h``'s two levels."""
    layout = h.prolong_layout(0)
    skip, branch = (torch.randn(args.batch, h.num_nodes(1), args.channels, device=device) for _ in range(2))
    coarse = torch.randn(args.batch, h.num_nodes(0), args.channels, device=device)
    up = h.prolong(coarse, 0)

    def generic():  # the sums are in place on the branch output, as in the decoder
        fine = h.prolong(coarse, 0)
        return torch.cat([fine, skip], dim=-1), branch.add_(fine)

    return interleaved({
        "copy": skip.clone,
        "restrict": functools.partial(h.restrict, skip, 1),
        "generic": generic,
        "fused": lambda: (prolong_concat(coarse, skip, layout), prolong_add_(branch, coarse, layout)),
        "floor": lambda: (torch.cat([up, skip], dim=-1), branch.add_(up)),
    }, device, args.repeats, args.clock)

if __name__ == "__main__":
    main()
