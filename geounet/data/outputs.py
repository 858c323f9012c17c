"""The files and folders a command writes (``--out``): checked before any work, written atomically.

Every command that writes a result (``geounet sample``, ``forecast``, ``predict``,
``plot``, ``analyse``) goes through :func:`check_output` before it computes anything and
:func:`write_output` when it writes:

- the target's suffix names its format (``.nc`` netCDF, ``.zarr`` a zarr store, ``.vtu``
  a mesh, ``.png`` a figure, ...) and must be one the command writes: a netCDF file is
  never written under a ``.csv`` name;
- an existing target is refused unless the user passed ``--overwrite``; a folder where a
  file is meant (or a file where a folder is meant, or a file among the parent folders)
  is refused either way;
- the content goes to a temporary file in the target's folder, which then replaces the
  target with one ``os.replace``: a reader sees the old target or the complete new one, and
  a failed write (disk full, file-size limit) leaves the old target and no temporary file
  behind. A zarr store is a folder, which cannot replace a non-empty folder in one step:
  the new store is written beside the old one, the old one is moved aside, the new one
  moved in (the old one moved back if that fails) and the old one deleted.

An operating-system error while writing (read-only folder, no space left, file too large)
is re-raised as an ``OSError`` naming the target, which the command line prints as one line.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from geounet.data.cache import atomic_write
from geounet.errors import GeounetError, naming_path
from geounet.geometry.cache_files import remove_orphans, temporary_path

#: suffix -> what the file is; a command accepts a subset (its ``formats``)
FORMATS = {
    ".nc": "netCDF", ".zarr": "zarr store", ".vtu": "VTK unstructured grid", ".vtk": "legacy VTK", ".ply": "PLY mesh",
    ".obj": "OBJ mesh", ".stl": "STL mesh", ".off": "OFF mesh", ".msh": "Gmsh mesh", ".xdmf": "XDMF mesh",
    ".png": "PNG image", ".pdf": "PDF", ".svg": "SVG", ".json": "JSON", ".pt": "PyTorch file", ".onnx": "ONNX model",
}
#: formats written as folders
FOLDER_FORMATS = (".zarr",)


def check_output(path: str | os.PathLike, formats: Mapping[str, str] | tuple[str, ...], *, overwrite: bool,
                 option: str = "--out", replace: str = "pass --overwrite") -> Path:
    """``path`` if a command may write it (module docstring), else a :class:`GeounetError` naming the fix;
    ``option`` names the argument and ``replace`` how to allow replacing a file (for a library function,
    e.g. ``"call with overwrite=True"``)."""
    path = Path(path)
    suffixes = tuple(formats)
    if path.suffix.lower() not in suffixes:
        names = ", ".join(f"{s} ({FORMATS.get(s, s)})" for s in suffixes)
        got = f"the suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise GeounetError(f"{option} {path} has {got}; it must end in {names}, the format it is written in")
    check_parents(path, option)
    folder_format = path.suffix.lower() in FOLDER_FORMATS
    if path.is_dir() and not folder_format:
        raise GeounetError(f"{option} {path} is a folder; name a file in it, e.g. {path / ('out' + path.suffix)}")
    if path.exists() and not path.is_dir() and folder_format:
        raise GeounetError(f"{option} {path} is a file, not a {FORMATS[path.suffix.lower()]}; remove it or choose "
                           "another name")
    if path.exists() and not overwrite:
        raise GeounetError(f"{option} {path} exists; {replace} to replace it, or choose another name")
    return path


def check_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` if it is a folder or can become one (nothing on the way is a file)."""
    path = Path(path)
    check_parents(path, option)
    if path.exists() and not path.is_dir():
        raise GeounetError(f"{option} {path} is a file, not a folder; remove it or choose another --out")
    return path


def check_parents(path: Path, option: str = "--out") -> None:
    """Refuse a ``path`` whose nearest existing parent is a file (``out.nc/x.png``)."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise GeounetError(f"{option} {path}: {parent} is a file, not a folder; choose another path")
            return


def write_output(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file (a folder for zarr) beside ``path``, then put it in
    place with ``os.replace``; on any failure the temporary is removed and ``path`` left as it was.

    Call :func:`check_output` first; this replaces an existing ``path``."""
    path = Path(path)
    if path.suffix.lower() not in FOLDER_FORMATS:
        return atomic_write(path, write)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    staging = temporary_path(path)
    old = staging.with_name(staging.name + ".old")
    with naming_path(path, temporary=staging):  # a full disk, or a folder the user cannot write to
        try:
            write(staging)  # writers create the store themselves
            if path.exists():
                os.replace(path, old)  # a folder cannot replace a non-empty folder in one step
            try:
                os.replace(staging, path)
            except OSError:
                if old.exists():
                    os.replace(old, path)  # the old store back in place
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return path


def write_text_output(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_output` of a text file (JSON, Markdown)."""
    return write_output(path, lambda tmp: tmp.write_text(text))
