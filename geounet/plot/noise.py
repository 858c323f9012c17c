"""Figures of the noise-dominance study (:mod:`geounet.analysis.noise_study`): per-level
SNR against the noise level, detail energy per degree of freedom against level, and the
measured against the predicted decay of every study."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from geounet.plot.figure import new_figure, save_figure


def log2_or_none(values) -> list[float | None]:
    """``log2`` of each value, ``None`` kept (a level the prediction does not cover)."""
    return [None if v is None else math.log2(v) for v in values]


def plot_noise_study(name: str, result, schedule, path: Path) -> Figure:
    """Per-level SNR against t (left) and the detail energy per degree of freedom against level,
    measured, predicted from the spectrum and by the power law (right)."""
    fig = new_figure(11, 4)
    left, right = fig.subplots(1, 2)
    for level, snr in enumerate(result.level_snr):
        left.semilogy(result.times, snr, label=f"level {level} (dim W {_dim_w(result, level)})")
    left.axhline(1.0, color="k", lw=0.8, ls=":")
    left.set_ylim(1e-4, 1e6)
    left.set_xlabel(f"t ({schedule!r})")
    left.set_ylabel("SNR_i(t)")
    left.set_title(f"{name}: per-level SNR")
    left.legend(fontsize=7)
    levels = list(range(len(result.per_dof)))
    right.plot(levels, log2_or_none(result.per_dof), "o-", label="measured e_i")
    band = [(i, v) for i, v in zip(levels, log2_or_none(result.per_dof_spectrum), strict=True) if v is not None]
    if band:
        right.plot(*zip(*band, strict=True), "x--", label="spectrum prediction")
    anchor = log2_or_none(result.per_dof)[-1]
    law = [anchor]
    for decay in reversed(result.decay_power_law[1:]):
        law.insert(0, law[0] + math.log2(decay))
    right.plot(levels[1:], law, ":", label=f"power law, beta = {result.beta:.2f}")
    right.set_xlabel("level i (0 = coarsest)")
    right.set_ylabel("log2 e_i (signal energy per noise dof)")
    right.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)


def _dim_w(result, level: int) -> int:
    dims = result.dimensions
    return dims[0] if level == 0 else dims[level] - dims[level - 1]


def plot_noise_decays(results: dict, path: Path) -> Figure:
    """Measured against predicted (from the spectrum) decay of the detail energy per level, one
    colour per study."""
    fig = new_figure(5, 5)
    ax = fig.subplots()
    low, top = 0.0, 1.0
    for name, result in results.items():
        predicted, measured = log2_or_none(result["decay_spectrum"]), log2_or_none(result["decay_measured"])
        pairs = [(p, m) for p, m in zip(predicted, measured, strict=True) if p is not None]
        if pairs:
            ax.plot(*zip(*pairs, strict=True), "o", label=name)
            low, top = min(low, *(min(pair) for pair in pairs)), max(top, *(max(pair) for pair in pairs))
    ax.plot([low, top], [low, top], "k:", lw=0.8)
    ax.set_xlabel("predicted log2 decay per level (from the spectrum)")
    ax.set_ylabel("measured log2 decay per level")
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=110)
