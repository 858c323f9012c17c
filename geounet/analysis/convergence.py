"""When a series has stopped drifting: a solver's spin-up, a training run's validation loss.

Two criteria, both relative so that they read the same on any scale:

- :func:`settling_time`: the first time after which a series stays within ``tolerance`` of
  its reference level, the mean over the last half of the record (a spin-up is long enough
  when the data are drawn after that time).
- :func:`has_plateaued`: a training run has converged when its best validation loss over
  the last ``window`` fraction of the steps improves on the best before that window by at
  most ``tolerance`` (1 % over the last 20 % by default).
- :func:`doubling_gain`: the relative improvement of the final validation loss when the
  budget doubles from N/2 to N steps, read from one N-step run. Each final loss is the mean
  of the last ``smooth`` evaluations up to its budget, L̄(M) = mean of L at the last ``smooth``
  evaluation steps <= M, and

      gain = 1 - L̄(N) / L̄(N / 2).

  This is a budget-doubling check only when the first N/2 steps of the N-step run are the
  N/2-step run: a learning rate that is constant after its warm-up (``train.min_lr_ratio = 1``)
  and a seeded data order. Under a decaying schedule the curve flattens because the step size
  shrinks, and the prefix is not a shorter run (two runs are needed then).
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


def doubling_gain(steps: Sequence[int], losses: Sequence[float], smooth: int = 3) -> float:
    """``1 - L̄(N) / L̄(N / 2)``, ``L̄(M)`` the mean loss of the last ``smooth`` evaluations at steps
    <= M and N the last step: > 0 when doubling the budget helped, <= 0 when it did not."""
    if len(steps) != len(losses) or smooth < 1:
        raise GeounetError(f"need matching steps and losses and smooth >= 1, got {len(steps)}, {len(losses)} "
                           f"and {smooth}")
    if not steps or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise GeounetError(f"need evaluations at increasing steps, got steps {list(steps)}; evaluate more often")
    half = [loss for step, loss in zip(steps, losses, strict=True) if step <= steps[-1] / 2]
    if len(half) < smooth or len(steps) - len(half) < smooth:
        raise GeounetError(f"need >= {smooth} evaluations in each half of the run, got {len(half)} up to step "
                           f"{steps[-1] / 2:g} and {len(steps) - len(half)} after; evaluate more often")
    return 1 - (sum(losses[-smooth:]) / smooth) / (sum(half[-smooth:]) / smooth)


__all__ = ["doubling_gain", "has_plateaued", "settling_time"]
