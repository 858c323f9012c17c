"""Settling time of a spin-up and the plateau criterion of a training run."""

import math

import pytest

from geounet.analysis.convergence import doubling_gain, has_plateaued, settling_time


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


def test_doubling_gain_by_hand():
    """Evaluations every 100 steps up to 1000, smoothed over 2: L̄(500) = mean(L(400), L(500)),
    L̄(1000) = mean(L(900), L(1000))."""
    steps = list(range(100, 1001, 100))
    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5, 0.4, 0.4]
    assert doubling_gain(steps, losses, smooth=2) == pytest.approx(1 - 0.4 / 0.65)
    assert doubling_gain(steps, losses, smooth=1) == pytest.approx(1 - 0.4 / 0.6)


def test_doubling_gain_separates_converged_from_learning_runs():
    steps = list(range(50, 1001, 50))
    converged = [0.2 + math.exp(-s / 50) for s in steps]  # e^{-5} ≈ 0.007 left at step 250
    still_learning = [math.exp(-s / 300) for s in steps]  # halves its loss every ~208 steps
    overfitting = [0.2 + 1e-4 * s for s in steps]  # worse with more steps: no gain
    assert abs(doubling_gain(steps, converged)) < 1e-3
    assert doubling_gain(steps, still_learning) == pytest.approx(1 - math.exp(-500 / 300), rel=1e-9)
    assert doubling_gain(steps, overfitting) < 0


def test_doubling_gain_needs_evaluations_in_both_halves():
    with pytest.raises(ValueError, match="evaluate more often"):
        doubling_gain([100, 600, 800, 1000], [1.0, 0.5, 0.4, 0.3], smooth=2)  # one evaluation up to step 500
    with pytest.raises(ValueError, match="got steps \\[\\]; evaluate more often"):
        doubling_gain([], [])  # a run that never evaluated
    with pytest.raises(ValueError, match="increasing steps"):
        doubling_gain([100, 100, 200], [1.0, 0.5, 0.4], smooth=1)
