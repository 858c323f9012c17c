"""Checkpoints: a header with the payload's SHA-256, then the payload, written atomically.

File layout::

    geounet-checkpoint 1 sha256=<64 hex digits> bytes=<n>\\n
    <n bytes: torch.save of the state dict>

The payload holds the state (model, optimiser, scheduler, step, history) and, for runs of
``geounet train``, the full experiment ``config``; the hash covers all of it. Loading
checks the header, the length and the hash before unpickling, then reads the payload with
``torch.load(weights_only=True)`` (tensors and plain containers only), so garbage in the
middle, a truncated or an empty file is a :class:`CheckpointError` naming the file, never
a model with silently wrong weights. Writes go to a temporary file that is fsynced and
verified by reading it back before it replaces the old checkpoint.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geounet.data.cache import HashHeaderError, atomic_write, hash_headed, read_hash_headed
from geounet.errors import GeounetError, MissingFileError

MAGIC = b"geounet-checkpoint 1"
#: what each failed check of the header means for a checkpoint (geounet.data.cache.HashHeaderError)
_PROBLEMS = {
    "empty": "checkpoint {path} is empty (0 bytes); the run that wrote it did not finish a save",
    "foreign": "{path} is not a geounet checkpoint (no '" + MAGIC.decode() + "' header); it was written by another "
               "program or an older geounet, or its first bytes are damaged",
    "length": "checkpoint {path} is truncated or padded: {detail}",
    "hash": "checkpoint {path} is damaged: its content does not match the SHA-256 in its header",
}


class CheckpointError(GeounetError):
    """A checkpoint is damaged, not a geounet checkpoint, or does not fit the model."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically with its hash; the written file is read back and verified.

    A crash mid-write leaves the previous checkpoint intact; readers never see a partial file.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    def write(tmp: Path) -> None:
        tmp.write_bytes(hash_headed(MAGIC, payload))
        _verified_payload(tmp)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (metrics, results tables)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _verified_payload(path: Path) -> bytes:
    """The payload of ``path`` after checking its header, length and SHA-256."""
    try:
        return read_hash_headed(path, MAGIC)
    except HashHeaderError as error:
        raise CheckpointError(_PROBLEMS[error.problem].format(path=path, detail=error.detail)) from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint after verifying its hash (tensors and plain Python containers only)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} does not exist")
    payload = _verified_payload(path)
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
        reason = f"it needs {found[1]}" if found else "see torch.load(weights_only=True)"
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and containers ({reason})"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return state


def run_config(state: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The experiment config stored in a checkpoint of ``geounet train``."""
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"checkpoint {path} has no experiment config; it was not written by `geounet train`")
    return state["config"]


def load_model_state(model: nn.Module, state: dict[str, Any], path: str | os.PathLike) -> None:
    """``model.load_state_dict(state)``, or one line saying how the checkpoint does not fit."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [key for key in expected if key in state and state[key].shape != expected[key].shape]
    if missing or unexpected or reshaped:
        problems = [
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
            f"{len(reshaped)} of another shape (e.g. {reshaped[0]}: {tuple(state[reshaped[0]].shape)} in the file, "
            f"{tuple(expected[reshaped[0]].shape)} in the model)" if reshaped else "",
        ]
        raise CheckpointError(
            f"checkpoint {path} does not fit the model built from its config: parameters "
            + ", ".join(p for p in problems if p)
            + "; it was written by another version of geounet or for another task setting"
        )
    model.load_state_dict(state)


def config_differences(saved: dict[str, Any], current: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """``"section.key: saved -> current"`` for every key of ``sections`` whose values differ."""
    differences = []
    for section in sections:
        old, new = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                differences.append(f"{section}.{key}: {old.get(key, '(unset)')!r} -> {new.get(key, '(unset)')!r}")
    return differences
