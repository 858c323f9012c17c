"""Benchmark: HEALPix Multi-ResNet vs ChebConv U-Net, PyG GraphUNet and SFNO at matched size.

For every nside and model, fresh subprocesses build the model and run a warm-up and
then timed forward + backward passes (one process) or one measured pass (another):

- seconds per sample (median over repeats) and pixels per second, in wall-clock time and
  in the process's CPU time (user + system: what a run with ``--threads 1`` costs, which
  other processes on a loaded machine do not inflate; the ratios use it then);
- peak memory of one forward + backward after a warm-up pass:
  ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the rise of the peak resident
  set (VmHWM, reset through /proc/self/clear_refs) over the resident set before the pass;
- achieved FLOP/s (matmul / bmm / conv FLOPs counted by ``torch.utils.flop_counter``,
  sparse products by their nonzeros, gathers and elementwise work not counted) as a
  fraction of a dense fp32 matmul's FLOP/s measured in the same run; not reported for GraphUNet, whose sparse A @ A the
  counter books as a dense N x N product.

All graph models are sized by width to the Multi-ResNet's parameter count (their counts
do not depend on nside); SFNO runs on the equiangular grid with about as many points as
the HEALPix map (``geounet.models.baselines.equiangular_shape``) and is sized there.
The summary prints each Multi-ResNet's throughput and peak-memory ratios against the
baselines and the log-log slopes of time against pixels. ``multiresnet_ckpt`` is the
same Multi-ResNet with activation checkpointing of its residual branches
(``build_unet(..., checkpoint=True)``). ``--before DIR`` also runs the Multi-ResNet from
another source tree (e.g. ``git archive`` of an earlier commit) as ``multiresnet@before``,
right after the current one at every nside, so both see the same load.

    .venv/bin/python experiments/bench/bench_decoders.py                      # small, a few minutes
    .venv/bin/python experiments/bench/bench_decoders.py --nsides 32 64 128 256 --device cuda --compile
    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench/bench_decoders.py --threads 1 --models multiresnet sfno
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
from peak_memory import peak_step_bytes

MODELS = ("multiresnet", "multiresnet_ckpt", "cheb_unet", "graph_unet", "sfno")
MULTIRESNETS = ("multiresnet", "multiresnet_ckpt", "multiresnet@before")


def build(name: str, nside: int, width: int, levels: int, channels: int) -> torch.nn.Module:
    from geounet.hierarchy.healpix import HealpixHaarHierarchy
    from geounet.models.baselines import ChebUNet, GraphUNetBaseline, SFNOBaseline, equiangular_shape
    from geounet.models.unet import build_unet

    if name == "sfno":
        return SFNOBaseline(*equiangular_shape(12 * nside**2), channels, channels, width=width)
    hierarchy = HealpixHaarHierarchy(nside, levels)
    if name == "multiresnet_ckpt":
        return build_unet(hierarchy, channels, channels, width=width, checkpoint=True)
    if name.startswith("multiresnet"):  # the current one, or another source tree's (PYTHONPATH)
        return build_unet(hierarchy, channels, channels, width=width)
    if name == "cheb_unet":
        return ChebUNet(hierarchy, channels, channels, width=width, depth=levels)
    return GraphUNetBaseline(hierarchy, channels, channels, width=width, depth=levels - 1)


def matched_widths(args) -> tuple[dict[tuple[str, int], int], int]:
    """Width of every (model, nside) matching the Multi-ResNet's parameter count, and that count."""
    from geounet.models.sizing import count_parameters, size_to_parameters

    small = 2 ** (args.levels - 1)  # graph-model counts do not depend on nside
    target = count_parameters(build("multiresnet", small, args.width, args.levels, args.channels))
    widths = {}
    for name in args.models:
        for nside in args.nsides:
            if name in MULTIRESNETS:
                widths[name, nside] = args.width
            elif name != "sfno" and (name, args.nsides[0]) in widths:
                widths[name, nside] = widths[name, args.nsides[0]]
            else:
                size_at = nside if name == "sfno" else small
                widths[name, nside], _ = size_to_parameters(
                    lambda w, name=name, n=size_at: build(name, n, w, args.levels, args.channels),
                    target, widths=range(1, 513),
                )
    return widths, target


