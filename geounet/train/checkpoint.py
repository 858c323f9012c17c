"""Checkpoints: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from geounet.data.cache import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to a temporary file beside ``path``, then rename it into place.

    A crash mid-write leaves the previous checkpoint intact; readers never see a partial file.
    """
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (metrics, results tables)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint safely (tensors and plain Python containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)
