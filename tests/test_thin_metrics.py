"""experiments/thin_metrics.py: the stored copy of a run keeps every evaluation and every N-th
loss row, and names its data files relative to the repository root, not by a machine's folders."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_thinned_keeps_every_evaluation_and_every_nth_loss(experiment_script):
    history = [{"step": s, "loss": 1.0 / s} | ({"test_rel_l2_mean": 0.5} if s % 7 == 0 else {}) for s in range(1, 31)]
    kept = experiment_script("thin_metrics.py").thinned({"history": history, "test": {"rel_l2_mean": 0.4}}, every=10)
    assert [row["step"] for row in kept["history"]] == [7, 10, 14, 20, 21, 28, 30]
    assert kept["test"] == {"rel_l2_mean": 0.4}


def test_the_copy_names_data_files_relative_to_the_working_directory(tmp_path):
    run = tmp_path / "runs" / "sfno-seed0"
    run.mkdir(parents=True)
    data = tmp_path / "data" / "sw_era5_like.nc"
    config = {"task": {"data": str(data), "cache_dir": str(tmp_path / "data"), "variables": ["z500"],
                       "elsewhere": "/opt/shared/era5.zarr", "url": "s3://bucket/era5.zarr"}}
    (run / "metrics.json").write_text(json.dumps({"config": config, "history": [{"step": 1, "loss": 1.0}]}))
    subprocess.run([sys.executable, str(ROOT / "experiments" / "thin_metrics.py"), "--every", "1", "--out", "stored",
                    str(run)], cwd=tmp_path, check=True, capture_output=True)
    task = json.loads((tmp_path / "stored" / "sfno-seed0.json").read_text())["config"]["task"]
    assert task == {"data": "data/sw_era5_like.nc", "cache_dir": "data", "variables": ["z500"],
                    "elsewhere": "/opt/shared/era5.zarr", "url": "s3://bucket/era5.zarr"}
