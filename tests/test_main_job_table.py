"""experiments/face_path/main_job_table.py pairs runs made later in another folder against a row
of a table it wrote before (``--reference-from``), with the same numbers as when both are runs, and
reads a run's thinned copy (``<run>.json``, as stored under experiments/) like its folder."""

import json
from pathlib import Path

import pytest


@pytest.fixture
def table(experiment_script):
    return experiment_script("face_path/main_job_table.py")


def _run(folder: Path, one_step: float, rmse_24h: float, cpu: float) -> None:
    """A finished run's metrics.json with the fields the table reads."""
    folder.mkdir(parents=True)
    test = {"rel_l2_mean": one_step, "lead_hours": [1.0, 24.0], "model_rmse_h": [9.5, rmse_24h],
            "model_acc_vorticity": [0.998, 0.78]}
    (folder / "metrics.json").write_text(json.dumps({
        "test": test, "seconds": {"train_cpu": cpu, "train": 2 * cpu}, "parameters": {"total": 1000}, "steps": 900}))


def _main(module, monkeypatch, *argv: str) -> None:
    monkeypatch.setattr("sys.argv", ["main_job_table.py", *argv])
    module.main()


def test_reference_from_a_stored_table_gives_the_pairs_of_the_runs(table, tmp_path, monkeypatch, capsys):
    first, later = tmp_path / "first", tmp_path / "later"
    for seed, (error, rmse) in enumerate([(0.43, 330.0), (0.44, 318.0), (0.42, 325.0)]):
        _run(first / f"default-seed{seed}", error, rmse, cpu=300.0)
        _run(later / f"face-seed{seed}", error + 0.01 * (seed + 1), rmse + 30.0, cpu=150.0 + seed)
        _run(first / f"face-seed{seed}", error + 0.01 * (seed + 1), rmse + 30.0, cpu=150.0 + seed)
    seeds = ["--seeds", "0", "1", "2"]
    _main(table, monkeypatch, "--runs", str(first), "--models", "default=default", "face=face", *seeds,
          "--out", str(tmp_path / "both_runs"))
    _main(table, monkeypatch, "--runs", str(later), "--reference-from", str(tmp_path / "both_runs.json"), "default",
          "--models", "face=face", *seeds, "--out", str(tmp_path / "later"))
    capsys.readouterr()
    assert (tmp_path / "later.md").read_text() == (tmp_path / "both_runs.md").read_text()
    stored = json.loads((tmp_path / "later.json").read_text())
    assert stored["models"] == {"default": str(tmp_path / "both_runs.json"), "face": "face"}
    assert "+0.0200 [" in (tmp_path / "later.md").read_text()  # one-step: mean of +0.01, +0.02, +0.03
    assert "| 2.00, 1.99, 1.97 |" in (tmp_path / "later.md").read_text()  # CPU ratios 300 / (150 + seed)


def test_reference_from_refuses_a_missing_row_or_seed(table, tmp_path, monkeypatch):
    for seed in (0, 1):
        _run(tmp_path / "runs" / f"default-seed{seed}", 0.43, 330.0, cpu=300.0)
        _run(tmp_path / "runs" / f"face-seed{seed}", 0.44, 340.0, cpu=150.0)
    _main(table, monkeypatch, "--runs", str(tmp_path / "runs"), "--models", "default=default", "--seeds", "0", "1",
          "--out", str(tmp_path / "stored"))
    stored = str(tmp_path / "stored.json")
    with pytest.raises(SystemExit, match="no row 'nest'; its rows: default"):
        _main(table, monkeypatch, "--runs", str(tmp_path / "runs"), "--reference-from", stored, "nest",
              "--models", "face=face", "--seeds", "0", "1", "--out", str(tmp_path / "x"))
    with pytest.raises(SystemExit, match=r"has no seed \[2\]"):
        _main(table, monkeypatch, "--runs", str(tmp_path / "runs"), "--reference-from", stored, "default",
              "--models", "face=face", "--seeds", "0", "1", "2", "--out", str(tmp_path / "x"))


def test_a_thinned_copy_reads_like_the_run_folder_and_a_missing_run_is_named(table, tmp_path, monkeypatch, capsys):
    for seed, error in enumerate([0.43, 0.44]):
        _run(tmp_path / "runs" / f"default-seed{seed}", error, 330.0, cpu=300.0)
        _run(tmp_path / "runs" / f"face-seed{seed}", error + 0.02, 340.0, cpu=150.0)
        stored = tmp_path / "stored" / "runs"
        stored.mkdir(parents=True, exist_ok=True)
        metrics = tmp_path / "runs" / f"face-seed{seed}" / "metrics.json"
        (stored / f"face-seed{seed}.json").write_text(metrics.read_text())
    seeds = ["--seeds", "0", "1"]
    _main(table, monkeypatch, "--runs", str(tmp_path / "runs"), "--models", "default=default", "face=face", *seeds,
          "--out", str(tmp_path / "folders"))
    _main(table, monkeypatch, "--runs", str(tmp_path), "--models", "default=runs/default",
          "face=stored/runs/face", *seeds, "--out", str(tmp_path / "mixed"))
    capsys.readouterr()
    assert (tmp_path / "mixed.md").read_text() == (tmp_path / "folders.md").read_text()
    missing = r"no run .*sfno-seed0: neither .*sfno-seed0/metrics.json nor .*sfno-seed0.json"
    with pytest.raises(SystemExit, match=missing):
        _main(table, monkeypatch, "--runs", str(tmp_path / "runs"), "--models", "sfno=sfno", *seeds,
              "--out", str(tmp_path / "x"))
