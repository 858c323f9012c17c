"""Benchmark: the cost of the UNet's non-finite-output check (geounet.nn.inputs.check_model_output).

A HEALPix Multi-ResNet runs a forward pass (eval, no grad) and a forward + backward pass
with the check and with it replaced by the identity, interleaved in one process (both
see the same load), on one thread. Reported per pass: the median and min-max over the
repeats of the process CPU time (user + system) and of the ratio checked / unchecked
within each repeat.

    .venv/bin/python experiments/bench/bench_output_check.py --nside 32 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import geounet.nn.unet as unet_module
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models import build_unet


def cpu_seconds(fn, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=32)
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--calls", type=int, default=5, help="passes per timing")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hierarchy = HealpixHaarHierarchy(args.nside, args.levels)
    model = build_unet(hierarchy, 2, 2, width=args.width)
    x = torch.randn(args.batch, hierarchy.num_nodes(hierarchy.finest_level), 2)
    checked = unet_module.check_model_output

    def forward():
        with torch.no_grad():
            model.eval()(x, hierarchy)

    def training_step():
        model.train()(x, hierarchy).square().mean().backward()

    results = {}
    for name, fn in (("forward", forward), ("forward_backward", training_step)):
        fn()  # warm-up
        times = {"checked": [], "unchecked": []}
        for _ in range(args.repeats):
            for variant in ("checked", "unchecked"):
                unet_module.check_model_output = checked if variant == "checked" else (lambda y, *rest: y)
                times[variant].append(cpu_seconds(fn, args.calls))
        unet_module.check_model_output = checked
        ratios = [a / b for a, b in zip(times["checked"], times["unchecked"], strict=True)]
        results[name] = {
            **{f"{v}_ms_median": 1e3 * statistics.median(t) for v, t in times.items()},
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        }
        print(f"{name}: checked {results[name]['checked_ms_median']:.1f} ms, unchecked "
              f"{results[name]['unchecked_ms_median']:.1f} ms (CPU, medians); checked / unchecked "
              f"{results[name]['ratio_median']:.3f} ({min(ratios):.3f}-{max(ratios):.3f}) over {args.repeats} repeats")
    print(json.dumps({"args": vars(args), "results": results}))


if __name__ == "__main__":
    main()
