"""Paired statistics of per-seed scores: known numbers, and scipy's own paired t-test / Wilcoxon."""

import math

import pytest
from scipy import stats

from geounet.analysis.paired import format_difference, format_mean_std, paired_by_seed, paired_difference


def test_t_interval_on_known_numbers():
    a, b = [0.30, 0.32, 0.35], [0.28, 0.31, 0.30]  # d = 0.02, 0.01, 0.05
    result = paired_difference(a, b)
    sd = math.sqrt(((0.02 - 0.08 / 3) ** 2 + (0.01 - 0.08 / 3) ** 2 + (0.05 - 0.08 / 3) ** 2) / 2)
    half_width = 4.302652729749464 * sd / math.sqrt(3)  # t_{0.975, 2}, from a table
    assert result["n"] == 3 and result["mean"] == pytest.approx(0.08 / 3, rel=1e-12)
    assert result["ci95"] == pytest.approx([0.08 / 3 - half_width, 0.08 / 3 + half_width], rel=1e-9)
    assert result["wilcoxon_p"] is None  # fewer than 5 seeds
    assert result["ci95"][0] < 0 < result["ci95"][1]  # the seed spread swallows this difference


def test_agrees_with_scipy_paired_t_test_and_wilcoxon():
    a = [0.201, 0.188, 0.215, 0.193, 0.207, 0.199, 0.211]
    b = [0.190, 0.184, 0.196, 0.195, 0.192, 0.188, 0.199]
    result = paired_difference(a, b)
    interval = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert result["ci95"] == pytest.approx([interval.low, interval.high], rel=1e-10)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
    # all six positive, one negative of the smallest rank: exact two-sided p = 2 * 2 / 2^7
    assert result["wilcoxon_p"] == pytest.approx(4 / 128)
    assert result["ci95"][0] > 0  # a consistent difference: the interval excludes 0


def test_pairs_only_shared_seeds_and_formats():
    result = paired_by_seed({0: 0.3, 1: 0.4, 2: 0.5, 7: 9.0}, {0: 0.2, 1: 0.3, 2: 0.35})
    assert result["seeds"] == [0, 1, 2]
    assert result["mean"] == pytest.approx(0.35 / 3)
    assert format_difference(result).startswith("+0.1167 [")


def test_refuses_what_cannot_be_paired():
    with pytest.raises(ValueError, match="same number"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="share 1 seed"):
        paired_by_seed({0: 0.1, 1: 0.2}, {1: 0.3, 2: 0.4})


def test_mean_std_is_the_sample_standard_deviation_and_zero_for_one_seed():
    assert format_mean_std([0.30, 0.31, 0.32]) == "0.3100 ± 0.0100"  # sample std: sqrt(2e-4 / 2)
    assert format_mean_std([0.25]) == "0.2500 ± 0.0000"
