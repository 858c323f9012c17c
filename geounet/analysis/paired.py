"""Paired comparison of two models trained on the same seeds (same initial draws, same data order).

With per-seed scores a_s and b_s on n shared seeds, the differences d_s = a_s - b_s remove
what the seed does to both models alike. Under the usual assumption that the d_s are
independent draws of a normal variable,

    d̄ ± t_{0.975, n-1} · sd(d) / sqrt(n)

is a 95 % confidence interval for the mean difference (the paired t-interval). For n >= 5
the Wilcoxon signed-rank test (two-sided, exact) gives a p-value without the normality
assumption; below 5 seeds even the most extreme outcome has p >= 0.0625, so it is not reported.
An interval that excludes 0 is what "better than" means in the results tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from scipy import stats

from geounet.errors import GeounetError

#: fewest shared seeds for which a Wilcoxon signed-rank p-value is reported
WILCOXON_MIN_SEEDS = 5


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a - b`` over paired seeds with its 95 % t-interval, and a Wilcoxon p for n >= 5:
    ``{"n", "mean", "ci95": [low, high], "wilcoxon_p": float | None}``."""
    if len(a) != len(b) or len(a) < 2:
        raise GeounetError(f"need the same number (>= 2) of paired scores, got {len(a)} and {len(b)}")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    n, mean = len(differences), statistics.fmean(differences)
    half_width = stats.t.ppf(0.975, n - 1) * statistics.stdev(differences) / math.sqrt(n)
    p = float(stats.wilcoxon(differences).pvalue) if n >= WILCOXON_MIN_SEEDS else None
    return {"n": n, "mean": mean, "ci95": [mean - half_width, mean + half_width], "wilcoxon_p": p}


def paired_by_seed(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """:func:`paired_difference` over the seeds ``a`` and ``b`` share (``{seed: score}`` each)."""
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise GeounetError(f"the two runs share {len(shared)} seed(s) ({shared}); a paired comparison needs >= 2")
    return {"seeds": shared, **paired_difference([a[s] for s in shared], [b[s] for s in shared])}


def format_mean_std(values: Sequence[float]) -> str:
    """``0.3010 ± 0.0038``: the mean of per-seed scores and their sample standard deviation (0 for
    one seed)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {spread:.4f}"


def format_difference(result: dict) -> str:
    """``+0.0123 [+0.0040, +0.0206]`` (and ``, Wilcoxon p = 0.031`` for n >= 5)."""
    low, high = result["ci95"]
    text = f"{result['mean']:+.4f} [{low:+.4f}, {high:+.4f}]"
    return text + (f", Wilcoxon p = {result['wilcoxon_p']:.3g}" if result["wilcoxon_p"] is not None else "")


__all__ = ["WILCOXON_MIN_SEEDS", "format_difference", "format_mean_std", "paired_by_seed", "paired_difference"]
