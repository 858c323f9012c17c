"""experiments/fit_and_heldout.py: each model's training loss over the last steps and held-out MSE,
paired with the first model's on the shared seeds, from metrics JSONs or run folders."""

import json

import pytest


def _run(path, seed, losses, heldout_mse):
    """A run's metrics as the runner writes them: a loss every step, the held-out MSE."""
    metrics = {"config": {"train": {"seed": seed}}, "steps": len(losses), "test": {"mse": heldout_mse},
               "history": [{"step": step, "loss": loss} for step, loss in enumerate(losses, start=1)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return path


def test_tail_losses_and_paired_differences_from_files_and_folders(experiment_script, tmp_path, capsys,
                                                                   monkeypatch):
    script = experiment_script("fit_and_heldout.py")
    # model A: last-two-step losses 0.2, 0.3, 0.4 on seeds 0-2; model B lower by 0.05 each, worse held out
    a = [_run(tmp_path / f"a{s}.json", s, [9.0, 0.2 + s / 10, 0.2 + s / 10], 0.10) for s in range(3)]
    b = [_run(tmp_path / f"b{s}" / "metrics.json", s, [9.0, 0.15 + s / 10, 0.15 + s / 10], 0.12 + s / 100)
         for s in range(3)]
    monkeypatch.setattr("sys.argv", ["fit_and_heldout.py", "--last", "2", "--model", "A", *map(str, a),
                                     "--model", "B", *(str(path.parent) for path in b)])
    script.main()
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| A | 3 | 0.3000 ± 0.1000 | 0.1000 ± 0.0000 |  |  |")
    # B - A: training loss -0.05 on every seed (interval of zero width), held-out MSE +0.03 on average
    assert rows[3].startswith("| B | 3 | 0.2500 ± 0.1000 | 0.1300 ± 0.0100 | -0.0500 [-0.0500, -0.0500]")
    assert "| +0.0300 [" in rows[3]

    stopped = tmp_path / "c0"  # a run folder without metrics: the run has not finished
    stopped.mkdir()
    (stopped / "checkpoint.pt").write_bytes(b"")
    monkeypatch.setattr("sys.argv", ["fit_and_heldout.py", "--last", "2", "--model", "C", str(stopped)])
    with pytest.raises(SystemExit, match="c0/metrics.json does not exist"):
        script.main()
