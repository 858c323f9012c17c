"""geounet's error classes.

Every error about what a user gave (a config, a file, a run folder, arguments of a
public function) is a :class:`GeounetError`. The command line prints those as one line
and exits with status 2; any other exception is a defect and keeps its traceback.
``GeounetError`` subclasses ``ValueError``, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class GeounetError(ValueError):
    """The input is invalid; the message names the problem and the fix."""


class MissingFileError(GeounetError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class TrainingDivergedError(GeounetError, FloatingPointError):
    """Training produced a non-finite loss or gradient (the NaN guard)."""
