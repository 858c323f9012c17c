"""The ``geounet`` command: every subcommand's help, ``plot`` on a real tiny run, ``bench``."""

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from geounet import configs
from geounet.cli import main
from geounet.errors import GeounetError
from geounet.experiment.diffusion import read_config
from geounet.plot.curves import read_curves
from geounet.tasks import task_names

REPO = Path(__file__).resolve().parents[1]
#: a triangle-Poisson run that trains in a few seconds
TINY_TRIANGLE = [
    "task.mesh_level=3",
    "task.band_limits=[4, 16]",
    "task.num_train=8",
    "task.num_test=4",
    "model.num_levels=3",
    "model.width=4",
    "model.channel_mult=[1, 2, 2]",
    "train.steps=3",
    "train.batch_size=4",
    "train.warmup_steps=1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory written by a real (tiny) ``geounet train``."""
    root = tmp_path_factory.mktemp("cli")
    overrides = [*TINY_TRIANGLE, f"task.cache_dir='{root / 'data'}'"]
    args = ["train", "--config", "triangle_poisson", "--quiet"]
    args += ["--out", str(root / "run"), *(arg for o in overrides for arg in ("--set", o))]
    assert main(args) == 0
    return root / "run"


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ([], ["info", "datagen", "train", "evaluate", "plot", "forecast", "predict", "analyse", "diffuse", "sample"]),
        (["predict"], ["run_dir", "--mesh", "--out", "--overwrite", "mesh_files", ".vtu"]),
        (["info"], ["--config", "--set"]),
        (["datagen"], ["--config", "--set"]),
        (["train"], ["--config", "--set", "--out", "--resume", "--overwrite", "--quiet", "--json", "triangle_poisson"]),
        (["evaluate"], ["run_dir", "--device", "--plot"]),
        (["plot"], ["RUN_DIR", "--out", "--predictions", "--device", "results.json"]),
    ],
)
def test_help_of_every_command_names_its_options(command, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    printed = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option in options:
        assert option in printed


def test_plot_redraws_the_curves_of_a_trained_run(run_dir, tmp_path, capsys, assert_drawn_png):
    out = tmp_path / "figures" / "curves.png"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    assert_drawn_png(out)
    printed = capsys.readouterr().out
    assert "training loss" in printed and "test relative L2" in printed and "rollout" not in printed
    # without --out the figure goes into the run directory
    assert main(["plot", str(run_dir)]) == 0
    assert_drawn_png(run_dir / "curves.png")


def test_plot_predictions_redraws_from_the_checkpoint(run_dir, tmp_path, assert_drawn_png):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "predictions.png").unlink()
    assert main(["plot", str(copy), "--predictions", "--out", str(tmp_path / "c.png")]) == 0
    assert_drawn_png(copy / "predictions.png")


def test_overlaid_runs_are_labelled_by_model_and_seed(run_dir, tmp_path):
    assert list(read_curves([run_dir]).histories) == ["multiresnet seed 0"]
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["config"]["model"]["architecture"] = "cheb_unet"
    metrics["config"]["train"]["seed"] = 3
    (other / "metrics.json").write_text(json.dumps(metrics))
    assert list(read_curves([run_dir, other]).histories) == ["multiresnet seed 0", "cheb_unet seed 3"]
    # the same model and seed twice: the directory names tell them apart
    twin = tmp_path / "twin"
    shutil.copytree(run_dir, twin)
    curves = read_curves([run_dir, twin])
    assert list(curves.histories) == ["run: multiresnet seed 0", "twin: multiresnet seed 0"]
    assert curves.histories["twin: multiresnet seed 0"] == metrics["history"]


def _forecast_run(directory: Path, seed: int, persistence: list[float]) -> Path:
    """A run directory of a forecasting task, as ``geounet train`` writes it (no checkpoint)."""
    directory.mkdir()
    leads = [6.0, 12.0, 18.0]
    test = {
        "rel_l2_mean": 0.5,
        "rel_l2_std": 0.1,
        "lead_hours": leads,
        "model_rmse_h": [1.0, 2.0, 3.0 + seed],
        "persistence_rmse_h": persistence,
        "galewsky_model_rmse_h": [2.0, 3.0, 4.0],
        "galewsky_persistence_rmse_h": [3.0, 5.0, 7.0],
    }
    history = [{"step": 1, "loss": 1.0, "lr": 1e-3}, {"step": 2, "loss": 0.5, "lr": 1e-3, "test_rel_l2_mean": 0.5}]
    config = {"model": {"architecture": "unet", "variant": "residual"}, "train": {"seed": seed}}
    (directory / "metrics.json").write_text(json.dumps({"config": config, "test": test, "history": history}))
    return directory


