"""``geounet analyse samples`` on tiny triangle runs: metrics, data floor, tables, pictures, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geounet.analysis.sample_eval import DATA_LABEL, Row, SampleEvaluation, group_labels, markdown_table
from geounet.cli import main
from geounet.experiment.diffusion import read_config
from geounet.hierarchy import TriangleHierarchy

CONFIG = """
[task]
name = "triangle_poisson"
mesh_level = 3
hierarchy = "haar"
constrained = false
num_train = 12
num_test = 4
cache_dir = "{cache}"

[model]
width = 4
channel_mult = [1, 2, 2]
num_levels = 3
"""
#: two training steps, two sampling steps
TINY = ("--set", "diffusion.steps=2", "--set", "diffusion.batch_size=4", "--set", "diffusion.sample_steps=2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample_eval")
    config = root / "diffusion.toml"
    config.write_text(CONFIG.format(cache=root / "data"))
    dirs = []
    for variant, seed in (("multiresnet", 0), ("multiresnet", 1), ("residual", 0)):
        out = root / f"{variant}-{seed}"
        args = ["diffuse", "--config", str(config), "--out", str(out), "--quiet", *TINY]
        assert main([*args, "--set", f"model.variant='{variant}'", "--set", f"diffusion.seed={seed}"]) == 0
        dirs.append(out)
    return root, dirs


def test_samples_of_runs_against_test_data(runs, tmp_path, capsys, assert_drawn_png):
    root, dirs = runs
    out = tmp_path / "eval"
    assert main(["analyse", "samples", *map(str, dirs), "--num", "4", "--out", str(out)]) == 0
    result = json.loads((out / "sample_metrics.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == [DATA_LABEL] * 3 + ["multiresnet", "multiresnet", "residual"]  # 12 train = 3 subsets of 4
    assert result["test_samples"] == 4 and result["field"] == "inputs"
    assert result["summary"]["multiresnet"]["band_error"][1] > 0  # two seeds: a spread
    assert result["summary"]["residual"]["band_error"][1] == 0
    residual = result["rows"][-1]
    assert residual["parameters"]["encoder"] > 0 and result["rows"][3]["parameters"]["encoder"] == 0
    assert "cl_error" not in residual["metrics"]  # not HEALPix
    table = (out / "sample_metrics.md").read_text()
    assert table.count("\n") == 5 and "| multiresnet | 2 |" in table
    assert_drawn_png(out / "samples.png")
    assert_drawn_png(out / "spectra.png")
    # the same seed gives the same samples and metrics
    assert main(["analyse", "samples", str(dirs[2]), "--num", "4", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "sample_metrics.json").read_text())
    assert again["rows"][-1]["metrics"] == residual["metrics"]


def test_runs_of_different_data_are_refused(runs, tmp_path, capsys):
    root, dirs = runs
    config = root / "other.toml"
    config.write_text(CONFIG.format(cache=root / "data").replace("num_test = 4", "num_test = 5"))
    other = tmp_path / "other"
    assert main(["diffuse", "--config", str(config), "--out", str(other), "--quiet", *TINY]) == 0
    assert main(["analyse", "samples", str(dirs[0]), str(other), "--num", "4", "--out", str(tmp_path / "x")]) == 2
    assert "learns other fields than" in capsys.readouterr().err
    assert main(["analyse", "samples", str(tmp_path), "--num", "4", "--out", str(tmp_path / "x")]) == 2
    assert "no diffusion checkpoint.pt" in capsys.readouterr().err
    assert main(["analyse", "samples", str(dirs[0]), "--num", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--num must be >= 2" in capsys.readouterr().err


def test_summary_is_mean_and_sample_std_over_seeds():
    rows = [Row(DATA_LABEL, "d", {"band_error": 0.1}, torch.zeros(1))]
    rows += [Row("m", f"s{k}", {"band_error": value}, torch.zeros(1), {"denoiser": 10, "encoder": 0})
             for k, value in enumerate((1.0, 2.0, 6.0))]
    evaluation = SampleEvaluation(TriangleHierarchy(1), {}, "inputs", torch.zeros(1), rows)
    summary = evaluation.summary()
    assert summary[DATA_LABEL]["band_error"] == (0.1, 0.0)
    assert summary["m"]["band_error"] == pytest.approx((3.0, (((1 - 3) ** 2 + (2 - 3) ** 2 + 3**2) / 2) ** 0.5))
    assert "| m | 3 | 10 (0) | 3 ± 2.6 |" in markdown_table(evaluation)


def test_runs_differing_in_more_than_the_seed_are_separate_groups():
    def config(variant: str, seed: int, width: int = 8):
        return read_config({"task": {"name": "triangle_poisson"}, "model": {"variant": variant, "width": width},
                            "diffusion": {"seed": seed}})

    configs = [config("multiresnet", 0), config("multiresnet", 1), config("residual", 0),
               config("multiresnet", 0, width=16)]
    runs = [Path(name) for name in ("runs/a", "runs/b", "runs/c", "runs/d")]
    assert group_labels(runs, configs) == ["multiresnet (a)", "multiresnet (a)", "residual", "multiresnet (d)"]
    assert group_labels(runs[:3], configs[:3]) == ["multiresnet", "multiresnet", "residual"]
