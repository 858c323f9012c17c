"""Benchmark: geounet's HEALPix Multi-ResNet against SFNO and DLWP-HEALPix at matched parameters.

Forecast-sized models (3 channels in and out) at nside 32, 64, 128, one training step =
forward + squared-mean loss + backward on a batch of 4:

- ``multiresnet``: ``build_unet(HealpixHaarHierarchy(nside, levels), 3, 3, width=32)``,
  message passing on NEST pixels; the parameter count every other model is sized to;
- ``multiresnet_face``: the same U-Net on ``HealpixFaceHierarchy`` (face-ordered nodes,
  the operators realised on padded face images), and ``multiresnet_conv3x3`` with dense
  3x3 convolutions (``operator="conv3x3"``, channels doubling per coarser level like
  DLWP's) sized by width; both only where the face hierarchy exists in this source tree;
- ``sfno``: torch-harmonics' SFNO on the equiangular grid with about as many points as the
  HEALPix map (:class:`geounet.models.baselines.SFNOBaseline`, as bench_decoders.py);
- ``dlwp``: NVIDIA physicsnemo's DLWP-HEALPix U-Net
  (:class:`geounet.models.baselines.DLWPHealpixUNet`: two 3x3 convolutions per level,
  average pooling, transposed-convolution upsampling; needs the ``dlwp`` extra).

Per nside one fresh process builds every model and times their steps interleaved, model
after model in each round, after a warm-up round, so all see the same load: the median
and min-max over ``--repeats`` rounds. On the CPU with ``--threads 1`` the clock is the
process CPU time (what a step costs, whatever else runs on the machine), else wall time
(CUDA synchronised). Peak memory is measured per model in another fresh process
(:mod:`peak_memory`, as bench_decoders.py). The summary prints every target of the issue
for each geounet model with its ratio and whether it is met: throughput (per pixel)
>= 1.5x SFNO and >= 1.2x DLWP at every nside, peak memory <= 1.0x DLWP's, log-log slope
of time against pixels <= 1.02. ``--json`` writes the rows and the summary.
``--retain-freed-memory`` times every model with freed memory kept in the process (no page
faults on each step's fresh activations; :mod:`geounet.train.memory`).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench/bench_healpix_unets.py --threads 1 \\
        --nsides 32 64 128 --repeats 5 --json experiments/bench/healpix_unets.json
    .venv/bin/python experiments/bench/bench_healpix_unets.py --device cuda --nsides 64 128 256
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from bench_decoders import slope  # the script's directory is on sys.path
from bench_healpix_restrict import timed
from peak_memory import peak_step_bytes

GEOUNET_MODELS = ("multiresnet", "multiresnet_face", "multiresnet_conv3x3")
BASELINES = ("sfno", "dlwp")
MODELS = GEOUNET_MODELS + BASELINES
FACE_MODELS = ("multiresnet_face", "multiresnet_conv3x3")
#: (baseline, throughput ratio at least, peak-memory ratio at most or None)
TARGETS = (("sfno", 1.5, None), ("dlwp", 1.2, 1.0))
MAX_SLOPE = 1.02


def build(name: str, nside: int, width: int, levels: int, channels: int) -> tuple[torch.nn.Module, object, int]:
    """``(model, hierarchy or None, number of input nodes)`` of one benchmark model."""
    from geounet.hierarchy.healpix import HealpixHaarHierarchy
    from geounet.models.baselines import DLWPHealpixUNet, SFNOBaseline, equiangular_shape
    from geounet.models.unet import build_unet

    if name == "sfno":
        nlat, nlon = equiangular_shape(12 * nside**2)
        return SFNOBaseline(nlat, nlon, channels, channels, width=width), None, nlat * nlon
    if name in FACE_MODELS:
        from geounet.hierarchy.healpix_face import HealpixFaceHierarchy

        hierarchy = HealpixFaceHierarchy(nside, levels)
        conv3x3 = {"operator": "conv3x3", "channel_mult": [2**i for i in range(levels)]}  # doubling, as DLWP
        model = build_unet(hierarchy, channels, channels, width=width,
                           **(conv3x3 if name == "multiresnet_conv3x3" else {}))
    else:
        hierarchy = HealpixHaarHierarchy(nside, levels)
        model = (DLWPHealpixUNet(hierarchy, channels, channels, width=width, depth=levels) if name == "dlwp"
                 else build_unet(hierarchy, channels, channels, width=width))
    return model, hierarchy, 12 * nside**2


def matched_widths(args) -> tuple[dict[tuple[str, int], int], int]:
    """Width of every (model, nside) whose parameter count is nearest the Multi-ResNet's, and that count.
    Only SFNO's count depends on the grid; the others are sized once."""
    from geounet.models.sizing import count_parameters, size_to_parameters

    small = 2 ** (args.levels - 1)
    target = count_parameters(build("multiresnet", small, args.width, args.levels, args.channels)[0])
    widths = {}
    for name in args.models:
        for nside in args.nsides:
            if name in ("multiresnet", "multiresnet_face"):
                widths[name, nside] = args.width
            elif name != "sfno" and nside != args.nsides[0]:
                widths[name, nside] = widths[name, args.nsides[0]]
            else:
                size_at = nside if name == "sfno" else small
                widths[name, nside], _ = size_to_parameters(
                    lambda w, name=name, n=size_at: build(name, n, w, args.levels, args.channels)[0],
                    target, widths=range(1, 257),
                )
    return widths, target


