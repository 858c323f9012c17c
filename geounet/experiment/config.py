"""Experiment configuration: TOML files with dotted command-line overrides.

A config has three sections: ``[task]`` (``name`` plus the task's own parameters),
``[model]`` and ``[train]``. Every key is checked: unknown keys, wrong types and bad
values are rejected with a message naming the key, never ignored.

Settings that a task config lists in ``PATHS`` (e.g. the forecast task's ``data`` and
``cache_dir``, the mesh-files task's ``folder``) are stored as absolute paths: a relative path in a config file resolves
against the file's folder, one in an override (or a default) against the working
directory, so a run does not depend on where it is started from.

    cfg = load_config("experiments/square_navier_stokes/config.toml",
                      overrides=["train.steps=200", "model.variant='residual'"])
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.tasks import task_config_class
from geounet.train.config import ConfigError, ModelConfig, TrainConfig, build_dataclass, parse_override

#: the task of a config without ``task.name``
DEFAULT_TASK = "navier_stokes_square"


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
    """Read a TOML config (or start from the defaults) and apply ``section.key=value`` overrides;
    the task's path settings are made absolute (see the module docstring)."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from error
        if isinstance(raw.get("task"), dict):
            raw["task"] = absolute_paths(raw["task"], path.resolve().parent)
    return _with_overrides(raw, overrides)


def load_run_config(stored: dict[str, Any], overrides: list[str] = ()) -> ExperimentConfig:
    """A run's stored config (:func:`~geounet.train.run_folder.stored_config`) with
    ``section.key=value`` overrides, e.g. ``train.steps`` to continue it to a larger budget."""
    raw = {section: dict(values) for section, values in stored.items()}
    return _with_overrides(raw, overrides)


def _with_overrides(raw: dict[str, Any], overrides: list[str]) -> ExperimentConfig:
    for override in overrides:
        (section, key), value = parse_override(override)
        raw.setdefault(section, {})[key] = value
    if isinstance(raw.get("task"), dict):
        raw["task"] = absolute_paths(raw["task"], Path.cwd(), defaults=True)
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> ExperimentConfig:
    """The inverse of :meth:`ExperimentConfig.to_dict`, with the same checks as a file."""
    unknown = sorted(set(raw) - {"task", "model", "train"})
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; a config has [task], [model] and [train]")
    task_values = dict(raw.get("task", {}))
    task_name = task_values.pop("name", DEFAULT_TASK)
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


def absolute_paths(task: dict[str, Any], base: Path, *, defaults: bool = False) -> dict[str, Any]:
    """``task`` with the relative paths among its task's ``PATHS`` settings (with ``defaults``,
    the default values of those not set too) resolved against ``base``; URLs (``s3://...``) and
    absolute paths stay as they are."""
    config_class = task_config_class(task.get("name", DEFAULT_TASK))
    default_values = {f.name: f.default for f in dataclasses.fields(config_class)} if defaults else {}
    resolved = dict(task)
    for key in getattr(config_class, "PATHS", ()):
        value = task.get(key, default_values.get(key))
        if isinstance(value, str) and value and "://" not in value:
            resolved[key] = os.path.normpath(base / Path(value).expanduser())
    return resolved
