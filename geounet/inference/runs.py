"""Load a trained run: its config, checkpoint, task and model, ready to predict."""

from __future__ import annotations

from pathlib import Path

from geounet.errors import GeounetError


def load_run(run_dir: Path, device: str | None, task_overrides: list[str] = ()):
    """``(cfg, checkpoint state, prepared task, model, device)`` of a run directory: the model
    rebuilt from the checkpoint's config (with ``task.key=value`` overrides), with its
    weights, in eval mode on ``device`` (default: the run's ``train.device``)."""
    import torch

    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model
    from geounet.tasks import prepare_task
    from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config
    from geounet.train.config import parse_override

    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    raw = run_config(state, path)
    for override in task_overrides:
        (section, key), value = parse_override(override)
        if section != "task":
            raise GeounetError(f"evaluate --set changes [task] only (the model is the checkpoint's), got {override!r}")
        raw = {**raw, "task": {**raw["task"], key: value}}
    cfg = config_from_dict(raw)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, task.structure)
    load_model_state(model, state["model"], path)
    device = torch.device(device or cfg.train.device)
    model.to(device).eval()
    return cfg, state, task, model, device
