"""experiments/bench/bench_healpix_unets.py: the issue's targets are computed and judged right."""

import pytest


@pytest.fixture(scope="module")
def bench(experiment_script):
    return experiment_script("bench/bench_healpix_unets.py")


def _row(model, nside, seconds, peak_mb, nodes=None):
    return {"model": model, "nside": nside, "nodes": nodes or 12 * nside**2, "s_per_step": seconds,
            "peak_mb": peak_mb}


def test_targets_are_per_pixel_ratios_against_each_baseline(bench):
    rows = [
        _row("multiresnet", 32, 1.0, 100), _row("sfno", 32, 1.6, 50, nodes=12 * 32**2 // 2),
        _row("dlwp", 32, 1.1, 100),
        _row("multiresnet", 64, 4.0, 400), _row("sfno", 64, 8.0, 200), _row("dlwp", 64, 6.0, 500),
    ]
    checks = {(c["nside"], c["target"]): c for c in bench.summarise(rows, ["multiresnet", "sfno", "dlwp"], [32, 64])}
    # SFNO ran on half the pixels: per pixel it takes 1.6 / 0.5 = 3.2 times the Multi-ResNet's time
    assert checks[32, "throughput vs sfno"]["ratio"] == pytest.approx(3.2)
    assert checks[32, "throughput vs dlwp"]["ratio"] == pytest.approx(1.1)
    assert not checks[32, "throughput vs dlwp"]["met"]  # below 1.2
    assert checks[32, "peak memory vs dlwp"]["met"]  # 1.0 <= 1.0
    assert checks[64, "peak memory vs dlwp"]["ratio"] == pytest.approx(0.8)
    assert checks[64, "throughput vs dlwp"]["met"]
    slope = checks[None, "log-log slope of time vs pixels"]
    assert slope["ratio"] == pytest.approx(1.0) and slope["met"]  # 4x the pixels, 4x the time


def test_baselines_are_not_judged_and_missing_rows_are_skipped(bench):
    rows = [_row("multiresnet", 32, 1.0, 10), _row("dlwp", 32, 2.0, 20)]
    checks = bench.summarise(rows, ["multiresnet", "sfno", "dlwp"], [32])
    assert {c["model"] for c in checks} == {"multiresnet"}
    assert {c["target"] for c in checks} == {"throughput vs dlwp", "peak memory vs dlwp"}
