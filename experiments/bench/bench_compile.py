"""torch.compile and bfloat16 autocast of a HEALPix Multi-ResNet, against eager float32.

The U-Net (``build_unet(hierarchy, 3, 3, width=...)`` on ``HealpixHaarHierarchy(nside, 4)``,
or with ``--hierarchy face`` on ``HealpixFaceHierarchy(nside, 4)``, whose levels are face
images; ``--operator`` picks build_unet's spatial operator there) runs three training
steps (forward, squared-sum loss, backward):

- ``eager``: float32, the reference;
- ``compiled``: compiled with Inductor by :func:`geounet.inference.compile_unet`;
- ``bf16``: eager under ``torch.autocast(dtype=torch.bfloat16)``, whose relative L2 error
  against float32 (output, and the gradient of all parameters as one vector) is printed.

After warm-up they alternate in one process, ``--repeats`` times each, so a loaded machine
slows all alike. Prints the median and min-max time of each and the speed-ups eager /
variant (median, and the range of the per-repeat ratios). ``--clock cpu`` measures
process CPU time (use with ``--threads 1`` on a shared machine), ``--clock wall``
(default) elapsed time; on CUDA the device is synchronised around each step.

    python experiments/bench/bench_compile.py [--device cuda] [--threads 1 --clock cpu] [--hierarchy face]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_healpix_restrict import timed  # the script's directory is on sys.path
from torch import Tensor

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
    parser.add_argument("--hierarchy", choices=("nest", "face"), default="nest",
                        help="HealpixHaarHierarchy (NEST) or HealpixFaceHierarchy (face images)")
    parser.add_argument("--operator", help="build_unet's operator (default: build_unet's default)")
    return parser.parse_args()


def training_step(model, x, hierarchy, bf16: bool = False) -> Tensor:
    """Forward (under bfloat16 autocast when ``bf16``) and backward, gradients zeroed first;
    returns the output."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(x, hierarchy)
    out.float().square().sum().backward()
    return out


def timed_step(model, x, hierarchy, device: torch.device, clock, bf16: bool = False) -> float:
    """Seconds of one :func:`training_step`."""
    return timed(lambda: training_step(model, x, hierarchy, bf16), device, clock)


def bf16_errors(model, x, hierarchy) -> tuple[float, float]:
    """Relative L2 errors of the output and of the parameter gradient under bfloat16 autocast."""

    def run(bf16: bool) -> tuple[Tensor, Tensor]:
        out = training_step(model, x, hierarchy, bf16).float()
        return out, torch.cat([p.grad.flatten() for p in model.parameters()])

    (out, grad), (out_bf16, grad_bf16) = run(False), run(True)
    relative = lambda a, b: ((a - b).norm() / b.norm()).item()  # noqa: E731
    return relative(out_bf16, out), relative(grad_bf16, grad)


def build_hierarchy(kind: str, nside: int):
    if kind == "face":
        from geounet.hierarchy.healpix_face import HealpixFaceHierarchy

        return HealpixFaceHierarchy(nside, 4)
    return HealpixHaarHierarchy(nside, 4)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    hierarchy = build_hierarchy(args.hierarchy, args.nside).to(device)
    operator = {"operator": args.operator} if args.operator else {}
    model = build_unet(hierarchy, 3, 3, width=args.width, **operator).to(device)
    x = torch.randn(args.batch, hierarchy.num_nodes(hierarchy.finest_level), 3, device=device)  # [B, N, 3]

    start = time.perf_counter()
    compiled = compile_unet(model, hierarchy)
    timed_step(compiled, x, hierarchy, device, clock)
    print(f"compile + first step: {time.perf_counter() - start:.1f} s wall")
    explanation = torch._dynamo.explain(model)(x, hierarchy)
    print(f"graphs {explanation.graph_count}, graph breaks {explanation.graph_break_count}")

    output_error, gradient_error = bf16_errors(model, x, hierarchy)
    variants = {"eager": (model, False), "compiled": (compiled, False), "bf16": (model, True)}
    for _ in range(args.warmup):
        for variant, bf16 in variants.values():
            timed_step(variant, x, hierarchy, device, clock, bf16)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (variant, bf16) in variants.items():
            times[name].append(timed_step(variant, x, hierarchy, device, clock, bf16))

    print(f"HEALPix {args.hierarchy} nside {args.nside}, batch {args.batch}, width {args.width}, operator "
          f"{args.operator or 'default'}, {device}, {torch.get_num_threads()} threads, {args.clock} clock, "
          f"{args.repeats} interleaved repeats")
    for name, values in times.items():
        print(f"  {name:9s} fwd+bwd median {statistics.median(values):.4f} s  "
              f"(min {min(values):.4f}, max {max(values):.4f})")
    for name in ("compiled", "bf16"):
        ratios = [e / c for e, c in zip(times["eager"], times[name], strict=True)]
        speedup = statistics.median(times["eager"]) / statistics.median(times[name])
        print(f"  speed-up eager / {name}: {speedup:.2f}x (per-repeat ratios {min(ratios):.2f} .. {max(ratios):.2f})")
    print(f"  bf16 autocast relative L2 error vs float32: output {output_error:.2e}, gradient {gradient_error:.2e}")


if __name__ == "__main__":
    main()
