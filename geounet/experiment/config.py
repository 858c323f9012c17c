"""Experiment configuration: TOML files with dotted command-line overrides.

A config has three sections: ``[task]`` (``name`` plus the task's own parameters),
``[model]`` and ``[train]``. Every key is checked: unknown keys, wrong types and bad
values are rejected with a message naming the key, never ignored.

    cfg = load_config("experiments/square_navier_stokes/config.toml",
                      overrides=["train.steps=200", "model.variant='residual'"])
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.tasks import task_config_class
from geounet.train.config import ConfigError, ModelConfig, TrainConfig, build_dataclass, parse_override


@dataclass
class ExperimentConfig:
    task: Any  # the task's own config dataclass (geounet.tasks)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": {"name": self.task.name, **dataclasses.asdict(self.task)},
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
        }


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read a TOML config (or start from the defaults) and apply ``section.key=value`` overrides.

    Task keys that hold paths (the task config's ``path_keys``, e.g. ``task.folder``) are made
    absolute: against the config file's folder when the file sets them, against the working
    directory when an override does; the run then records where its data were.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from error
        _resolve_paths(raw, path.parent)
    overridden = set()
    for override in overrides:
        (section, key), value = parse_override(override)
        raw.setdefault(section, {})[key] = value
        if section == "task":
            overridden.add(key)
    _resolve_paths(raw, Path.cwd(), overridden)
    return config_from_dict(raw)


def _resolve_paths(raw: dict[str, Any], base: Path, keys: set[str] | None = None) -> None:
    """Make the task's path keys in ``raw`` (those of ``keys`` only, when given) absolute against ``base``."""
    task = raw.get("task", {})
    if not isinstance(task.get("name"), str):
        return
    for key in getattr(task_config_class(task["name"]), "path_keys", ()):
        if (keys is None or key in keys) and isinstance(task.get(key), str) and task[key]:
            task[key] = str((base / task[key]).resolve())


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """The inverse of :meth:`ExperimentConfig.to_dict`, with the same checks as a file."""
    unknown = sorted(set(raw) - {"task", "model", "train"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; a config has [task], [model] and [train]")
    task_values = dict(raw.get("task", {}))
    task_name = task_values.pop("name", "navier_stokes_square")
    return ExperimentConfig(
        task=build_dataclass(task_config_class(task_name), task_values, "task"),
        model=build_dataclass(ModelConfig, raw.get("model", {}), "model"),
        train=build_dataclass(TrainConfig, raw.get("train", {}), "train"),
    )


def model_overrides(spec: str) -> list[str]:
    """Config overrides that select the model ``spec``: ``"unet:<variant>"`` (a U-Net variant)
    or a baseline architecture name (``"sfno"``, ``"cheb_unet"``, ...); a spec may carry extra
    overrides after ``|``, e.g. ``"unet:multiresnet|task.train_rollout=2"``."""
    model, *extra = spec.split("|")
    if model.startswith("unet:"):
        return ["model.architecture='unet'", f"model.variant='{model.split(':', 1)[1]}'", *extra]
    return [f"model.architecture='{model}'", *extra]
