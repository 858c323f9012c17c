"""Sizing models to a parameter budget: comparisons are made at matched parameter counts.

:func:`size_to_parameters` picks the width whose model has the parameter count closest to
a target, for any width -> model builder (the U-Nets of :func:`geounet.models.build_unet`
and the baselines in :mod:`geounet.models.baselines` alike).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from geounet.errors import GeounetError


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Per-part counts of a model that reports them (U-Nets, and wrappers of models, which
    report what they wrap); else the total, and 0 for the encoder (baselines have no
    separable parameter-free encoder to count)."""
    if hasattr(model, "parameter_counts"):
        return model.parameter_counts()
    return {"total": count_parameters(model), "encoder": 0}


def size_to_parameters(
    build: Callable[[int], nn.Module], target: int, widths: Sequence[int] = range(1, 1025)
) -> tuple[int, nn.Module]:
    """The width (from ``widths``, increasing) whose model's parameter count is nearest ``target``.

    Assumes the count grows with the width (true for every model here). The search first
    doubles an index into ``widths`` (0, 1, 3, 7, ...) until the count reaches ``target``,
    then bisects below it, so no model much wider than the answer is ever built: the count of
    a convolutional U-Net grows like width², and the widest default (1024 channels, 8192 at
    the coarsest of 4 levels) would take gigabytes. Returns ``(width, model)``.
    """
    widths = list(widths)
    if target < 1 or not widths:
        raise GeounetError(f"need a positive target and at least one width, got {target} and {len(widths)} widths")
    counts: dict[int, int] = {}

    def count(index: int) -> int:
        if index not in counts:
            counts[index] = count_parameters(build(widths[index]))
        return counts[index]

    lo, hi = 0, 0
    while count(hi) < target:  # invariant: every index below lo counts < target
        if hi == len(widths) - 1:
            raise GeounetError(f"the widest model ({widths[hi]}) has {count(hi)} parameters, below the target {target}")
        lo, hi = hi + 1, min(2 * hi + 1, len(widths) - 1)
    while lo < hi:  # smallest index with count >= target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < target else (lo, mid)
    best = min((i for i in (lo - 1, lo) if i >= 0), key=lambda i: abs(count(i) - target))
    return widths[best], build(widths[best])
