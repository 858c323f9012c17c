"""Run folders: one run per folder, never overwritten or continued by accident.

A folder holds a run when it has ``checkpoint.pt`` or ``metrics.json`` (both record the
experiment config). :func:`claim_run_folder` lets ``geounet train --out DIR`` write into

- an empty or new folder, or one without a run;
- a folder holding the same run only with ``resume`` (continue it);
- a folder holding a run of another model or task only with ``overwrite`` (the old run's
  files are deleted by :func:`clear_run_files` before the new run writes, so no stale plot
  or evaluation survives next to the new run).

The check writes nothing; a run checks again once it holds the folder's lock
(:mod:`geounet.train.run_lock`), so a run that finished in between is not overwritten.

``resume`` under another model or task config names the keys that differ. With
``complete`` (the runner passes one) both configs are compared with today's defaults filled
in, so a run trained before a key was added (and run at the key's default) is the same run. A claimed
folder loses the checkpoint temporaries of killed runs
(:func:`geounet.geometry.cache_files.remove_orphans`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geounet.data.outputs import check_folder
from geounet.errors import GeounetError, MissingFileError
from geounet.geometry.cache_files import remove_orphans
from geounet.train.checkpoint import config_differences as _all_differences
from geounet.train.checkpoint import load_checkpoint, run_config

#: the config sections that define a run; [train] may change on resume (device, eval_every)
RUN_SECTIONS = ("task", "model")
#: where a run's inputs live, not what they are: a run moved with its data cache is the same run
LOCATIONS = ("task.cache_dir",)
#: the files `geounet train` and `geounet evaluate` write into a run folder
RUN_FILES = ("checkpoint.pt", "metrics.json", "predictions*.png", "evaluation*.json", "curves.png")


def stored_config(out_dir: Path) -> dict[str, Any] | None:
    """The config of the run in ``out_dir`` (from its checkpoint, else its metrics), or None."""
    checkpoint, metrics = out_dir / "checkpoint.pt", out_dir / "metrics.json"
    if checkpoint.is_file():
        return run_config(load_checkpoint(checkpoint), checkpoint)
    if metrics.is_file():
        try:
            return json.loads(metrics.read_text())["config"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise GeounetError(f"{metrics} is not the metrics.json of a run ({error}); move it or pass --overwrite") \
                from error
    return None


def config_differences(saved: dict[str, Any], current: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """The differences of two configs in ``sections``, except :data:`LOCATIONS`."""
    return [d for d in _all_differences(saved, current, sections) if d.split(":", 1)[0] not in LOCATIONS]


def claim_run_folder(out_dir: str | Path, config: dict[str, Any], *, resume: bool, overwrite: bool,
                     complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Check that a run of ``config`` may write into ``out_dir`` (see the module docstring).

    ``complete`` maps a config dict to the same config with every key the code reads (its
    defaults filled in); a stored config it cannot read is compared as stored."""
    out_dir = check_folder(out_dir)
    config = config if complete is None else complete(config)

    def saved_config() -> dict[str, Any] | None:
        saved = stored_config(out_dir)
        if saved is None or complete is None:
            return saved
        try:
            return complete(saved)
        except GeounetError:  # keys this code no longer reads: they show as differences
            return saved

    if resume and overwrite:
        raise GeounetError("pass either --resume (continue the run in --out) or --overwrite (start again), not both")
    if resume:
        if not (out_dir / "checkpoint.pt").is_file():
            raise MissingFileError(f"--resume needs a checkpoint, {out_dir / 'checkpoint.pt'} does not exist")
        differences = config_differences(saved_config(), config, RUN_SECTIONS)
        if differences:
            raise GeounetError(
                f"cannot resume {out_dir}: its checkpoint was trained under another config ("
                + "; ".join(differences) + "); resume with the same [task] and [model] or choose another --out"
            )
        remove_orphans(out_dir)
        return
    saved = None if overwrite else saved_config()
    if saved is not None:
        differences = config_differences(saved, config, (*RUN_SECTIONS, "train"))
        what = f"a different run ({'; '.join(differences)})" if differences else "this run already"
        raise GeounetError(
            f"{out_dir} holds {what}; pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    remove_orphans(out_dir)  # checkpoint temporaries of killed runs


def clear_run_files(out_dir: Path) -> None:
    """Delete the files of a run (:data:`RUN_FILES`) from ``out_dir`` (``--overwrite``)."""
    for pattern in RUN_FILES:
        for path in out_dir.glob(pattern):
            path.unlink(missing_ok=True)  # under torchrun every process clears
