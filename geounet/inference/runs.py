"""Load a trained run: its config, checkpoint, task and model, ready to predict."""

from __future__ import annotations

from pathlib import Path

from geounet.errors import GeounetError


def load_run(run_dir: Path, device: str | None, task_overrides: list[str] = ()):
    """``(cfg, checkpoint state, prepared task, model, device)`` of a run directory: the model
    rebuilt from the checkpoint's config (with ``task.key=value`` overrides), with its
    weights, in eval mode on ``device`` (default: the run's ``train.device``).

    An override may not change a key the checkpoint fixes (the task's ``FIXED`` keys: the
    variables and their order, the grid, ...): the weights and the normalisation inside the
    model belong to the trained values, so evaluating under others would relabel channels."""

    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model
    from geounet.tasks import prepare_task, task_config_class
    from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config
    from geounet.train.config import parse_override
    from geounet.train.device import usable_device

    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    raw = run_config(state, path)
    for override in task_overrides:
        (section, key), value = parse_override(override)
        if section != "task":
            raise GeounetError(f"evaluate --set changes [task] only (the model is the checkpoint's), got {override!r}")
        fixed, trained = getattr(task_config_class(raw["task"]["name"]), "FIXED", ()), raw["task"].get(key)
        if key in fixed and value != trained:
            raise GeounetError(f"evaluate --set {override!r}: the checkpoint fixes task.{key} = {trained!r} (the "
                               "model's channels, their order, normalisation and grid were trained on it); train a "
                               f"run with task.{key} = {value!r} to evaluate that")
        raw = {**raw, "task": {**raw["task"], key: value}}
    cfg = config_from_dict(raw)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    model = build_model(cfg, task.structure)
    load_model_state(model, state["model"], path)
    device = usable_device(device or cfg.train.device, "--device" if device else "the run's train.device")
    model.to(device).eval()
    return cfg, state, task, model, device
