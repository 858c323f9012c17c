"""Settling time of a spin-up and the plateau criterion of a training run."""

import math

import pytest

from geounet.analysis.convergence import has_plateaued, settling_time


def test_settling_time_of_an_exponential_approach():
    """v(t) = 1 - e^{-t/2}: the reference is ~1, and |v - 1| <= 0.05 from t = 2 ln 20 ≈ 5.99 on."""
    times = [float(t) for t in range(41)]
    values = [1 - math.exp(-t / 2) for t in times]
    assert settling_time(times, values, 0.05) == 6.0
    assert settling_time(times, [t for t in times], 0.05) is None  # negative control: still drifting


def test_plateau_criterion():
    steps = list(range(0, 1001, 50))
    converged = [1 / (1 + s) + 0.2 for s in steps]  # improves by far less than 1 % over the last 20 %
    still_learning = [math.exp(-s / 300) for s in steps]
    assert has_plateaued(steps, converged)
    assert not has_plateaued(steps, still_learning)
    with pytest.raises(ValueError, match="evaluate more often"):
        has_plateaued([0, 1000], [1.0, 0.5])
