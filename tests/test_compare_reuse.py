"""experiments/compare.py reads a finished run's metrics only when they are for the same config,
prints paired differences against the model asked for, keeps a model spec's ``|`` out of the
Markdown tables' cell separators, tabulates the rollout scores a forecasting task recorded, and
continues a stopped run with --resume."""

import argparse
import json
import shlex
from pathlib import Path

import pytest

from geounet.experiment.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def compare(experiment_script):
    return experiment_script("compare.py")


def _finished_run(folder: Path, config: dict, steps: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"config": config, "steps": steps, "test": {"rel_l2_mean": 0.1}}))
    return folder


def test_a_run_from_before_a_key_was_added_is_still_the_same_run(compare, tmp_path):
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


def test_paired_differences_against_another_model(compare, tmp_path, capsys, monkeypatch):
    """``--paired RESULTS --against MODEL``: every other model minus MODEL on the shared seeds; an
    unknown model is refused naming the models there."""
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


def test_a_spec_with_overrides_is_named_by_its_label_and_overrides_in_one_cell(compare, tmp_path, capsys,
                                                                               monkeypatch):
    """``dlwp|train.lr=1e-3`` names a model with an override: its row reads "<DLWP's label>,
    train.lr=1e-3" and has as many cells as the header; a ``|`` of an unknown name is escaped."""
    rows = {"dlwp": [0.68, 0.70], "dlwp|train.lr=1e-3": [0.70, 0.71]}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"command": "compare.py --seeds 0 1",
                                   "rows": {m: {"rel_l2_per_seed": v} for m, v in rows.items()}}))
    monkeypatch.setattr("sys.argv", ["compare.py", "--paired", str(results), "--against", "dlwp"])
    compare.main()
    table = capsys.readouterr().out.splitlines()
    header = next(line for line in table if line.startswith("| model |"))
    row = next(line for line in table if line.startswith("| DLWP"))
    assert row.startswith("| DLWP-HEALPix U-Net (physicsnemo), train.lr=1e-3 | 0, 1 | +0.0150 [")
    assert row.count("|") == header.count("|")
    assert compare.table_label("a|b") == "a, b" and compare.table_label("x") == "x"
    monkeypatch.setitem(compare.LABELS, "odd", "odd | name")
    assert compare.table_label("odd") == "odd \\| name"


def test_the_reproduce_command_gives_the_shell_the_specs_and_settings_as_they_were(compare):
    """A spec's ``|`` and ``[1]`` are quoted in the table's command, so a shell passes them on intact."""
    models = ["unet:multiresnet", "unet:residual|model.width=32|model.channel_mult=[1]"]
    args = argparse.Namespace(config="c.toml", results="out", models=models, seeds=[0, 1],
                              overrides=["task.hierarchy='spectral'", "task.band_limits=[8,32,64]"], reference=[])
    # tokenised as a shell does: an unquoted | or ; would end the word (and the command)
    lexer = shlex.shlex(compare.reproduce_command(args, []), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    assert words[words.index("--models") + 1:words.index("--seeds")] == models
    assert [words[i + 1] for i, word in enumerate(words) if word == "--set"] == args.overrides


def _forecast_run(rmse_z500: list[float], acc_vo: list[float]) -> dict:
    """The metrics of a finished run of the ``forecast`` task, as far as the table reads them."""
    test = {"rel_l2_mean": 0.2, "lead_hours": [6.0, 12.0], "model_rmse_z500": rmse_z500, "model_acc_vo": acc_vo,
            "persistence_rmse_z500": [1480.0, 2712.0], "persistence_acc_vo": [0.79, 0.33]}
    return {"test": test, "history": [], "parameters": {"encoder": 0, "total": 62920},
            "seconds": {"train": 20.0}}


def test_a_forecasting_table_shows_the_chosen_scores_at_the_last_lead(compare, monkeypatch, capsys):
    """``--lead-scores rmse_z500 acc_vo``: one column each, the last lead's mean ± std over the seeds
    and a persistence row; a score the runs did not record is refused naming the recorded ones."""
    row = compare.summarise([_forecast_run([480.0, 1000.0], [0.99, 0.90]),
                             _forecast_run([500.0, 1040.0], [0.98, 0.88])], [0, 1])
    lines = compare.table({"unet:multiresnet": row}, ["rmse_z500", "acc_vo"])
    assert lines[0].endswith("| rmse z500, last lead | acc vo, last lead |")
    assert lines[2].endswith("| 1020 ± 28.28 | 0.89 ± 0.01414 |")  # std of (1000, 1040) = 28.28
    assert lines[3].startswith("| Persistence") and lines[3].endswith("| 2712 | 0.33 |")
    assert all(line.count("|") == lines[0].count("|") for line in lines)

    parser = argparse.ArgumentParser(prog="compare.py")
    compare.check_lead_scores(["rmse_z500"], row, parser)
    with pytest.raises(SystemExit):
        compare.check_lead_scores(["rmse_h", "acc_vo"], row, parser)
    assert "--lead-scores rmse_h: not recorded by these runs; they have acc_vo, rmse_z500" in capsys.readouterr().err


def _stopped_run(compare, cfg, folder: Path, optimiser_stops_at, stop_at_step: int) -> None:
    """A run of ``cfg`` killed while taking step ``stop_at_step`` (its last checkpoint before it, no metrics)."""
    with optimiser_stops_at(stop_at_step), pytest.raises(optimiser_stops_at.StoppedRun):
        compare.run_or_reuse(cfg, folder, reuse=False)
    assert (folder / "checkpoint.pt").is_file() and not (folder / "metrics.json").exists()


def test_resume_continues_a_stopped_run_to_the_uninterrupted_numbers(compare, tmp_path, optimiser_stops_at):
    """``--resume``: a run stopped after its step-2 checkpoint continues to the losses and test error of
    a run that was never stopped; without --resume the folder is refused, and a stopped run of
    another [train] config is not continued under this one."""
    from geounet.errors import GeounetError
    from geounet.experiment.config import config_from_dict

    raw = {"task": {"name": "triangle_poisson", "mesh_level": 3, "band_limits": [4, 8], "num_train": 8,
                    "num_test": 4, "cache_dir": str(tmp_path / "data")},
           "model": {"width": 4, "num_levels": 3, "channel_mult": [1]},
           "train": {"steps": 4, "batch_size": 4, "warmup_steps": 1, "eval_every": 4, "checkpoint_every": 2}}
    cfg = config_from_dict(raw)
    full = compare.run_or_reuse(cfg, tmp_path / "full", reuse=False)

    _stopped_run(compare, cfg, tmp_path / "stopped", optimiser_stops_at, stop_at_step=3)
    with pytest.raises(GeounetError, match="pass --resume to continue it"):
        compare.run_or_reuse(cfg, tmp_path / "stopped", reuse=False)
    resumed = compare.run_or_reuse(cfg, tmp_path / "stopped", reuse=False, resume=True)
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in full["history"]]
    assert resumed["test"] == full["test"]
    # finished now: --resume reads it like --reuse
    assert compare.run_or_reuse(cfg, tmp_path / "stopped", reuse=False, resume=True)["test"] == full["test"]

    faster = config_from_dict({**raw, "train": {**raw["train"], "lr": 2 * cfg.train.lr}})
    _stopped_run(compare, faster, tmp_path / "other", optimiser_stops_at, stop_at_step=3)
    with pytest.raises(GeounetError, match="holds a different run .*train.lr"):
        compare.run_or_reuse(cfg, tmp_path / "other", reuse=False, resume=True)