def training_step(model: torch.nn.Module, x: torch.Tensor, hierarchy) -> None:
    """Forward, squared-mean loss and backward, gradients zeroed first."""
    model.zero_grad(set_to_none=True)
    model(x, hierarchy).square().mean().backward()


def child_inputs(args, name: str, nside: int, width: int, device: torch.device):
    torch.manual_seed(0)
    model, hierarchy, nodes = build(name, nside, width, args.levels, args.channels)
    model = model.to(device)
    hierarchy = hierarchy.to(device) if hierarchy is not None else None
    x = torch.randn(args.batch, nodes, args.channels, device=device)  # [B, N, C]
    return model, hierarchy, x, nodes


def time_models(args, device: torch.device) -> list[dict]:
    """Child process: every model of ``args.child_models`` at one nside, steps interleaved."""
    from geounet.models.sizing import count_parameters

    clock = time.process_time if device.type == "cpu" and torch.get_num_threads() == 1 else time.perf_counter
    runs = {}
    for spec in args.child_models:
        name, width = spec.split(":")
        model, hierarchy, x, nodes = child_inputs(args, name, args.child_nside, int(width), device)
        runs[name] = (model, hierarchy, x, nodes, int(width))
    times = {name: [] for name in runs}
    with allocation_policy(args.retain_freed_memory):
        for round_ in range(args.repeats + 1):  # round 0 warms up
            for name, (model, hierarchy, x, _, _) in runs.items():
                seconds = timed(lambda m=model, h=hierarchy, x=x: training_step(m, x, h), device, clock)
                if round_:
                    times[name].append(seconds)
    return [{"model": name, "nside": args.child_nside, "nodes": nodes, "width": width,
             "params": count_parameters(model), "clock": clock.__name__, "s_per_step": statistics.median(times[name]),
             "s_min": min(times[name]), "s_max": max(times[name]), "s_all": times[name]}
            for name, (model, _, _, nodes, width) in runs.items()]


def allocation_policy(retain: bool) -> contextlib.AbstractContextManager:
    """``geounet.train.memory.freed_memory_retained`` with ``--retain-freed-memory`` (process-wide, so
    every model's steps run under it), else the allocator's defaults."""
    if not retain:
        return contextlib.nullcontext()
    from geounet.train.memory import freed_memory_retained

    return freed_memory_retained()


def measure_memory(args, device: torch.device) -> dict:
    """Child process: peak memory of one training step of one model, after a warm-up step."""
    name, width = args.child_models[0].split(":")
    model, hierarchy, x, _ = child_inputs(args, name, args.child_nside, int(width), device)
    return {"peak_mb": peak_step_bytes(lambda: training_step(model, x, hierarchy), device) / 2**20}


