"""Cache entries that can be trusted: atomic writes, SHA-256 manifests, orphaned temporaries.

A cache *entry* is a file or a folder (e.g. an eigenbasis ``.npy``, a generated-data
``.npz``, a climate archive folder). Beside it lies its **manifest**
``<entry name>.manifest.json``::

    {"format": "geounet-cache-manifest", "version": 1,
     "files": {"<path relative to the entry>": {"bytes": n, "sha256": "<64 hex digits>"}}}

written *after* the entry and atomically, so an entry with a valid manifest was
completely written and is unchanged since. :func:`check_entry` re-hashes every file
and names the first problem (no manifest, manifest not JSON or of another version, a
file missing, of another size or another hash). :func:`load_or_build` never returns
a damaged entry: it rebuilds it with one :class:`CacheRebuiltWarning` naming the
entry; :func:`require_intact` (for entries nothing here can rebuild) raises
:class:`DamagedCacheError` naming the entry and what to delete.

**Temporaries.** Every writer writes to a temporary name in the destination folder and
renames it into place (:func:`atomic_write`, :func:`temporary_path`). The name records
the writer's host and process id::

    .<entry name>~<host>~<pid>~<random>.tmp<entry suffix>

so a writer that was killed leaves a file that :func:`remove_orphans` recognises and
removes on the next write into that folder, once that process is gone; a live
writer's temporary (another process building the same entry) is never touched, and
neither are temporaries of other hosts sharing the folder.

**Concurrent builds.** :func:`load_or_build` builds an entry holding an exclusive
``flock`` on ``.<entry name>.lock`` beside it and checks the entry again once it has the
lock: of two processes that need one missing entry at once, the first builds it and the
second waits, then loads the first one's entry (the lock is the kernel's, so a killed
builder releases it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from geounet.errors import GeounetError, naming_path

FORMAT = "geounet-cache-manifest"
VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"
_TEMPORARY = re.compile(r"^\..+~(?P<host>[A-Za-z0-9_-]+)~(?P<pid>[0-9]+)~[0-9a-f]+\.tmp(\.[^~/]*)?$")
_CHUNK = 1 << 20
T = TypeVar("T")


class DamagedCacheError(GeounetError):
    """A cache entry failed its checksum and cannot be rebuilt here."""


class CacheRebuiltWarning(UserWarning):
    """A damaged cache entry was found and rebuilt."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name next to ``path``, tagged with this host and process (module docstring)."""
    path = Path(path)
    return path.with_name(f".{path.name}~{_host()}~{os.getpid()}~{secrets.token_hex(4)}.tmp{path.suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_orphans(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writer (on this host) is no longer running;
    returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    host = _host()
    for entry in directory.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or match["host"] != host or _alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], None]) -> Path:
    """Call ``write_fn(tmp)`` on a temporary name next to ``path``, fsync it, rename it to ``path``.

    Orphaned temporaries of dead writers in the folder are removed first. The temporary
    keeps ``path``'s suffix (some writers dispatch on it). If ``write_fn`` raises, the
    temporary is removed and ``path`` is untouched; an ``OSError`` naming no file or the
    temporary is re-raised naming ``path``. ``write_fn`` may create a file or a
    folder; a folder replaces an existing ``path`` folder (an entry being rebuilt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    tmp = temporary_path(path)
    with naming_path(path, temporary=tmp):  # a full disk, or a folder the user cannot write to
        try:
            write_fn(tmp)
            if tmp.is_dir():
                for file in tmp.rglob("*"):
                    fsync(file)
                if path.is_dir():
                    shutil.rmtree(path)
            fsync(tmp)
            os.replace(tmp, path)
            fsync(path.parent)  # the rename itself
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
    return path


def manifest_path(entry: str | os.PathLike) -> Path:
    """``<entry>.manifest.json`` beside ``entry``."""
    entry = Path(entry)
    return entry.with_name(entry.name + MANIFEST_SUFFIX)


def _files(entry: Path) -> dict[str, Path]:
    if entry.is_dir():
        return {str(f.relative_to(entry)): f for f in sorted(entry.rglob("*")) if f.is_file()}
    return {entry.name: entry}


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def seal(entry: str | os.PathLike) -> Path:
    """Write ``entry``'s manifest (the size and SHA-256 of each of its files), atomically."""
    entry = Path(entry)
    files = {name: {"bytes": f.stat().st_size, "sha256": _digest(f)} for name, f in _files(entry).items()}
    text = json.dumps({"format": FORMAT, "version": VERSION, "files": files}, indent=1, sort_keys=True)
    return atomic_write(manifest_path(entry), lambda tmp: tmp.write_text(text))


def check_entry(entry: str | os.PathLike) -> str | None:
    """The first problem of ``entry`` against its manifest, or None when it is intact."""
    entry = Path(entry)
    manifest = manifest_path(entry)
    if not manifest.is_file():
        return f"it has no checksum manifest {manifest.name} (an older geounet, or a writer that did not finish)"
    try:
        record = json.loads(manifest.read_text())
        files = record["files"]
        if record.get("format") != FORMAT or record.get("version") != VERSION:
            return f"its manifest {manifest.name} is not a {FORMAT} of version {VERSION}"
        expected = {str(name): (int(v["bytes"]), str(v["sha256"])) for name, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        return f"its manifest {manifest.name} is not valid ({type(error).__name__}: {error})"
    found = _files(entry) if entry.exists() else {}
    if set(found) != set(expected):
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        return f"its files differ from the manifest (missing {missing}, not listed {extra})"
    for name, (size, sha) in expected.items():
        if found[name].stat().st_size != size:
            return f"{name} has {found[name].stat().st_size} bytes, the manifest says {size} (truncated or padded)"
        if _digest(found[name]) != sha:
            return f"{name} does not match the SHA-256 in its manifest (changed bytes)"
    return None


def require_intact(entry: str | os.PathLike, what: str) -> None:
    """Raise :class:`DamagedCacheError` naming ``entry`` and what to delete when it fails its check."""
    problem = check_entry(entry)
    if problem is not None:
        raise DamagedCacheError(f"{what} {entry} is damaged: {problem}; delete {entry} and "
                                f"{manifest_path(entry).name} beside it, and it is built again")


def load_or_build(entry: str | os.PathLike, write_fn: Callable[[Path], None], load: Callable[[Path], T],
                  what: str) -> T:
    """``load(entry)`` of an intact entry; otherwise ``write_fn`` writes it (atomically, then
    sealed) and it is loaded. A damaged entry (present but failing :func:`check_entry`) is
    rebuilt with one :class:`CacheRebuiltWarning` naming it; a damaged entry is never loaded.
    Builds hold :func:`build_lock`, so a concurrent identical build waits and uses this one."""
    entry = Path(entry)
    if _intact(entry):
        return load(entry)
    with build_lock(entry):
        if _intact(entry):  # built by another process while this one waited
            return load(entry)
        if entry.exists() or manifest_path(entry).exists():
            warnings.warn(f"{what} {entry} cannot be used ({check_entry(entry)}); rebuilding it", CacheRebuiltWarning,
                          stacklevel=3)
            manifest_path(entry).unlink(missing_ok=True)  # the entry is unsealed until the rebuild is complete
        atomic_write(entry, write_fn)
        seal(entry)
    return load(entry)


def _intact(entry: Path) -> bool:
    return (entry.exists() or manifest_path(entry).exists()) and check_entry(entry) is None


@contextmanager
def build_lock(entry: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``.<entry name>.lock`` beside ``entry`` (created if needed)."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(f".{entry.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
