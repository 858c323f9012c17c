"""experiments/compare.py reads a finished run's metrics only when they are for the same config,
prints paired differences against the model asked for, and keeps a model spec's ``|`` out of the
Markdown tables' cell separators."""

import importlib.util
import json
from pathlib import Path

import pytest

from geounet.experiment.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _compare_module():
    spec = importlib.util.spec_from_file_location("compare", ROOT / "experiments" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finished_run(folder: Path, config: dict, steps: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"config": config, "steps": steps, "test": {"rel_l2_mean": 0.1}}))
    return folder


def test_a_run_from_before_a_key_was_added_is_still_the_same_run(tmp_path):
    compare = _compare_module()
    cfg = load_config(ROOT / "experiments" / "square_forced_turbulence" / "config.toml", ["train.steps=4"])
    stored = json.loads(json.dumps(cfg.to_dict()))
    del stored["train"]["retain_freed_memory"]  # written before the key existed; its default is the same run
    run = _finished_run(tmp_path / "old", stored, 4)
    assert compare.run_or_reuse(cfg, run, reuse=False, finished_only=True)["test"]["rel_l2_mean"] == 0.1

    other = json.loads(json.dumps(cfg.to_dict()))
    other["train"]["lr"] = cfg.train.lr * 2  # a real difference: not this run
    for name, config, steps in (("other", other, 4), ("short", stored, 2)):
        run = _finished_run(tmp_path / name, config, steps)
        assert compare.run_or_reuse(cfg, run, reuse=False, finished_only=True) is None


def test_paired_differences_against_another_model(tmp_path, capsys, monkeypatch):
    """``--paired RESULTS --against MODEL``: every other model minus MODEL on the shared seeds; an
    unknown model is refused naming the models there."""
    compare = _compare_module()
    rows = {"unet:residual": [0.30, 0.32, 0.31], "unet:multiresnet": [0.33, 0.36, 0.33],
            "unet:multiresnet_matched": [0.31, 0.33, 0.32]}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"command": "compare.py --seeds 0 1 2",
                                   "rows": {m: {"rel_l2_per_seed": v} for m, v in rows.items()}}))
    monkeypatch.setattr("sys.argv", ["compare.py", "--paired", str(results), "--against", "unet:multiresnet"])
    compare.main()
    table = capsys.readouterr().out
    assert "against Multi-ResNet" in table
    assert "Residual U-Net (learned encoder) | 0, 1, 2 | -0.0300 [" in table  # mean of -0.03, -0.04, -0.02
    assert "(saved params added in dec.) | 0, 1, 2 | -0.0200 [" in table
    monkeypatch.setattr("sys.argv", ["compare.py", "--paired", str(results), "--against", "sfno"])
    with pytest.raises(SystemExit):
        compare.main()
    assert "--against sfno is not a model of" in capsys.readouterr().err


def test_a_spec_with_overrides_keeps_its_table_row_in_one_cell(tmp_path, capsys, monkeypatch):
    """``dlwp|train.lr=1e-3`` names a model with an override; in a Markdown row its ``|`` is escaped,
    so the row has as many cells as the header."""
    compare = _compare_module()
    rows = {"dlwp": [0.68, 0.70], "dlwp|train.lr=1e-3": [0.70, 0.71]}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"command": "compare.py --seeds 0 1",
                                   "rows": {m: {"rel_l2_per_seed": v} for m, v in rows.items()}}))
    monkeypatch.setattr("sys.argv", ["compare.py", "--paired", str(results), "--against", "dlwp"])
    compare.main()
    table = capsys.readouterr().out.splitlines()
    header = next(line for line in table if line.startswith("| model |"))
    row = next(line for line in table if line.startswith("| dlwp"))
    assert row.startswith("| dlwp\\|train.lr=1e-3 | 0, 1 | +0.0150 [")
    assert row.replace("\\|", "").count("|") == header.count("|")