def run_child(args, mode: str, nside: int, specs: list[str]) -> list[dict] | dict:
    command = [sys.executable, __file__, "--child-mode", mode, "--child-nside", str(nside),
               "--child-models", *specs, "--device", args.device, "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--levels", str(args.levels), "--channels", str(args.channels),
               "--threads", str(args.threads), *(["--retain-freed-memory"] if args.retain_freed_memory else [])]
    # a fixed mmap threshold makes glibc give freed large buffers back, so the memory run's
    # resident set after its warm-up step is the model's, not the allocator's cache
    env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": "65536"} if mode == "memory" else {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode:
        lines = result.stderr.strip().splitlines() or ["no output"]
        return {"error": lines[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict], models: list[str], nsides: list[int]) -> list[dict]:
    """Every target of the issue for every geounet model: ratio, bound and whether it is met."""
    ok = {(r["model"], r["nside"]): r for r in rows}
    checks = []
    for name in (m for m in models if m in GEOUNET_MODELS):
        for nside in nsides:
            ours = ok.get((name, nside))
            for baseline, min_speed, max_memory in TARGETS:
                other = ok.get((baseline, nside))
                if ours is None or other is None:
                    continue
                speed = (other["s_per_step"] / other["nodes"]) / (ours["s_per_step"] / ours["nodes"])
                checks.append({"model": name, "nside": nside, "target": f"throughput vs {baseline}",
                               "ratio": speed, "bound": f">= {min_speed}", "met": speed >= min_speed})
                if max_memory is not None and other.get("peak_mb"):
                    memory = ours["peak_mb"] / other["peak_mb"]
                    checks.append({"model": name, "nside": nside, "target": f"peak memory vs {baseline}",
                                   "ratio": memory, "bound": f"<= {max_memory}", "met": memory <= max_memory})
        series = [ok[name, n] for n in nsides if (name, n) in ok]
        if len(series) > 1:
            value = slope(series, "s_per_step")
            checks.append({"model": name, "nside": None, "target": "log-log slope of time vs pixels",
                           "ratio": value, "bound": f"<= {MAX_SLOPE}", "met": value <= MAX_SLOPE})
    return checks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nsides", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--models", nargs="+", choices=MODELS, help="default: all that this source tree has")
    parser.add_argument("--width", type=int, default=32, help="Multi-ResNet width; the others are matched")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--channels", type=int, default=3, help="input and output channels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", help="write the rows and the summary to this file")
    parser.add_argument("--retain-freed-memory", action="store_true",
                        help="time inside geounet.train.memory.freed_memory_retained (train.retain_freed_memory): "
                             "every model, since it is process-wide; peak memory is measured as without it")
    parser.add_argument("--child-mode", choices=("time", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--child-nside", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-models", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.models is None:
        has_face = importlib.util.find_spec("geounet.hierarchy.healpix_face") is not None
        args.models = [m for m in MODELS if has_face or m not in FACE_MODELS]
    if "multiresnet" not in args.models:
        parser.error("--models must include multiresnet, the model the others are matched to")
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.child_mode == "time":
        print(json.dumps(time_models(args, device)))
        return
    if args.child_mode == "memory":
        print(json.dumps(measure_memory(args, device)))
        return

    widths, target = matched_widths(args)
    print(f"device {args.device}, batch {args.batch}, threads {torch.get_num_threads()}, {args.repeats} interleaved "
          f"rounds, target parameters {target}")
    print(f"{'model':<22}{'nside':>6}{'nodes':>9}{'params':>9}{'s/step':>9}{'min':>8}{'max':>8}{'peak MB':>9}")
    rows = []
    for nside in args.nsides:
        specs = [f"{name}:{widths[name, nside]}" for name in args.models]
        timings = run_child(args, "time", nside, specs)
        if isinstance(timings, dict):
            print(f"nside {nside}: timing failed: {timings['error']}")
            continue
        for row in timings:
            row.update(run_child(args, "memory", nside, [f"{row['model']}:{row['width']}"]))
            rows.append(row)
            peak = f"{row['peak_mb']:>9.0f}" if "peak_mb" in row else f"  memory failed: {row['error']}"
            print(f"{row['model']:<22}{nside:>6}{row['nodes']:>9}{row['params']:>9}{row['s_per_step']:>9.3f}"
                  f"{row['s_min']:>8.3f}{row['s_max']:>8.3f}{peak}", flush=True)

    checks = summarise(rows, args.models, args.nsides)
    print(f"\ntargets (throughput per pixel: baseline time / ours; {rows[0]['clock'] if rows else ''} clock)")
    for check in checks:
        where = f"nside {check['nside']}" if check["nside"] else "all nsides"
        print(f"{check['model']:<22}{where:<12}{check['target']:<34}{check['ratio']:>6.2f}  {check['bound']:<8}"
              f"{'met' if check['met'] else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
                       "threads": torch.get_num_threads(), "target_parameters": target, "rows": rows,
                       "targets": checks}, out, indent=1)


if __name__ == "__main__":
    main()
