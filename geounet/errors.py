"""geounet's error classes, and two helpers for errors of the operating system.

Every error about what a user gave (a config, a file, a run folder, arguments of a
public function) is a :class:`GeounetError`. The command line prints those as one line
and exits with status 2; any other exception is a defect and keeps its traceback.
``GeounetError`` subclasses ``ValueError``, so ``except ValueError`` keeps working.

An ``OSError`` that names a file (or one of a full disk, a file-size limit, a read-only
file system) is also the user's to fix: :func:`naming_path` gives the file name to those
that lack it, and :func:`optional_cache_write` turns a failed write of a cache that only
saves time into an :class:`OptionalCacheWarning`.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager


class GeounetError(ValueError):
    """The input is invalid; the message names the problem and the fix."""


class MissingFileError(GeounetError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class TrainingDivergedError(GeounetError, FloatingPointError):
    """Training produced a non-finite loss or gradient (the NaN guard)."""


class OptionalCacheWarning(UserWarning):
    """An optional cache (one that only saves time) could not be written; the work goes on without it."""


@contextmanager
def optional_cache_write(path: str | os.PathLike, what: str):
    """Turn an ``OSError`` while writing the optional cache file ``path`` (a read-only or full
    cache folder) into one :class:`OptionalCacheWarning`: the caller has its result in memory."""
    try:
        yield
    except OSError as error:
        warnings.warn(f"{what} {path} could not be written ({error.strerror or error}); going on without it",
                      OptionalCacheWarning, stacklevel=3)


@contextmanager
def naming_path(path: str | os.PathLike, *, temporary: str | os.PathLike | None = None):
    """Re-raise an ``OSError`` that names no file (``write()`` failing with ENOSPC "no space left"
    or EFBIG "file too large"), or one that names the ``temporary`` written in its place (a
    file or folder the user never named, or a file inside it), as one naming ``path``, so the
    command line can report which file could not be written, in one line."""
    try:
        yield
    except OSError as error:
        named = error.filename is not None and not (
            temporary is not None and str(error.filename).startswith(str(temporary)))
        if error.errno is None or named:
            raise
        raise type(error)(error.errno, error.strerror, str(path)) from error