def test_rollout_curves_of_forecasting_runs(tmp_path, capsys, assert_drawn_png):
    a = _forecast_run(tmp_path / "a", 0, [2.0, 4.0, 6.0])
    b = _forecast_run(tmp_path / "b", 1, [2.0, 4.0, 6.0])
    curves = read_curves([a, b])
    assert list(curves.rollouts) == ["rmse_h", "galewsky_rmse_h"]
    assert curves.rollouts["rmse_h"] == {
        "residual seed 0": ([6.0, 12.0, 18.0], [1.0, 2.0, 3.0]),
        "residual seed 1": ([6.0, 12.0, 18.0], [1.0, 2.0, 4.0]),
        "Persistence": ([6.0, 12.0, 18.0], [2.0, 4.0, 6.0]),  # the same test data: drawn once
    }
    # other test data, another persistence curve: one per run, after the models
    c = _forecast_run(tmp_path / "c", 2, [9.0, 9.0, 9.0])
    assert list(read_curves([a, c]).rollouts["rmse_h"]) == [
        "residual seed 0",
        "residual seed 2",
        "Persistence",
        "Persistence (residual seed 2)",
    ]
    out = tmp_path / "rollout.png"
    assert main(["plot", str(a), str(b), "--out", str(out)]) == 0
    assert_drawn_png(out)
    assert "rollout rmse_h; rollout galewsky_rmse_h" in capsys.readouterr().out


def test_plot_reads_compare_results(tmp_path, capsys, assert_drawn_png):
    results = tmp_path / "compare"
    results.mkdir()
    row = {
        "rel_l2_mean": 0.3,
        "rel_l2_std": 0.02,
        "rel_l2_per_seed": [0.28, 0.3, 0.32],
        "lead_hours": [6.0, 12.0],
        "model_rmse_h_final": [5.0, 0.5],  # (mean, std) at the last lead: not a curve
        "model_rmse_h_curve": [1.0, 5.0],
        "persistence_rmse_h_curve": [2.0, 7.0],
    }
    rows = {"unet:residual": row, "cheb_unet": {**row, "rel_l2_mean": 0.4}}
    (results / "results.json").write_text(json.dumps({"command": "python experiments/compare.py", "rows": rows}))
    curves = read_curves([results])
    assert curves.histories == {}
    assert curves.finals == {"residual (3 seeds)": (0.3, 0.02), "cheb_unet (3 seeds)": (0.4, 0.02)}
    assert curves.rollouts == {
        "rmse_h": {
            "residual (3 seeds)": ([6.0, 12.0], [1.0, 5.0]),
            "cheb_unet (3 seeds)": ([6.0, 12.0], [1.0, 5.0]),
            "Persistence": ([6.0, 12.0], [2.0, 7.0]),
        }
    }
    assert main(["plot", str(results), "--out", str(tmp_path / "c.png")]) == 0
    assert_drawn_png(tmp_path / "c.png")
    assert "mean ± std over seeds" in capsys.readouterr().out


def test_plot_errors_name_the_problem(run_dir, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["plot", str(empty)]) == 2
    assert f"{empty} has no metrics.json; pass a directory written by `geounet train`" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing")]) == 2
    assert "missing is not a directory" in capsys.readouterr().err
    (empty / "metrics.json").write_text('{"history": [')
    assert main(["plot", str(empty)]) == 2
    assert "metrics.json is not valid JSON" in capsys.readouterr().err
    (empty / "metrics.json").write_text("{}")
    assert main(["plot", str(empty)]) == 2
    assert "lacks ['history', 'test', 'config']" in capsys.readouterr().err
    # --predictions needs the checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoint.pt").unlink()
    assert main(["plot", str(copy), "--predictions", "--out", str(tmp_path / "c.png")]) == 2
    assert "checkpoint.pt does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse: RUN_DIR is required
        main(["plot"])
    assert exit_.value.code == 2


