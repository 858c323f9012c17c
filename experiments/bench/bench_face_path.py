"""HEALPix Multi-ResNets on face images against the NEST Multi-ResNet: training-step time and peak memory.

Variants, all ``build_unet(..., 3, 3)`` Multi-ResNets with 4 levels at the same nside:

- ``nest``: ``HealpixHaarHierarchy``, message passing (KernelConv, linear kernel), width 32: the
  reference (about 448 k parameters);
- ``face``: the same model on ``HealpixFaceHierarchy`` (FaceKernelConv on padded face images,
  the same parameters and function);
- ``face_conv3x3``: ``HealpixFaceHierarchy`` with ``operator="conv3x3"`` (conv2d on
  channels-last padded faces), width 16 doubling per coarser level (``channel_mult
  [1, 2, 4, 8]``, as DLWP-HEALPix's [13, 26, 52, 104]): about 422 k parameters.

After warm-up the variants' training steps (forward, squared-sum loss, backward) alternate in
one process, ``--repeats`` times, so a loaded machine slows all alike; prints per variant the
median and min-max step time, the median ratio to ``nest`` with the range of the per-repeat
ratios, and the peak resident memory of one step after a warm-up step, above the resident set
before it (Linux VmHWM), each measured in a fresh process with ``MALLOC_MMAP_THRESHOLD_=65536``
so freed buffers leave the resident set. ``--clock cpu`` is process CPU time (use with ``--threads 1``
on a shared machine). ``--profile VARIANT`` prints torch.profiler's top operators of one step
of that variant instead. ``--json PATH`` writes the numbers.

    python experiments/bench/bench_face_path.py --threads 1 --clock cpu --nsides 32 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from peak_memory import reset_peak, status_bytes  # noqa: E402

from geounet.hierarchy import HealpixFaceHierarchy, HealpixHaarHierarchy  # noqa: E402
from geounet.models.unet import build_unet  # noqa: E402

VARIANTS = {
    "nest": lambda nside: (HealpixHaarHierarchy(nside, 4), {"width": 32}),
    "face": lambda nside: (HealpixFaceHierarchy(nside, 4), {"width": 32}),
    "face_conv3x3": lambda nside: (HealpixFaceHierarchy(nside, 4),
                                   {"width": 16, "channel_mult": [1, 2, 4, 8], "operator": "conv3x3"}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsides", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--profile", choices=list(VARIANTS), default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--peak-child", choices=list(VARIANTS), default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def step(model, x, hierarchy) -> None:
    model.zero_grad(set_to_none=True)
    model(x, hierarchy).square().sum().backward()


def timed(model, x, hierarchy, clock) -> float:
    start = clock()
    step(model, x, hierarchy)
    return clock() - start


def build(name: str, nside: int, batch: int):
    """``(model, x [B, N, 3], hierarchy)`` of variant ``name``."""
    hierarchy, options = VARIANTS[name](nside)
    model = build_unet(hierarchy, 3, 3, **options)
    return model, torch.randn(batch, hierarchy.num_nodes(hierarchy.finest_level), 3), hierarchy


def peak_step_mb(name: str, nside: int, args: argparse.Namespace) -> float:
    """Peak resident memory (MB) of one step of ``name``, measured in a fresh process."""
    command = [sys.executable, __file__, "--peak-child", name, "--nsides", str(nside), "--batch", str(args.batch)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return float(result.stdout.split()[-1])


def peak_child(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model, x, hierarchy = build(args.peak_child, args.nsides[0], args.batch)
    step(model, x, hierarchy)  # warm-up: memoised geometry
    before = reset_peak()
    step(model, x, hierarchy)
    print((status_bytes("VmHWM") - before) / 2**20)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_child:
        return peak_child(args)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    results = {"batch": args.batch, "threads": args.threads, "clock": args.clock, "repeats": args.repeats,
               "nsides": {}}
    for nside in args.nsides:
        torch.manual_seed(0)
        built = {name: build(name, nside, args.batch) for name in args.variants}
        if args.profile:
            model, x, hierarchy = built[args.profile]
            step(model, x, hierarchy)
            with torch.profiler.profile() as profiler:
                step(model, x, hierarchy)
            print(f"nside {nside}, {args.profile}:")
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            continue
        for _ in range(args.warmup):
            for model, x, hierarchy in built.values():
                step(model, x, hierarchy)
        peaks = {name: peak_step_mb(name, nside, args) for name in built}
        times = {name: [] for name in built}
        for _ in range(args.repeats):
            for name, (model, x, hierarchy) in built.items():
                times[name].append(timed(model, x, hierarchy, clock))
        rows = {}
        print(f"nside {nside}, batch {args.batch}, threads {args.threads}, {args.clock} clock, {args.repeats} repeats")
        for name, values in times.items():
            row = {"parameters": sum(p.numel() for p in built[name][0].parameters()),
                   "seconds": values, "median_s": statistics.median(values), "peak_mb": peaks[name]}
            if "nest" in times:
                ratios = [n / v for n, v in zip(times["nest"], values, strict=True)]
                row.update(speedup_median=statistics.median(ratios), speedup_min=min(ratios),
                           speedup_max=max(ratios))
            rows[name] = row
            speed = (f"  speed-up vs nest {row['speedup_median']:.2f} ({row['speedup_min']:.2f}-"
                     f"{row['speedup_max']:.2f})" if "speedup_median" in row else "")
            print(f"  {name:14s} {row['parameters']:8d} params  {row['median_s']:.3f} s "
                  f"({min(values):.3f}-{max(values):.3f})  peak {row['peak_mb']:.0f} MB{speed}")
        results["nsides"][str(nside)] = rows
    if args.json and not args.profile:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
