"""One run per folder at a time: a lock file claimed atomically from the start of a run.

:func:`run_lock` creates ``RUN_DIR/.geounet.lock`` with ``O_CREAT | O_EXCL`` (the
operating system lets exactly one process create it) and writes into it who holds it:
the process id, its start time (``/proc/<pid>/stat``, so a reused pid is not mistaken
for the holder) and the host. A second run into the same folder finds the file and is
refused with a :class:`RunLockedError` naming the holder. When the run ends, however it
ends short of being killed, the lock is removed. Under ``torchrun`` rank 0 holds the lock
for the run's processes.

A lock whose holder is gone (a run killed with ``kill -9``, a machine that crashed) is
*stale*: on the same host, a process that no longer exists (or another process under a
reused pid) holds nothing, so the next run takes the lock over with a warning (and
``--resume`` continues the killed run). A lock of another host cannot be checked and is
never taken over; the message says to delete it. Claims and take-overs hold an ``flock``
on the folder, so two processes never both see a stale lock and both take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geounet.errors import GeounetError
from geounet.train.distributed import is_main_process

LOCK_NAME = ".geounet.lock"


class RunLockedError(GeounetError):
    """Another live process is writing a run into the folder."""


class StaleLockWarning(UserWarning):
    """A lock of a process that no longer runs was taken over."""


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the body; see the module docstring."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if not is_main_process():
        yield path
        return
    mine = _claim(path)
    try:
        yield path
    finally:
        with _serialised(folder):
            if _read(path) == mine:  # never remove a lock someone else took over
                path.unlink()


def _claim(path: Path) -> dict:
    record = {"pid": os.getpid(), "start": _start_time(os.getpid()), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    with _serialised(path.parent):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read(path)
            if _alive(other):
                raise RunLockedError(
                    f"{path.parent} is in use by another run ({_describe(other)}); wait for it to finish or choose "
                    f"another --out (if that process is gone, delete {path})") from None
            warnings.warn(f"{path.parent}: taking over the lock of a run that no longer runs ({_describe(other)})",
                          StaleLockWarning, stacklevel=4)
            path.unlink()
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(record))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            path.unlink()  # a disk too full for the record: no empty lock left behind
            raise
    return record


@contextmanager
def _serialised(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder`` for the body (claims, take-overs and releases)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _read(path: Path) -> dict:
    """The lock's record; ``{}`` for an unreadable one (a claim killed between create and write)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(record: dict) -> bool:
    """Whether the holder may still run: another host's process counts as alive (it cannot be checked)."""
    if not isinstance(record.get("pid"), int):
        return False
    if record.get("host") != socket.gethostname():
        return True
    now = _start_time(record["pid"])
    return now is not None and (now == record.get("start") or "" in (now, record.get("start")))


def _start_time(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22);
    ``""`` if the process exists but there is no /proc, None if there is no such process."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after "pid (comm)": starttime is field 22


def _describe(record: dict) -> str:
    if not record:
        return "an empty lock file"
    return f"pid {record.get('pid')} on {record.get('host')}, since {record.get('since')}"
