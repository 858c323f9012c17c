"""On-disk cache for generated datasets: content-hashed file names and atomic writes.

A dataset is identified by the *generation parameters* that produced it: a flat,
JSON-serialisable dict (numbers, strings, booleans, lists, nested dicts). The file name
is ``{name}-{hash}{suffix}`` where ``hash`` is the first 16 hex digits of the SHA-256 of
the canonical JSON of the parameters (sorted keys, no whitespace), and the canonical JSON
is also stored *inside* the file (netCDF global attribute / npz entry ``cache_params``).
On reuse the stored parameters are compared with the requested ones; a mismatch raises
:class:`CacheMismatchError` instead of silently returning or overwriting another dataset.

Writes go to a temporary file in the destination directory followed by ``os.replace``,
so a reader never sees a half-written file, and two processes generating the same
dataset at once both leave a complete file behind.

Typical use (a generator owns its own ``params``; include a ``version`` entry and bump it
when the generator's numerics change, so old files are not reused)::

    params = {"generator": "my_solver", "version": 1, "n": 64, "seed": 0}
    ds = cached(cache_dir, "my_solver", params, lambda: build(**params), fmt="netcdf")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geounet.errors import GeounetError, naming_path

PARAMS_ATTR = "cache_params"
_HASH_DIGITS = 16
_FORMAT_SUFFIX = {"netcdf": ".nc", "npz": ".npz"}


class CacheMismatchError(GeounetError):
    """A cache file exists under the requested key but holds different parameters."""


class DamagedDataError(GeounetError):
    """A cache file cannot be read (truncated, overwritten, not a data file)."""


class NonFiniteDataError(GeounetError):
    """A cache file holds NaN or Inf values."""


def _to_json_value(value: Any, where: str) -> Any:
    """Recursively convert numpy scalars / tuples / paths to plain JSON values."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not np.isfinite(value):
            raise GeounetError(f"cache parameter {where} is {value}; only finite numbers can be hashed")
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_to_json_value(v, f"{where}[{i}]") for i, v in enumerate(list(value))]
    if isinstance(value, Mapping):
        return {str(k): _to_json_value(v, f"{where}.{k}") for k, v in value.items()}
    raise GeounetError(
        f"cache parameter {where} has type {type(value).__name__}; use numbers, strings, "
        "booleans, lists or dicts so the key can be hashed reproducibly"
    )


def canonical_params(params: Mapping[str, Any]) -> str:
    """Canonical JSON of ``params``: sorted keys, compact separators, plain types."""
    if not isinstance(params, Mapping):
        raise GeounetError(f"cache params must be a dict, got {type(params).__name__}")
    plain = {str(k): _to_json_value(v, str(k)) for k, v in params.items()}
    return json.dumps(plain, sort_keys=True, separators=(",", ":"))


def params_hash(params: Mapping[str, Any]) -> str:
    """First 16 hex digits of SHA-256(canonical_params(params))."""
    return hashlib.sha256(canonical_params(params).encode()).hexdigest()[:_HASH_DIGITS]


def dataset_path(cache_dir: str | os.PathLike, name: str, params: Mapping[str, Any], suffix: str) -> Path:
    """``cache_dir / f"{name}-{params_hash(params)}{suffix}"`` (the directory is not created)."""
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise GeounetError(f"dataset name must be a plain file-name stem, got {name!r}")
    if not suffix.startswith("."):
        raise GeounetError(f"suffix must start with '.', got {suffix!r}")
    return Path(cache_dir) / f"{name}-{params_hash(params)}{suffix}"


class HashHeaderError(GeounetError):
    """A hash-headed file failed its check: ``problem`` is ``"empty"``, ``"foreign"`` (no such
    header), ``"length"`` (truncated or padded; ``detail`` gives the counts) or ``"hash"``."""

    def __init__(self, problem: str, detail: str = ""):
        super().__init__(f"{problem}: {detail}" if detail else problem)
        self.problem, self.detail = problem, detail


def hash_headed(magic: bytes, payload: bytes) -> bytes:
    """``payload`` behind the line ``<magic> sha256=<64 hex digits> bytes=<n>``: a file whose
    content can be verified before it is unpickled (checkpoints, hierarchy caches)."""
    return magic + b" sha256=" + hashlib.sha256(payload).hexdigest().encode() + b" bytes=%d\n" % len(payload) + payload


def read_hash_headed(path: Path, magic: bytes) -> bytes:
    """The payload of a :func:`hash_headed` file after checking its header, length and SHA-256."""
    data = path.read_bytes()
    if not data:
        raise HashHeaderError("empty")
    end = data.find(b"\n", 0, len(magic) + 100) + 1
    header = re.fullmatch(re.escape(magic) + rb" sha256=([0-9a-f]{64}) bytes=([0-9]+)\n", data[:end]) if end else None
    if header is None:
        raise HashHeaderError("foreign")
    payload = data[end:]
    if len(payload) != int(header[2]):
        raise HashHeaderError("length", f"{len(payload)} payload bytes, the header says {int(header[2])}")
    if hashlib.sha256(payload).hexdigest() != header[1].decode():
        raise HashHeaderError("hash")
    return payload


