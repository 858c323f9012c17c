"""Damage done on purpose to cache files, for fault tests of every cache.

Each kind is what operators found in practice:

- ``"truncated"``: the second half of the file is cut (a full disk, a killed copy);
- ``"zeroed"``: 256 bytes at three quarters of the file are zero (rows of an array
  lost to a bad block: values still load, silently wrong);
- ``"changed"``: one byte in the middle is flipped (one value changed);
- ``"bad_json"``: the file is replaced by text that is not JSON (``{`` and a newline), for
  manifests and JSON records.
"""

from __future__ import annotations

from pathlib import Path

DAMAGE_KINDS = ("truncated", "zeroed", "changed", "bad_json")


def damage_file(path: str | Path, kind: str) -> None:
    """Damage ``path`` in place in the way ``kind`` names (see the module docstring)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "zeroed":
        start = 3 * len(data) // 4
        data[start : start + 256] = bytes(len(data[start : start + 256]))
    elif kind == "changed":
        data[len(data) // 2] ^= 0xFF
    elif kind == "bad_json":
        data = bytearray(b"{\n")
    else:
        raise ValueError(f"kind must be one of {DAMAGE_KINDS}, got {kind!r}")
    path.write_bytes(bytes(data))
