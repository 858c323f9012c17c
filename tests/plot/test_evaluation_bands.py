"""Mean ± std bands of evaluation curves over seeds (experiments/compare.py's evaluation_curves.png)."""

import statistics

import pytest

from geounet.plot.fields import mean_band, plot_evaluation_bands

SEEDS = [[[10, 0.5], [20, 0.3], [30, 0.25]], [[10, 0.7], [20, 0.4], [30, 0.27]], [[10, 0.6], [20, 0.2], [30, 0.2]]]


def test_mean_band_is_the_mean_and_sample_std_over_seeds():
    steps, mean, spread = mean_band("model", SEEDS)
    assert steps == [10, 20, 30]
    for t in range(3):
        values = [curve[t][1] for curve in SEEDS]
        assert mean[t].item() == pytest.approx(statistics.mean(values), rel=1e-12)
        assert spread[t].item() == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert mean_band("one seed", SEEDS[:1])[2].tolist() == [0.0, 0.0, 0.0]


def test_mean_band_refuses_seeds_evaluated_at_different_steps():
    with pytest.raises(ValueError, match="'model' were evaluated at different steps"):
        mean_band("model", [SEEDS[0], [[10, 0.5], [25, 0.3], [30, 0.2]]])


def test_bands_and_reference_lines_are_drawn(tmp_path, assert_drawn_png):
    path = tmp_path / "bands.png"
    plot_evaluation_bands({"a": SEEDS, "b": [[[s, e + 0.1] for s, e in c] for c in SEEDS]}, {"persistence": 0.19},
                          "test relative L2", str(path))
    assert_drawn_png(path)
