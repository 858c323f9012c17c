"""Curves read back from the directories experiments write, for ``geounet plot``.

A run directory of ``geounet train`` holds ``metrics.json`` with

- ``history``: one row per step, ``{step, loss, lr}`` plus ``test_rel_l2_mean``, ... every
  ``train.eval_every`` steps;
- ``test``: the final test metrics; forecasting tasks add ``lead_hours`` ``[K]`` and, per
  score, ``model_<score>`` and ``persistence_<score>`` ``[K]`` (the error of the model's
  rollout and of persistence x(t + k) = x(t) at each lead time);
- ``config``: the experiment's config (``model.architecture``, ``model.variant``,
  ``train.seed`` name the run in legends).

A results directory of ``experiments/compare.py`` holds ``results.json`` with, per model,
the test relative L2 error over seeds (``rel_l2_mean``, ``rel_l2_std``) and seed-averaged
rollout curves ``model_<score>_curve`` / ``persistence_<score>_curve`` over ``lead_hours``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geounet.errors import GeounetError, MissingFileError

#: ``{label: (lead_hours, errors)}`` for one rollout score
RolloutCurves = dict[str, tuple[list[float], list[float]]]


@dataclass
class Curves:
    """What ``geounet plot`` draws, keyed by legend label."""

    #: run label -> its ``history`` rows (from run directories)
    histories: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    #: model label -> (mean, std) over seeds of the test relative L2 (from compare results)
    finals: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: rollout score (e.g. ``rmse_h``) -> model curves, then the persistence curve(s) dashed
    rollouts: dict[str, RolloutCurves] = field(default_factory=dict)


@dataclass
class _Entry:
    """One run, or one model of a compare results file."""

    directory: Path
    label: str
    history: list[dict[str, float]] | None = None
    final: tuple[float, float] | None = None
    #: score -> (lead_hours, model errors, persistence errors)
    rollout: dict[str, tuple[list[float], list[float], list[float]]] = field(default_factory=dict)


def model_name(architecture: str, variant: str) -> str:
    """The U-Net's variant for ``architecture == "unet"``, else the baseline's name."""
    return variant if architecture == "unet" else architecture


def read_curves(directories: Sequence[str | Path]) -> Curves:
    """The curves of run directories and/or compare results directories, overlaid.

    Labels that would collide (two runs of the same model and seed) are prefixed with
    their directory's name, or its path where the names collide too. A rollout's persistence curve is drawn once, as
    "Persistence", unless the runs' persistence errors differ (other test data), in which
    case each distinct one gets the run's label.
    """
    if not directories:
        raise GeounetError("pass at least one run directory")
    entries = [entry for directory in directories for entry in _read_directory(Path(directory))]
    plain = [entry.label for entry in entries]
    for name in (lambda entry: entry.directory.name, lambda entry: str(entry.directory)):
        counts = Counter(entry.label for entry in entries)
        for entry, label in zip(entries, plain, strict=True):
            if counts[entry.label] > 1:
                entry.label = f"{name(entry)}: {label}"

    curves = Curves()
    persistence: dict[str, list[list[float]]] = {}  # score -> distinct persistence curves seen
    for entry in entries:
        if entry.history is not None:
            curves.histories[entry.label] = entry.history
        if entry.final is not None:
            curves.finals[entry.label] = entry.final
        for score, (leads, model, baseline) in entry.rollout.items():
            score_curves = curves.rollouts.setdefault(score, {})
            score_curves[entry.label] = (leads, model)
            seen = persistence.setdefault(score, [])
            if baseline not in seen:
                seen.append(baseline)
                name = "Persistence" if len(seen) == 1 else f"Persistence ({entry.label})"
                score_curves[name] = (leads, baseline)
    # persistence after the models in each legend
    curves.rollouts = {
        score: dict(sorted(lines.items(), key=lambda item: item[0].startswith("Persistence")))
        for score, lines in curves.rollouts.items()
    }
    return curves


def _read_directory(directory: Path) -> list[_Entry]:
    if not directory.is_dir():
        raise MissingFileError(f"{directory} is not a directory; pass a directory written by `geounet train`")
    if (directory / "metrics.json").is_file():
        return [_run_entry(directory, _read_json(directory / "metrics.json"))]
    if (directory / "results.json").is_file():
        return _compare_entries(directory, _read_json(directory / "results.json"))
    raise GeounetError(
        f"{directory} has no metrics.json; pass a directory written by `geounet train` "
        "(or a --results directory of experiments/compare.py, with results.json)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise GeounetError(f"{path} is not valid JSON ({error}); was the run interrupted while writing it?") from None


def _run_entry(directory: Path, metrics: dict[str, Any]) -> _Entry:
    missing = [key for key in ("history", "test", "config") if key not in metrics]
    if missing:
        raise GeounetError(f"{directory}/metrics.json lacks {missing}; pass a directory written by `geounet train`")
    model, train = metrics["config"]["model"], metrics["config"]["train"]
    test = metrics["test"]
    return _Entry(
        directory=directory,
        label=f"{model_name(model['architecture'], model['variant'])} seed {train['seed']}",
        history=metrics["history"],
        rollout=_rollout(test, test["lead_hours"]) if "lead_hours" in test else {},
    )


def _compare_entries(directory: Path, results: dict[str, Any]) -> list[_Entry]:
    if not results.get("rows"):
        raise GeounetError(
            f"{directory}/results.json has no 'rows'; pass a --results directory of experiments/compare.py"
        )
    entries = []
    for model, row in results["rows"].items():
        entries.append(
            _Entry(
                directory=directory,
                label=f"{model.removeprefix('unet:')} ({len(row['rel_l2_per_seed'])} seeds)",
                final=(row["rel_l2_mean"], row["rel_l2_std"]),
                rollout=_rollout(row, row["lead_hours"], suffix="_curve") if "lead_hours" in row else {},
            )
        )
    return entries


def _rollout(metrics: dict[str, Any], leads: list[float], suffix: str = "") -> dict[str, tuple]:
    """``{score: (leads, model errors, persistence errors)}`` for every list
    ``<prefix>model_<score><suffix>`` that has a twin ``<prefix>persistence_<score><suffix>``.

    The score keeps its prefix: the shallow-water task reports its test rollouts as
    ``model_rmse_h`` and its out-of-distribution one as ``galewsky_model_rmse_h``.
    """
    rollout = {}
    for key, errors in metrics.items():
        prefix, found, rest = key.partition("model_")
        twin = f"{prefix}persistence_{rest}"
        if found and rest.endswith(suffix) and isinstance(errors, list) and twin in metrics:
            rollout[prefix + rest.removesuffix(suffix)] = (leads, errors, metrics[twin])
    return rollout