def test_resume_without_config_continues_a_run_under_its_own_config(tmp_path, monkeypatch, capsys):
    """``train --out RUN --resume --set train.steps=N`` without ``--config``, from another
    directory, continues RUN to a larger budget under its stored config: at a constant rate the
    continued run is the longer run (same losses), and its first steps are the short run's."""
    overrides = [*TINY_TRIANGLE, "train.min_lr_ratio=1.0", f"task.cache_dir='{tmp_path / 'data'}'"]
    sets = [arg for o in overrides for arg in ("--set", o)]
    train = ["train", "--config", "triangle_poisson", "--quiet", *sets]
    assert main([*train, "--out", str(tmp_path / "short")]) == 0
    assert main([*train, "--out", str(tmp_path / "long"), "--set", "train.steps=6"]) == 0
    shutil.copytree(tmp_path / "short", tmp_path / "extended")
    monkeypatch.chdir(tmp_path / "short")  # neither the config nor the data are relative to here
    assert main(["train", "--out", str(tmp_path / "extended"), "--resume", "--set", "train.steps=6", "--quiet"]) == 0

    def losses(run):
        return [row["loss"] for row in json.loads((tmp_path / run / "metrics.json").read_text())["history"]]

    assert len(losses("extended")) == 6 and losses("extended")[:3] == losses("short")
    assert losses("extended") == losses("long")
    capsys.readouterr()
    assert main(["train", "--resume"]) == 2
    assert "name the run folder with --out" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(tmp_path / "empty")]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_evaluate_under_a_changed_task(run_dir, capsys):
    """``evaluate --set task.k=v`` evaluates the checkpoint on another task setting (here a
    different test draw) into its own file; other sections are refused."""
    assert main(["evaluate", str(run_dir), "--set", "task.seed=7"]) == 0
    changed = json.loads((run_dir / "evaluation-seed-7.json").read_text())
    assert changed["overrides"] == ["task.seed=7"]
    assert main(["evaluate", str(run_dir)]) == 0
    original = json.loads((run_dir / "evaluation.json").read_text())
    assert changed["test"]["rel_l2_mean"] != original["test"]["rel_l2_mean"]
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--set", "model.width=8"]) == 2
    assert "changes [task] only" in capsys.readouterr().err


def test_default_config_does_not_depend_on_the_working_directory(tmp_path, monkeypatch, capsys):
    """Without --config every command uses the packaged main job; --config also takes a
    packaged config's name; experiments/*/config.toml (and experiments/*/*/config.toml, two tasks of one
    experiment) are those same files, except diffusion
    experiments (a [diffusion] table), which must be valid `geounet diffuse` configs."""
    monkeypatch.chdir(tmp_path)  # no experiments/ here
    assert main(["info", "--set", "model.width=4"]) == 0
    assert "task      shallow_water_healpix" in capsys.readouterr().out
    assert main(["info", "--config", "triangle_poisson", "--set", "model.width=4"]) == 0
    assert "task      triangle_poisson" in capsys.readouterr().out
    assert main(["info", "--config", "no_such_config"]) == 2
    assert capsys.readouterr().err == (
        "geounet info: error: config file no_such_config does not exist, and it is not a packaged config "
        f"({', '.join(configs.names())})\n"
    )
    linked = [*(REPO / "experiments").glob("*/config.toml"), *(REPO / "experiments").glob("*/*/config.toml")]
    experiments = {path: tomllib.loads(path.read_text()) for path in linked}
    tasks = [path for path, raw in experiments.items() if "diffusion" not in raw]
    assert len(tasks) == len(configs.names()) == 9
    for path in tasks:
        assert path.resolve().parent == Path(configs.__file__).parent
    diffusion = [path for path in experiments if path not in tasks]
    assert {path.parent.name for path in diffusion} >= {"diffusion_sphere", "diffusion_triangle"}
    for path in diffusion:
        assert not path.is_symlink()
        cfg, table = read_config(experiments[path])  # every [task], [model] and [diffusion] key checked
        assert table["steps"] == experiments[path]["diffusion"]["steps"] and cfg.task.name in task_names()


def test_user_errors_print_one_line_and_defects_keep_their_traceback(monkeypatch, capsys):
    """A GeounetError (or an OS error naming a path) is the user's to fix: one line, status 2.
    Any other exception is a defect in geounet: it must reach the user with its traceback."""
    import argparse

    import geounet.cli.command as cli

    def command_raising(error):
        def run(args):
            raise error

        parser = argparse.ArgumentParser()
        parser.set_defaults(command="info", run=run)
        return lambda: parser

    for error in (GeounetError("task.nside must be a power of two;\n  got 3"),
                  FileNotFoundError(2, "No such file or directory", "missing.nc")):
        monkeypatch.setattr(cli, "build_parser", command_raising(error))
        assert main([]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("geounet info: error: ")
    for defect in (ValueError("shapes [3, 4] and [5, 6] cannot be multiplied"), KeyError("level"),
                   FileNotFoundError("no filename attached")):
        monkeypatch.setattr(cli, "build_parser", command_raising(defect))
        with pytest.raises(type(defect)):
            main([])
