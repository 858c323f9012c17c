"""experiments/compare.py reads a finished run's metrics only when they are for the same config."""

import importlib.util
import json
from pathlib import Path

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
