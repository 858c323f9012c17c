"""experiments/shallow_water_healpix/summarise.py tabulates run folders made by separate
compare.py calls: one row per model over the seeds found, the rollout scores at the last lead,
and the Galewsky table from the runs that have its scores."""

import json
from pathlib import Path

import pytest


def _run(folder: Path, seed: int, error: float, rmse_h: list[float], galewsky: bool) -> None:
    folder.mkdir(parents=True)
    test = {"rel_l2_mean": error, "lead_hours": [1.0, 2.0], "model_rmse_h": rmse_h, "model_acc_vorticity": [0.9, 0.8],
            "persistence_rmse_h": [30.0, 50.0], "persistence_acc_vorticity": [0.5, 0.2]}
    if galewsky:
        test |= {f"galewsky_{who}_{score}": [value, value + 1.0]
                 for who, value in (("model", 10.0), ("persistence", 40.0))
                 for score in ("rmse_h", "rmse_vorticity", "acc_vorticity")}
    config = {"train": {"seed": seed}, "task": {"name": "shallow_water_healpix"}, "model": {}}
    history = [{"step": step, "loss": 1.0 / step, "test_rel_l2_mean": error * (1 + 1 / step)} for step in range(1, 5)]
    (folder / "metrics.json").write_text(json.dumps({
        "config": config, "test": test, "history": history, "parameters": {"encoder": 0, "total": 1000},
        "seconds": {"train": 10.0}}))


def test_runs_of_separate_calls_make_one_table(experiment_script, tmp_path, monkeypatch):
    summarise = experiment_script("shallow_water_healpix/summarise.py")
    runs = tmp_path / "runs"
    _run(runs / "unet-multiresnet-seed0", 0, 0.30, [10.0, 20.0], galewsky=True)
    _run(runs / "unet-multiresnet-seed1", 1, 0.34, [12.0, 24.0], galewsky=True)
    _run(runs / "sfno-seed0", 0, 0.28, [9.0, 18.0], galewsky=False)
    out = tmp_path / "summary.md"
    monkeypatch.setattr("sys.argv", ["summarise.py", *(str(p) for p in sorted(runs.iterdir())), "--out", str(out),
                                     "--leads", "1"])
    summarise.main()
    lines = out.read_text().splitlines()
    multiresnet = next(line for line in lines if line.startswith("| Multi-ResNet") and "0.3200 ± 0.0283" in line)
    assert "| 0, 1 |" in multiresnet and "| 22 ± 2.828 | 0.8 ± 0 |" in multiresnet  # last lead: 20 and 24
    assert any(line.startswith("| SFNO") and "| 0 |" in line for line in lines)
    assert any(line.startswith("| Persistence (x(t+k) = x(t))") and line.endswith("| 50 | 0.2 |") for line in lines)
    galewsky = [line for line in lines if line.startswith("| Multi-ResNet") and "| 2 |" in line]
    # lead 1 h: RMSE h 10 m, RMSE ζ 10 s⁻¹ shown in 1e-6 s⁻¹, ACC 10 (the scores are made up)
    assert galewsky == ["| Multi-ResNet (no params added in dec.) | 2 | 10.0 ± 0.0 | 10000000.00 ± 0.00 | "
                        "10.000 ± 0.000 |"]


def test_a_folder_that_is_not_a_finished_run_is_refused(experiment_script, tmp_path, monkeypatch):
    summarise = experiment_script("shallow_water_healpix/summarise.py")
    (tmp_path / "unet-multiresnet-seed0").mkdir()
    monkeypatch.setattr("sys.argv", ["summarise.py", "--out", str(tmp_path / "s.md"),
                                     str(tmp_path / "unet-multiresnet-seed0")])
    with pytest.raises(ValueError, match="is not a finished compare.py run"):
        summarise.main()
