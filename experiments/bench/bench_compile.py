"""torch.compile speed-up of a HEALPix Multi-ResNet: compiled forward + backward against eager.

The U-Net (``build_unet(HealpixHaarHierarchy(nside, 4), 3, 3, width=...)``) is compiled
with Inductor by :func:`geounet.inference.compile_unet`; after warm-up the eager and the
compiled training step (forward, squared-sum loss, backward) alternate in one process,
``--repeats`` times each, so a loaded machine slows both alike. Prints the median and
min-max time of each and the speed-up eager / compiled (median, and the range of the
per-repeat ratios). ``--clock cpu`` measures process CPU time (use with ``--threads 1`` on
a shared machine), ``--clock wall`` (default) elapsed time; on CUDA the device is
synchronised around each step.

    python experiments/bench/bench_compile.py [--device cuda] [--threads 1 --clock cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from geounet.hierarchy import HealpixHaarHierarchy
from geounet.inference import compile_unet
from geounet.models.unet import build_unet


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nside", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    return parser.parse_args()


def timed_step(model, x, hierarchy, device: torch.device, clock) -> float:
    """Seconds of one forward + backward (gradients zeroed first)."""
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    model(x, hierarchy).square().sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    hierarchy = HealpixHaarHierarchy(args.nside, 4).to(device)
    model = build_unet(hierarchy, 3, 3, width=args.width).to(device)
    x = torch.randn(args.batch, hierarchy.num_nodes(hierarchy.finest_level), 3, device=device)  # [B, N, 3]

    start = time.perf_counter()
    compiled = compile_unet(model, hierarchy)
    timed_step(compiled, x, hierarchy, device, clock)
    print(f"compile + first step: {time.perf_counter() - start:.1f} s wall")
    explanation = torch._dynamo.explain(model)(x, hierarchy)
    print(f"graphs {explanation.graph_count}, graph breaks {explanation.graph_break_count}")

    variants = {"eager": model, "compiled": compiled}
    for _ in range(args.warmup):
        for variant in variants.values():
            timed_step(variant, x, hierarchy, device, clock)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, variant in variants.items():
            times[name].append(timed_step(variant, x, hierarchy, device, clock))

    print(f"HEALPix nside {args.nside}, batch {args.batch}, width {args.width}, {device}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, {args.repeats} interleaved repeats")
    for name, values in times.items():
        print(f"  {name:9s} fwd+bwd median {statistics.median(values):.4f} s  "
              f"(min {min(values):.4f}, max {max(values):.4f})")
    ratios = [e / c for e, c in zip(times["eager"], times["compiled"], strict=True)]
    speedup = statistics.median(times["eager"]) / statistics.median(times["compiled"])
    print(f"  speed-up eager / compiled: {speedup:.2f}x (per-repeat ratios {min(ratios):.2f} .. {max(ratios):.2f})")


if __name__ == "__main__":
    main()
