"""Zero-initialised residual branches (the preconditioned start) against the default initialisation.

A Multi-ResNet with ``zero_init=True`` starts as its prolonged bottleneck path,
U(x) = head ι L_I ... ι L_1 U_0(P_0 lift x) (:func:`geounet.models.unet.zero_init_residuals`), so
each resolution begins as the coarser U-Net and learns only the residual; with the default
initialisation every residual branch adds a random function of the input from the start.
Both are trained on the same seeds (same initial draws of the shared parameters' RNG stream,
same data) to map white noise x on the periodic square to a smooth field, y = 3 S⁸ x with S
the five-point average; the per-step MSE curves of every seed go to a JSON artifact, and the
paired difference of the log losses (default minus zero-init) is printed with its 95 % interval
(:mod:`geounet.analysis.paired`). ``tests/models/test_preconditioning.py`` runs
:func:`training_curve` on a few seeds.

    OMP_NUM_THREADS=1 PYTHONPATH=../.. python zero_init.py --seeds 12 --out zero_init.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from geounet.analysis.paired import paired_difference
from geounet.hierarchy import SquareHaarHierarchy
from geounet.models.unet import build_unet

#: the compared U-Net: 16 x 16 periodic square, 4 levels, width 8, 4 residual blocks per decoder and bottleneck
SETTING = {"side": 16, "levels": 4, "width": 8, "blocks": 4, "lr": 3e-3, "batch": 4}


def smooth(x: torch.Tensor, side: int, iterations: int = 8) -> torch.Tensor:
    """``iterations`` periodic five-point averages of node features ``[B, side², C]``."""
    image = x.reshape(x.shape[0], side, side, -1)
    for _ in range(iterations):
        image = (image + sum(torch.roll(image, s, dims=d) for s in (1, -1) for d in (1, 2))) / 5
    return image.reshape(x.shape)


def training_curve(zero_init: bool, seed: int, steps: int, side: int = 16, levels: int = 4, width: int = 8,
                   blocks: int = 4, lr: float = 3e-3, batch: int = 4) -> list[float]:
    """The MSE of every Adam step of one Multi-ResNet trained from ``seed``."""
    hierarchy = SquareHaarHierarchy(side, levels, periodic=True)
    torch.manual_seed(seed)
    model = build_unet(hierarchy, 1, 1, width=width, zero_init=zero_init, decoder_blocks=blocks,
                       bottleneck_blocks=blocks)
    data = torch.Generator().manual_seed(1000 + seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = torch.randn(batch, side * side, 1, generator=data)  # [B, N, 1]
        loss = torch.nn.functional.mse_loss(model(x, hierarchy), 3 * smooth(x, side))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def mean_log_loss(curve: list[float]) -> float:
    """The mean of log MSE over the steps: the area under the log-loss curve per step."""
    return sum(math.log(loss) for loss in curve) / len(curve)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", default="zero_init.json")
    for name, value in SETTING.items():
        parser.add_argument(f"--{name}", type=type(value), default=value)
    args = parser.parse_args()
    torch.set_num_threads(1)
    setting = {name: getattr(args, name) for name in SETTING}
    curves: dict[str, list[list[float]]] = {"default": [], "zero_init": []}
    start = time.process_time()
    for seed in range(args.seeds):
        curves["default"].append(training_curve(False, seed, args.steps, **setting))
        curves["zero_init"].append(training_curve(True, seed, args.steps, **setting))
        print(f"seed {seed}: mean log loss default {mean_log_loss(curves['default'][-1]):.3f}, "
              f"zero-init {mean_log_loss(curves['zero_init'][-1]):.3f}", flush=True)
    summary = {}
    for label, window in (("mean_log_loss", slice(None)), ("final_log_loss", slice(-10, None))):
        default = [mean_log_loss(curve[window]) for curve in curves["default"]]
        zero = [mean_log_loss(curve[window]) for curve in curves["zero_init"]]
        summary[label] = {"default_minus_zero_init": paired_difference(default, zero),
                          "per_seed": [d - z for d, z in zip(default, zero, strict=True)]}
        print(label, json.dumps(summary[label]))
    result = {"setting": setting, "steps": args.steps, "seeds": args.seeds, "summary": summary, "curves": curves,
              "cpu_seconds": time.process_time() - start}
    with open(args.out, "w") as file:
        json.dump(result, file, indent=1)


if __name__ == "__main__":
    main()
