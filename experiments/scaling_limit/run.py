"""The high-resolution scaling limit of U-Nets: d_i = ‖U_{i+1} P_{i+1} v − ι U_i P_i v‖ / ‖U_{i+1} P_{i+1} v‖
against the level i, for initialised U-Nets on a 6-level square Haar hierarchy (4² .. 128²).

U_i is the U-Net of resolution i (the recursion of ``UNet.evaluate`` cut at level i, then the
U-Net's own pointwise head; every level has the same width so one head serves all), applied
to the projection P_i v of a smooth random field v (Fourier amplitudes (1 + |k|²)^(-3/2),
random phases). The data's own rate, ‖P_{i+1} v − ι P_i v‖ / ‖P_{i+1} v‖, is the reference: a
U-Net with a high-resolution limit has d_i falling with i; one without it keeps d_i of order one.
Norms in the level's mass inner product, averaged over 4 fields.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/scaling_limit/run.py

writes ``experiments/scaling_limit/scaling_limit.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.models import build_unet
from geounet.nn.unet import geometry_for

HERE = Path(__file__).parent
SIZE, LEVELS, WIDTH, FIELDS = 128, 6, 8, 4


def smooth_fields(num: int, seed: int) -> torch.Tensor:
    """``[num, SIZE², 1]`` random fields with Fourier amplitudes (1 + |k|²)^(-3/2), unit variance, row-major."""
    generator = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(SIZE, 1 / SIZE, dtype=torch.float64)
    amplitude = (1 + k[:, None] ** 2 + k[None, :] ** 2) ** -1.5
    noise = torch.randn(num, SIZE, SIZE, generator=generator, dtype=torch.float64)
    fields = torch.fft.ifft2(torch.fft.fft2(noise) * amplitude).real
    fields = fields / fields.std(dim=(1, 2), keepdim=True)
    return fields.reshape(num, SIZE * SIZE, 1)


def relative_norm(difference: torch.Tensor, reference: torch.Tensor, hierarchy, level: int) -> float:
    ratio = hierarchy.inner(difference, difference, level) / hierarchy.inner(reference, reference, level)
    return float(ratio.mean().sqrt())


def level_outputs(model_at: Callable[[torch.Tensor, int], torch.Tensor], levels, v: torch.Tensor) -> list[torch.Tensor]:
    """U_i P_i v for i = 0 .. I, where ``model_at(x, i)`` is U_i applied to ``x`` on level i."""
    with torch.no_grad():
        return [model_at(levels.project(v, levels.finest_level, level), level) for level in range(levels.num_levels)]


def equal_width_unet(unet, levels) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """U_i of a U-Net with one width on every level: the recursion cut at level i, then the U-Net's own head."""
    return lambda x, level: unet.head(unet.evaluate(unet.lift(x), levels, level))


def scaling_gaps(outputs: list[torch.Tensor], hierarchy) -> list[float]:
    """d_i = ‖y_{i+1} − ι y_i‖ / ‖y_{i+1}‖ for i = 0 .. I-1."""
    return [relative_norm(outputs[i + 1] - hierarchy.prolong(outputs[i], i), outputs[i + 1], hierarchy, i + 1)
            for i in range(len(outputs) - 1)]


def main() -> None:
    torch.set_num_threads(1)
    hierarchy = SquareHaarHierarchy(SIZE, LEVELS).to(dtype=torch.float64)
    v = smooth_fields(FIELDS, seed=0)
    data = [hierarchy.project(v, hierarchy.finest_level, level) for level in range(LEVELS)]
    rows = [{"model": "data (P_i v)", "init": "-", "seed": None, "gaps": scaling_gaps(data, hierarchy)}]
    for variant in ("multiresnet", "residual"):
        for zero_init in (False, True):
            for seed in range(3):
                torch.manual_seed(seed)
                unet = build_unet(hierarchy, 1, 1, variant=variant, width=WIDTH, channel_mult=[1] * LEVELS,
                                  zero_init=zero_init).double()
                levels = geometry_for(unet, hierarchy, unet.kind, unet.num_levels)
                rows.append({"model": variant, "init": "zero" if zero_init else "default", "seed": seed,
                             "gaps": scaling_gaps(level_outputs(equal_width_unet(unet, levels), levels, v), hierarchy)})
                print(rows[-1]["model"], rows[-1]["init"], seed, [round(g, 3) for g in rows[-1]["gaps"]], flush=True)
    slopes = {}
    for row in rows:  # log2 of the gap's decay per level: the data's rate is about 1 (a Haar detail of a C¹ field)
        slopes.setdefault((row["model"], row["init"]), []).append(
            [math.log2(a / b) for a, b in zip(row["gaps"][:-1], row["gaps"][1:], strict=True)])
    (HERE / "scaling_limit.json").write_text(json.dumps({
        "hierarchy": f"square Haar {SIZE}² with {LEVELS} levels", "width": WIDTH, "fields": FIELDS,
        "rows": rows, "log2_decay_per_level": {f"{m} ({i})": s for (m, i), s in slopes.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