def matmul_flops_per_second(device: torch.device, size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """A dense fp32 matmul's FLOP/s in wall-clock and in process CPU time."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    (a @ b).sum().item()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        c = a @ b
    c.sum().item()
    flops = 2 * size**3 * repeats
    return flops / (time.perf_counter() - start), flops / (time.process_time() - cpu_start)


def _mm_flops(a, b, *args, out_val=None, **kwargs) -> int:
    """FLOPs of ``a @ b``: ``2 nnz(a) n`` for a sparse ``a`` (the flop counter's own formula
    books a sparse matrix as dense), else ``2 m k n``."""
    if a.layout != torch.strided:
        return 2 * a.values().numel() * b.shape[-1]
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


_mm_flops._get_raw = True  # FlopCounterMode passes the tensors, not their shapes


def measure(args) -> dict:
    """Child process: time (``--child-mode time``) or peak memory (``memory``) of one model."""
    from torch.utils.flop_counter import FlopCounterMode

    from geounet.models.sizing import count_parameters

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.child_model, args.child_nside, args.child_width, args.levels, args.channels).to(device)
    num_nodes = model.nlat * model.nlon if args.child_model == "sfno" else 12 * args.child_nside**2
    x = torch.randn(args.batch, num_nodes, args.channels, device=device)
    hierarchy = None
    if args.child_model != "sfno":  # the geometry is an input of the graph models, built once
        from geounet.hierarchy.healpix import HealpixHaarHierarchy

        hierarchy = HealpixHaarHierarchy(args.child_nside, args.levels).to(device)
    if args.compile and args.child_model != "graph_unet":  # GraphUNet's top-k pools graph-break
        model = torch.compile(model)

    def step():
        model.zero_grad(set_to_none=True)
        model(x, hierarchy).square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    if args.child_mode == "memory":
        return {"peak_mb": peak_step_bytes(step, device) / 2**20}
    step()  # warm-up: one-time library and allocator initialisation
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.mm: _mm_flops}) as counter:
        step()
    times, cpu_times = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append((time.perf_counter() - start) / args.batch)
        cpu_times.append((time.process_time() - cpu_start) / args.batch)
    seconds, cpu_seconds = statistics.median(times), statistics.median(cpu_times)
    return {
        "model": args.child_model, "nside": args.child_nside, "nodes": num_nodes,
        "params": count_parameters(model), "width": args.child_width,
        "s_per_sample": seconds, "pixels_per_s": num_nodes / seconds, "cpu_s_per_sample": cpu_seconds,
        "flops_per_s": counter.get_total_flops() / args.batch / seconds,
        "flops_per_cpu_s": counter.get_total_flops() / args.batch / cpu_seconds,
    }


def run_child(args, name: str, nside: int, width: int) -> dict:
    """Time one model in a fresh process, then measure its peak memory in another."""
    row = {}
    source = {"PYTHONPATH": args.before} if name.endswith("@before") else {}
    for mode in ("time", "memory"):
        command = [sys.executable, __file__, "--child-model", name, "--child-nside", str(nside),
                   "--child-width", str(width), "--child-mode", mode, "--device", args.device,
                   "--batch", str(args.batch), "--repeats", str(args.repeats), "--levels", str(args.levels),
                   "--channels", str(args.channels), "--threads", str(args.threads)]
        command += ["--compile"] if args.compile else []
        # For the memory run, a fixed mmap threshold makes glibc return freed large buffers
        # to the OS, so the resident set after the warm-up pass is the model's, not the
        # allocator's cache (it slows the pass down, hence the separate timing run).
        env = {**os.environ, **source, **({"MALLOC_MMAP_THRESHOLD_": "65536"} if mode == "memory" else {})}
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode:
            return {"model": name, "nside": nside, "error": result.stderr.strip().splitlines()[-1]}
        row.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return row


def efficiency(row: dict, reference: float, clock: str) -> str:
    """Achieved FLOP/s as a percentage of the dense matmul's, both in the same clock."""
    flops = row["flops_per_cpu_s" if clock == "cpu" else "flops_per_s"]
    return "n/a" if row["model"] == "graph_unet" else f"{100 * flops / reference:.1f}%"


def slope(rows: list[dict], key: str) -> float:
    """Least-squares slope of log(time) against log(pixels)."""
    xs = [math.log(r["nodes"]) for r in rows]
    ys = [math.log(r[key]) for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nsides", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--width", type=int, default=32, help="Multi-ResNet width; the others are matched")
    parser.add_argument("--levels", type=int, default=4)
    parser.add_argument("--channels", type=int, default=2, help="input and output channels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model but GraphUNet")
    parser.add_argument("--before", metavar="DIR", help="also run the Multi-ResNet of the source tree DIR")
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-nside", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", choices=("time", "memory"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_model:
        print(json.dumps(measure(args)))
        return
    if "multiresnet" not in args.models:
        parser.error("--models must include multiresnet, the model the others are matched to")

    models = list(args.models)
    if args.before:
        models.insert(models.index("multiresnet") + 1, "multiresnet@before")
    widths, target = matched_widths(args)
    for nside in args.nsides:
        widths["multiresnet@before", nside] = args.width
    wall_reference, cpu_reference = matmul_flops_per_second(torch.device(args.device))
    # One thread on the CPU: CPU time is the work done, whatever else runs on the machine.
    clock = "cpu" if args.device == "cpu" and torch.get_num_threads() == 1 else "wall"
    time_key, reference = ("cpu_s_per_sample", cpu_reference) if clock == "cpu" else ("s_per_sample", wall_reference)
    print(f"device {args.device}, batch {args.batch}, threads {torch.get_num_threads()}, target parameters {target}, "
          f"dense matmul {wall_reference / 1e9:.1f} GFLOP/s wall, {cpu_reference / 1e9:.1f} GFLOP/s CPU time; "
          f"ratios and %matmul in {clock} time")
    print(f"{'model':<20}{'nside':>6}{'nodes':>9}{'params':>9}{'s/sample':>10}{'CPU s':>8}"
          f"{'Mpix/s':>8}{'peak MB':>9}{'%matmul':>8}")
    rows = []
    for nside in args.nsides:
        for name in models:
            row = run_child(args, name, nside, widths[name, nside])
            rows.append(row)
            if "error" in row:
                print(f"{name:<20}{nside:>6}  failed: {row['error']}")
                continue
            print(f"{name:<20}{nside:>6}{row['nodes']:>9}{row['params']:>9}{row['s_per_sample']:>10.4f}"
                  f"{row['cpu_s_per_sample']:>8.3f}{row['nodes'] / row[time_key] / 1e6:>8.3f}{row['peak_mb']:>9.1f}"
                  f"{efficiency(row, reference, clock):>8}", flush=True)

    ok = {(r["model"], r["nside"]): r for r in rows if "error" not in r}
    print(f"\nratios in this run ({clock} time; throughput: baseline time / Multi-ResNet time per pixel)")
    baselines = [m for m in models if m not in MULTIRESNETS]
    for mr_name in [m for m in models if m in MULTIRESNETS]:
        for nside in args.nsides:
            mr = ok.get((mr_name, nside))
            parts = []
            for name in baselines:
                other = ok.get((name, nside))
                if mr and other:
                    speed = other[time_key] / other["nodes"] / (mr[time_key] / mr["nodes"])
                    memory = mr["peak_mb"] / other["peak_mb"] if other["peak_mb"] > 0 else float("nan")
                    parts.append(f"{name}: throughput {speed:.2f}x, memory {memory:.2f}x")
            if parts:
                print(f"{mr_name} nside {nside}: " + "; ".join(parts))
    for name in models:
        series = [ok[name, n] for n in args.nsides if (name, n) in ok]
        if len(series) > 1:
            print(f"log-log slope of time vs pixels, {name}: {slope(series, time_key):.2f}")

if __name__ == "__main__":
    main()
