"""Test-suite settings shared by every test.

- hypothesis runs derandomized (a fixed seed: CI is reproducible) and without its
  per-example wall-clock deadline; ``HYPOTHESIS_PROFILE=explore`` draws fresh examples.
- ``@pytest.mark.cuda`` tests run when a CUDA device is present and are skipped otherwise.
- ``golden``: compares a run's metrics with ``tests/golden/<name>.json`` (numbers at fixed
  seeds, with tolerances); ``GEOUNET_UPDATE_GOLDEN=1`` rewrites the file instead.
- ``assert_drawn_png``: a file is a decodable PNG of the expected size with a drawing in it.
- ``isolated_cache``: hierarchies cache their operators under the test's own folder
  (``pytestmark = pytest.mark.usefixtures("isolated_cache")`` in a module).
- ``experiment_script``: a script under ``experiments/`` loaded as a module, e.g.
  ``experiment_script("compare.py").table(...)``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GOLDEN = Path(__file__).parent / "golden"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def pytest_report_header(config):
    """The CPU code path of this run (``make test-portable`` runs the suite on another one)."""
    chosen = [f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                                               "OPENBLAS_CORETYPE", "OMP_NUM_THREADS") if k in os.environ]
    return (f"cpu: ATen {torch.backends.cpu.get_cpu_capability()} kernels, {torch.get_num_threads()} threads"
            + (f" ({', '.join(chosen)})" if chosen else ""))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def golden():
    """``check(name, metrics)``: every number of ``tests/golden/<name>.json`` matches
    ``metrics`` within the file's ``rtol`` / ``atol``."""

    def check(name: str, metrics: dict[str, float], rtol: float = 1e-3, atol: float = 1e-6) -> None:
        path = GOLDEN / f"{name}.json"
        if os.environ.get("GEOUNET_UPDATE_GOLDEN") == "1":
            record = {"rtol": rtol, "atol": atol, "metrics": metrics}
            path.write_text(json.dumps(record, indent=2) + "\n")
        expected = json.loads(path.read_text())
        assert set(metrics) == set(expected["metrics"]), f"{path} records other metrics"
        for key, value in expected["metrics"].items():
            assert math.isclose(metrics[key], value, rel_tol=expected["rtol"], abs_tol=expected["atol"]), (
                f"{name}: {key} = {metrics[key]!r}, golden {value!r} (rtol {expected['rtol']}); if the change is "
                f"intended, rerun with GEOUNET_UPDATE_GOLDEN=1 and commit {path}"
            )

    return check


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def assert_drawn_png():
    return _assert_drawn_png


def _assert_drawn_png(path: Path, min_size: tuple[int, int] = (200, 200)) -> np.ndarray:
    """Decode ``path`` and check it is an image of at least ``min_size`` (height, width)
    pixels in which at least 2 % of the pixels differ from the background colour."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    image = imread(path)[..., :3]  # [H, W, RGB] in [0, 1]
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], f"{path} is {image.shape[:2]} pixels"
    background = image[0, 0]
    drawn = np.abs(image - background).max(axis=-1) > 0.05
    assert drawn.mean() > 0.02, f"{path} is almost blank ({drawn.mean():.1%} drawn pixels)"
    return image


def load_experiment_script(relative: str):
    """The script ``experiments/<relative>`` as a module; its folder is on ``sys.path`` while it loads,
    so a script that imports its neighbours by name (the benchmarks) finds them."""
    path = EXPERIMENTS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


@pytest.fixture(scope="session")
def experiment_script():
    return load_experiment_script


class StoppedRun(Exception):
    """Raised in place of an optimiser step by :func:`optimiser_stops_at`: the run is killed there."""


@pytest.fixture
def optimiser_stops_at(monkeypatch):
    """``with optimiser_stops_at(n):`` makes the n-th AdamW step raise :class:`StoppedRun`
    (``optimiser_stops_at.StoppedRun``), so a run is killed after its last checkpoint before step n;
    the real step is back after the block."""
    from contextlib import contextmanager

    @contextmanager
    def stops_at(step: int):
        calls, original_step = {"n": 0}, torch.optim.AdamW.step

        def step_or_stop(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == step:
                raise StoppedRun
            return original_step(self, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(torch.optim.AdamW, "step", step_or_stop)
            yield

    stops_at.StoppedRun = StoppedRun
    return stops_at
