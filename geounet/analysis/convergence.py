"""When a series has stopped drifting: a solver's spin-up, a training run's validation loss.

Two criteria, both relative so that they read the same on any scale:

- :func:`settling_time`: the first time after which a series stays within ``tolerance`` of
  its reference level, the mean over the last half of the record (a spin-up is long enough
  when the data are drawn after that time).
- :func:`has_plateaued`: a training run has converged when its best validation loss over
  the last ``window`` fraction of the steps improves on the best before that window by at
  most ``tolerance`` (1 % over the last 20 % by default).
"""

from __future__ import annotations

from collections.abc import Sequence

from geounet.errors import GeounetError


def settling_time(times: Sequence[float], values: Sequence[float], tolerance: float = 0.05) -> float | None:
    """First ``t`` with ``|v(t') - r| <= tolerance |r|`` for every ``t' >= t``, ``r`` the mean of
    ``values`` over the last half of the record; None if even the last value is outside."""
    if len(times) != len(values) or len(values) < 2:
        raise GeounetError(f"need matching times and values, at least 2, got {len(times)} and {len(values)}")
    tail = list(values[len(values) // 2:])
    reference = sum(tail) / len(tail)
    settled = None
    for t, v in zip(reversed(times), reversed(values), strict=True):
        if abs(v - reference) > tolerance * abs(reference):
            break
        settled = t
    return settled


def has_plateaued(steps: Sequence[int], losses: Sequence[float], window: float = 0.2,
                  tolerance: float = 0.01) -> bool:
    """True when min(loss over the last ``window`` of the steps) >= (1 - tolerance) x min(loss before)."""
    if len(steps) != len(losses) or not 0 < window < 1:
        raise GeounetError(f"need matching steps and losses and 0 < window < 1, got {len(steps)}, "
                           f"{len(losses)} and {window}")
    if len(steps) < 3 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise GeounetError(f"need >= 3 evaluations at increasing steps, got steps {list(steps)}; evaluate more often")
    start = steps[-1] - window * (steps[-1] - steps[0])
    before = [loss for step, loss in zip(steps, losses, strict=True) if step < start]  # holds steps[0]
    last = [loss for step, loss in zip(steps, losses, strict=True) if step >= start]  # holds steps[-1]
    return min(last) >= (1 - tolerance) * min(before)


__all__ = ["has_plateaued", "settling_time"]
