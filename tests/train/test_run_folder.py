"""One run per folder: --out never overwrites or continues another run by accident."""

import json

import pytest
import torch

from geounet.train.checkpoint import save_checkpoint
from geounet.train.run_folder import claim_run_folder, clear_run_files

CONFIG = {"task": {"name": "triangle_poisson", "mesh_level": 3}, "model": {"width": 4}, "train": {"steps": 3}}


def _run(folder, config=CONFIG):
    """A run folder as `geounet train` leaves it (checkpoint with the config, metrics, plots)."""
    folder.mkdir()
    save_checkpoint({"step": 3, "w": torch.ones(2), "config": config}, folder / "checkpoint.pt")
    (folder / "metrics.json").write_text(json.dumps({"config": config}))
    for name in ("predictions.png", "predictions_heldout_a.png", "evaluation.json", "notes.txt"):
        (folder / name).write_text("x")
    return folder


def test_new_empty_or_unrelated_folders_are_free(tmp_path):
    claim_run_folder(tmp_path / "new", CONFIG, resume=False, overwrite=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    claim_run_folder(tmp_path / "other", CONFIG, resume=False, overwrite=False)


def test_the_same_run_continues_only_with_resume(tmp_path):
    run = _run(tmp_path / "run")
    with pytest.raises(ValueError, match="holds this run already; pass --resume to continue it, --overwrite"):
        claim_run_folder(run, CONFIG, resume=False, overwrite=False)
    claim_run_folder(run, CONFIG, resume=True, overwrite=False)
    # [train] may change on resume (more steps, another device)
    claim_run_folder(run, {**CONFIG, "train": {"steps": 30}}, resume=True, overwrite=False)


def test_another_run_is_refused_with_the_keys_that_differ(tmp_path):
    run = _run(tmp_path / "run")
    other = {**CONFIG, "model": {"width": 8}, "train": {"steps": 5}}
    with pytest.raises(ValueError, match=r"holds a different run \(model.width: 4 -> 8; train.steps: 3 -> 5\)"):
        claim_run_folder(run, other, resume=False, overwrite=False)
    with pytest.raises(ValueError, match=r"cannot resume .*another config \(model.width: 4 -> 8\); resume with"):
        claim_run_folder(run, other, resume=True, overwrite=False)
    other_task = {**CONFIG, "task": {"name": "navier_stokes_square"}}
    with pytest.raises(ValueError, match=r"task.mesh_level: 3 -> '\(unset\)'; task.name: 'triangle_poisson' -> 'nav"):
        claim_run_folder(run, other_task, resume=True, overwrite=False)


def test_a_folder_with_metrics_only_is_a_run(tmp_path):
    run = _run(tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    with pytest.raises(ValueError, match="holds a different run"):
        claim_run_folder(run, {**CONFIG, "model": {"width": 8}}, resume=False, overwrite=False)
    (run / "metrics.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="is not the metrics.json of a run"):
        claim_run_folder(run, CONFIG, resume=False, overwrite=False)


def test_overwrite_removes_the_old_runs_files_only(tmp_path):
    run = _run(tmp_path / "run")
    claim_run_folder(run, {**CONFIG, "model": {"width": 8}}, resume=False, overwrite=True)
    assert len(list(run.iterdir())) > 1  # the check deletes nothing
    clear_run_files(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_resume_needs_a_checkpoint_and_excludes_overwrite(tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume needs a checkpoint"):
        claim_run_folder(tmp_path, CONFIG, resume=True, overwrite=False)
    with pytest.raises(ValueError, match="not both"):
        claim_run_folder(tmp_path, CONFIG, resume=True, overwrite=True)


def test_a_moved_data_cache_is_the_same_run(tmp_path):
    run = _run(tmp_path / "run", {**CONFIG, "task": {**CONFIG["task"], "cache_dir": "/old/data"}})
    moved = {**CONFIG, "task": {**CONFIG["task"], "cache_dir": "/new/data"}}
    claim_run_folder(run, moved, resume=True, overwrite=False)
    with pytest.raises(ValueError, match="holds this run already"):
        claim_run_folder(run, moved, resume=False, overwrite=False)


def test_a_run_from_before_a_key_existed_is_the_same_run_when_defaults_are_filled_in(tmp_path):
    """A key added to the code since a run was trained, left at its default, is no difference;
    given another value it is one."""
    run = _run(tmp_path / "run")  # CONFIG has no model.depth
    defaults = {"depth": 2}

    def complete(raw):
        return {**raw, "model": {**defaults, **raw["model"]}}

    today = complete(CONFIG)
    with pytest.raises(ValueError, match=r"cannot resume .*model.depth"):
        claim_run_folder(run, today, resume=True, overwrite=False)  # as stored, the key is missing
    claim_run_folder(run, today, resume=True, overwrite=False, complete=complete)
    with pytest.raises(ValueError, match="holds this run already"):
        claim_run_folder(run, today, resume=False, overwrite=False, complete=complete)
    with pytest.raises(ValueError, match=r"cannot resume .*model.depth: 2 -> 3"):
        claim_run_folder(run, {**CONFIG, "model": {"width": 4, "depth": 3}}, resume=True, overwrite=False,
                         complete=complete)


def test_resume_fills_in_todays_defaults_for_a_checkpoint_of_older_code(tmp_path):
    """The runner's resume: a shallow-water checkpoint written before task.constants existed continues."""
    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import run_experiment
    from geounet.train.checkpoint import load_checkpoint

    task = {"name": "shallow_water_healpix", "nside": 4, "nlat": 16, "nlon": 32, "num_train": 2, "num_test": 1,
            "steps": 3, "rollout_steps": 2, "spinup_hours": 1.0, "cache_dir": str(tmp_path / "data"),
            "galewsky_test": False}
    raw = {"task": task, "model": {"width": 4, "num_levels": 2, "channel_mult": [1, 1]},
           "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2}}
    run = tmp_path / "run"
    run_experiment(config_from_dict(raw), run, progress=False)
    state = load_checkpoint(run / "checkpoint.pt")
    del state["config"]["task"]["constants"]  # as the code before the key wrote it
    save_checkpoint(state, run / "checkpoint.pt")
    longer = config_from_dict({**raw, "train": {**raw["train"], "steps": 4}})
    metrics = run_experiment(longer, run, resume=True, progress=False)
    assert metrics["steps"] == 4