def atomic_write(path: str | os.PathLike, write_fn: Callable[[Path], None]) -> Path:
    """Call ``write_fn(tmp_path)`` on a fresh temporary file next to ``path``, fsync it, rename it.

    The temporary file keeps ``path``'s suffix (some writers dispatch on it). If
    ``write_fn`` raises, the temporary file is removed and ``path`` is untouched; an
    ``OSError`` without a file name (disk full, file too large) is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with naming_path(path.parent, instead_of_temporary=True):  # a folder the user cannot write to
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    with naming_path(path):
        try:
            write_fn(tmp_path)
            _fsync(tmp_path)
            os.replace(tmp_path, path)
            _fsync(path.parent)  # the rename itself
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
    return path


def _damaged(path: Path, error: Exception) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return f"data file {path} is damaged and cannot be read ({reason}); delete it to regenerate it"


def check_finite(path: str | os.PathLike, name: str, values: np.ndarray, dims: tuple[str, ...] = ()) -> None:
    """Raise :class:`NonFiniteDataError` naming the file, the variable, and the sample and
    position of the first NaN / Inf of ``values`` (its axes named by ``dims`` where known;
    an axis named ``sample`` is reported as the sample)."""
    if not np.issubdtype(values.dtype, np.inexact):
        return
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    axes = [*dims, *[None] * (len(first) - len(dims))]
    sample = [f"sample {i}" for dim, i in zip(axes, first, strict=True) if dim == "sample"]
    rest = [f"{dim}={i}" if dim else str(i) for dim, i in zip(axes, first, strict=True) if dim != "sample"]
    where = ", ".join(sample + ([f"position ({', '.join(rest)})"] if rest else []))
    raise NonFiniteDataError(
        f"data file {path}: variable {name!r} {list(values.shape)} has {int(bad.sum())} NaN/Inf value(s), the first "
        f"({values[first]}) at {where}; delete the file to regenerate it"
    )


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a directory) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_stored(path: Path, stored: str | None, params: Mapping[str, Any]) -> None:
    expected = canonical_params(params)
    if stored is None:
        raise CacheMismatchError(f"{path} has no '{PARAMS_ATTR}' record; it was not written by this cache")
    if json.loads(stored) != json.loads(expected):
        raise CacheMismatchError(
            f"{path} holds a dataset generated with {stored}, not the requested {expected}; "
            "delete the file or choose another cache directory (it is never overwritten silently)"
        )


def save_netcdf(ds, path: str | os.PathLike, params: Mapping[str, Any]) -> Path:
    """Write an ``xarray.Dataset`` atomically, recording ``params`` as a global attribute.

    Every data variable carries an HDF5 Fletcher-32 checksum, so a damaged file fails to
    read instead of returning garbage values."""
    ds = ds.copy(deep=False)
    ds.attrs[PARAMS_ATTR] = canonical_params(params)
    checksums = {name: {"fletcher32": True} for name in ds.data_vars}
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, encoding=checksums))


def load_netcdf(path: str | os.PathLike, params: Mapping[str, Any]):
    """Read a cached ``xarray.Dataset`` fully into memory, checking its stored params."""
    import xarray as xr

    path = Path(path)
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except (OSError, ValueError, RuntimeError) as error:
        raise DamagedDataError(_damaged(path, error)) from error
    _check_stored(path, ds.attrs.get(PARAMS_ATTR), params)
    for name, variable in ds.variables.items():
        check_finite(path, str(name), variable.values, variable.dims)
    return ds


def save_npz(arrays: Mapping[str, np.ndarray], path: str | os.PathLike, params: Mapping[str, Any]) -> Path:
    """Write a dict of arrays atomically as ``.npz`` with ``params`` under ``cache_params``."""
    if PARAMS_ATTR in arrays:
        raise GeounetError(f"array name '{PARAMS_ATTR}' is reserved for the cache record")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[PARAMS_ATTR] = np.array(canonical_params(params))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)

    return atomic_write(path, write)


def load_npz(path: str | os.PathLike, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Read a cached ``.npz`` (no pickles) into a dict, checking its stored params."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DamagedDataError(_damaged(path, error)) from error
    stored = arrays.pop(PARAMS_ATTR, None)
    _check_stored(path, None if stored is None else str(stored), params)
    num_samples = params.get("num_samples")
    for name, values in arrays.items():
        per_sample = values.ndim > 1 and values.shape[0] == num_samples
        check_finite(path, name, values, ("sample",) if per_sample else ())
    return arrays


def cached(
    cache_dir: str | os.PathLike,
    name: str,
    params: Mapping[str, Any],
    build_fn: Callable[[], Any],
    fmt: str = "netcdf",
):
    """Load the dataset keyed by ``params`` from ``cache_dir``, or build, save and return it.

    Args:
        cache_dir: directory of cache files (created if missing).
        name: file-name stem, e.g. ``"shallow_water"``.
        params: generation parameters (JSON-able); their hash names the file and they are
            stored in it and checked on reuse.
        build_fn: ``() -> dataset``; an ``xarray.Dataset`` for ``fmt="netcdf"``, a dict of
            numpy arrays for ``fmt="npz"``.
        fmt: ``"netcdf"`` or ``"npz"``.

    Returns:
        The dataset as read back from the file (so first and later calls return the same
        thing, including netCDF dtype/attribute round-trips).

    Raises:
        CacheMismatchError: the file exists but records different parameters.
    """
    if fmt not in _FORMAT_SUFFIX:
        raise GeounetError(f"fmt must be one of {sorted(_FORMAT_SUFFIX)}, got {fmt!r}")
    path = dataset_path(cache_dir, name, params, _FORMAT_SUFFIX[fmt])
    load, save = (load_netcdf, save_netcdf) if fmt == "netcdf" else (load_npz, save_npz)
    if not path.exists():
        save(build_fn(), path, params)
    return load(path, params)
