"""The user's climate data as forecast samples on HEALPix: lazy reading, one cache, time
windows.

A source is a netCDF file, a zarr store or a glob of netCDF files, opened lazily with
xarray + dask (:func:`open_climate`). ``variables`` name surface fields (``"t2m"``) or one
level of a field with a level dimension (``"z500"`` = ``z`` at level 500). The time and
level dimensions are recognised by name (``time`` / ``valid_time``, ``level`` /
``pressure_level`` / ...: :func:`geounet.data.climate_io.find_dim`) or named by the
``time_name`` / ``level_name`` settings. The spatial layout is stated, never guessed:
``"latlon"`` (``lat``/``latitude`` and ``lon``/``longitude`` dimensions, regridded to
HEALPix NEST at ``nside``), or a HEALPix ordering of :mod:`geounet.geometry.healpix`
(``"nest"`` / ``"ring"`` with a ``pixel`` dimension, a face layout such as ``"face"`` with
``(face, height, width)``).

The selected fields are streamed once, a few time steps at a time (only those are ever
in memory), through the checks below, converted to NEST and written to an on-disk
cache ``fields.f32 [T, N, C]`` float32 that training reads row by row (:class:`StateFile`,
:class:`ClimateArchive`). Peak memory therefore does not grow with the data set's length.

Every defect of the input is a :class:`ClimateDataError` naming it and the fix: a
missing variable or level, grids that differ between variables or from ``nside``, an
ordering that does not fit the file's dimensions, infinite values, missing values (NaN)
that move over time (naming the variable, the time and the place) and disorder in the
time axis.

**Missing values.** A variable may be NaN at fixed points (sea-surface temperature over
land): its source mask is the points that are finite at every time. A HEALPix pixel is
valid when every source point it is interpolated from is valid; the archive keeps NaN at
the others and their mask ``valid [N, C]``. Invalid pixels enter the network as the
variable's training mean (0 after normalisation), are held there by the model and count
in no loss and no score.

**Gaps.** The time axis may have gaps (missing steps); a sample whose states are not all
present, ``dt`` apart, is dropped (:func:`split_inits` counts them).

Samples (:class:`ForecastSamples`) follow DLWP: ``T_in`` consecutive states
``x_{t-T_in+1} .. x_t`` (step ``dt``) go in, ``k`` autoregressive steps of ``T_out``
states each come out. A batch is the structured forecast batch of
:mod:`geounet.data.forecast_samples`: inputs with separate fields (the input states in
physical units ``[B, T_in, N, C]``, the forcings at the valid times of every output state
``[B, k, T_out, N, F]``, the constant fields ``[N, K]``) and targets ``[B, N, k T_out C]``
in the model's units, whose normalisation (the training split's per-variable mean and
standard deviation, :meth:`TrainingStatistics.normalisation`) the model owns.

The ``F = 5`` forcings are analytic functions of the valid time and position
(:func:`forcings`); the ``K`` constant fields (land-sea mask, orography, ...) are
standardised over the sphere.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from geounet.data.climate_grid import ClimateDataError, SourceGrid
from geounet.data.climate_io import LEVEL_NAMES, TIME_NAMES, find_dim
from geounet.data.forecast_samples import forecast_batch
from geounet.data.samples import Batch
from geounet.errors import MissingFileError
from geounet.geometry.healpix import npix, pixel_vectors, validate_nside
from geounet.hierarchy.base import Hierarchy
from geounet.models.autoregressive import Normalisation

FORCINGS = ("toa_insolation", "sin_time_of_day", "cos_time_of_day", "sin_day_of_year", "cos_day_of_year")
#: about this many bytes of float64 source data are read per chunk when the cache is built
CHUNK_BYTES = 16 * 2**20
CACHE_VERSION = 3


# ------------------------------------------------------------------------------ opening


def source_files(path: str | os.PathLike) -> list[Path]:
    """The files (or zarr stores) ``path`` names: itself, or the sorted matches of a glob."""
    text = str(path)
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text))
        if not matches:
            raise MissingFileError(f"no file matches {text!r}; check the pattern and the directory")
        return matches
    if not Path(text).exists():
        raise MissingFileError(f"climate data {text} not found")
    return [Path(text)]


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path.is_dir() and any((path / f).exists() for f in (".zgroup", "zarr.json")))


def open_climate(path: str | os.PathLike) -> xr.Dataset:
    """Open ``path`` (netCDF, zarr or a glob of netCDF files) lazily: dask arrays, nothing read."""
    files = source_files(path)
    try:
        if len(files) > 1:
            return xr.open_mfdataset(files, combine="by_coords", chunks={}, data_vars="minimal", coords="minimal",
                                     compat="override")
        if _is_zarr(files[0]):
            return xr.open_zarr(files[0], chunks={})
        return xr.open_dataset(files[0], chunks={})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ClimateDataError(f"cannot open {path} as netCDF / zarr: {' '.join(str(error).split())}") from error


def level_dim(da: xr.DataArray, level_name: str = "") -> str | None:
    """The pressure-level dimension of ``da`` (``level_name`` if given), or None."""
    if level_name and level_name not in da.dims:
        return None
    return find_dim(da, LEVEL_NAMES, "pressure level", name=level_name, setting="task.level_name")


def time_dim(da: xr.DataArray | xr.Dataset, time_name: str = "") -> str | None:
    """The time dimension of ``da`` (``time_name`` if given), or None when it has none."""
    if time_name and time_name not in da.dims:
        return None
    return find_dim(da, TIME_NAMES, "time", name=time_name, setting="task.time_name")


def _time_hint(time_name: str) -> str:
    return (f"task.time_name = {time_name!r}" if time_name else
            f"a time dimension is one named {' or '.join(TIME_NAMES)}, or the one task.time_name names")


def select_variable(ds: xr.Dataset, name: str, level_name: str = "") -> xr.DataArray:
    """``ds[name]``, or for ``"<var><level>"`` (e.g. ``"z500"``) ``ds[var]`` at that level."""
    if name in ds.data_vars:
        return ds[name]
    match = re.fullmatch(r"(.*?)(\d+(?:\.\d+)?)", name)
    if match and match[1] in ds.data_vars:
        da = ds[match[1]]
        level_dim_name = level_dim(da, level_name)
        if level_dim_name is not None:
            levels = np.asarray(da[level_dim_name].values, dtype=np.float64)
            hits = np.flatnonzero(np.isclose(levels, float(match[2])))
            if hits.size == 1:
                picked = da.isel({level_dim_name: int(hits[0])}, drop=True)
                picked.attrs = {**da.attrs, "level": float(match[2]), "level_dim": str(level_dim_name)}
                return picked.rename(name)
            raise ClimateDataError(f"variable {match[1]!r} has no level {match[2]} for {name!r}; its "
                                   f"{level_dim_name} values are {levels.tolist()}")
    available = []
    for var, da in ds.data_vars.items():
        dim = level_dim(da, level_name)
        available.append(f"{var}<level> (levels {np.asarray(da[dim].values).tolist()})" if dim else var)
    raise ClimateDataError(f"variable {name!r} is not in the data; available: {', '.join(available)}; fix "
                           "task.variables")


# --------------------------------------------------------------------------- time axis


def check_time_axis(times: np.ndarray) -> np.timedelta64:
    """The spacing ``dt`` of ``times`` (datetime64 ``[T]``): its most common step. Gaps (longer
    steps) are allowed; ClimateDataError on disorder or duplicates."""
    if times.size < 2:
        raise ClimateDataError(f"the data hold {times.size} time step(s); forecasting needs a time series")
    steps = np.diff(times)
    disorder = np.flatnonzero(steps <= np.timedelta64(0))
    if disorder.size:
        i = int(disorder[0])
        raise ClimateDataError(f"the time axis is not strictly increasing ({times[i]} is followed by {times[i + 1]}); "
                               "sort it (ds.sortby('time')) and drop duplicated times")
    values, counts = np.unique(steps, return_counts=True)
    return values[np.argmax(counts)]


def time_gaps(times: np.ndarray, dt: np.timedelta64) -> list[tuple[np.datetime64, np.datetime64]]:
    """The ``(before, after)`` times around every step of ``times`` other than ``dt``."""
    return [(times[i], times[i + 1]) for i in np.flatnonzero(np.diff(times) != dt)]


def _hours(delta: np.timedelta64) -> float:
    return float(delta / np.timedelta64(1, "s")) / 3600.0


# ----------------------------------------------------------------------------- cache


#: names under which land-sea masks and orography come in ERA5-like files (no time dim)
KNOWN_CONSTANTS = ("lsm", "land_sea_mask", "orography", "oro", "z_surface", "geopotential_at_surface", "zs")


class StateFile:
    """States ``[T, N, C]`` float32 in a raw file, read by time index with ``os.preadv``.

    ``states[rows]`` (an int, a slice or an array of ints) returns a new array of those
    rows only. Unlike a memory map nothing stays resident in the process afterwards, so
    memory does not grow with the rows read over a run, whatever the file's length.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int]) -> None:
        self.path, self.shape = Path(path), tuple(shape)
        self.row_bytes = 4 * shape[1] * shape[2]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        single = isinstance(rows, int | np.integer)
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.atleast_1d(np.asarray(rows))
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"time index out of range [0, {len(self)}): {rows.min()} .. {rows.max()}")
        out = np.empty((rows.size, *self.shape[1:]), dtype=np.float32)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for i, row in enumerate(rows.tolist()):
                if os.preadv(fd, [memoryview(out[i]).cast("B")], row * self.row_bytes) != self.row_bytes:
                    raise ClimateDataError(f"the cache file {self.path} is truncated; delete its directory")
        finally:
            os.close(fd)
        return out[0] if single else out


@dataclass
class ClimateArchive:
    """The selected fields on HEALPix NEST in the cache directory, read on demand."""

    directory: Path
    fields: StateFile  # [T, N, C] float32, physical units, NaN where not valid
    times: np.ndarray  # [T] datetime64[ns]
    constants: np.ndarray  # [N, K] float32, physical units
    valid: np.ndarray  # [N, C] bool: the pixels that hold values (module docstring, missing values)
    source_valid: np.ndarray  # [C, *source dims] bool: the source points that hold values
    meta: dict  # variables, attrs, constants, layout, nside, source grid, levels, masks, gaps

    @classmethod
    def open(cls, directory: Path) -> ClimateArchive:
        meta = json.loads((directory / "meta.json").read_text())
        arrays = {name: np.load(directory / f"{name}.npy") for name in ("times", "constants", "valid", "source_valid")}
        return cls(directory, StateFile(directory / "fields.f32", meta["shape"]), meta=meta, **arrays)

    @property
    def variables(self) -> list[str]:
        return self.meta["variables"]

    @property
    def nside(self) -> int:
        return self.meta["nside"]

    @property
    def dt(self) -> np.timedelta64:
        return np.timedelta64(self.meta["dt_seconds"], "s")

    @property
    def grid(self) -> SourceGrid:
        return SourceGrid.from_description(self.meta["grid"])


def _fingerprint(files: list[Path]) -> list:
    rows = []
    for path in files:
        stat = path.stat()
        rows.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return rows


def open_archive(source: str, variables: list[str], layout: str, nside: int, cache_dir: str | Path, *,
                 constants: list[str] | None = None, method: str = "bilinear", time_name: str = "",
                 level_name: str = "") -> ClimateArchive:
    """The cached archive of ``variables`` from ``source``, built on first use.

    ``constants`` names time-independent fields (``None``: those of :data:`KNOWN_CONSTANTS`
    that the data hold); ``time_name`` / ``level_name`` name the time and level dimensions
    when they are not recognised by name. The cache is keyed by the files (path, size,
    modification time) and every argument, so a changed file is read again.
    """
    nside = validate_nside(nside)
    if not variables or len(set(variables)) != len(variables):
        raise ClimateDataError(f"task.variables must be distinct names, got {variables}")
    files = source_files(source)
    request = {"files": _fingerprint(files), "variables": list(variables), "constants": constants,
               "layout": layout, "nside": nside, "method": method, "time_name": time_name,
               "level_name": level_name, "version": CACHE_VERSION}
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cache_dir) / f"climate-{key}"
    if not (directory / "meta.json").is_file():
        source_fields = SourceFields.select(open_climate(source), variables, layout, nside, time_name, level_name)
        _build_archive(source_fields, directory, constants, method)
    return ClimateArchive.open(directory)


@dataclass
class SourceFields:
    """The selected variables of a source as lazy ``(time, *grid dims)`` arrays on their common grid."""

    dataset: xr.Dataset
    variables: list[str]
    arrays: list[xr.DataArray]  # [T, *grid dims] each, lazy
    grid: SourceGrid
    time_name: str  # the source's time dimension
    level_name: str  # the level_name setting ("" : recognised by name)
    nside: int

    @classmethod
    def select(cls, ds: xr.Dataset, variables: list[str], layout: str, nside: int, time_name: str = "",
               level_name: str = "") -> SourceFields:
        """Check and select ``variables`` of ``ds`` (ClimateDataError naming what does not fit)."""
        arrays, grid, times = [], None, None
        for name in variables:
            da = select_variable(ds, name, level_name)
            this_time = time_dim(da, time_name)
            if this_time is None:
                raise ClimateDataError(f"variable {name!r} has no time dimension (its dims are {list(da.dims)}; "
                                       f"{_time_hint(time_name)}); forecast variables must vary in time "
                                       "(time-independent fields go under task.constants)")
            if times is not None and this_time != times:
                raise ClimateDataError(f"variable {name!r} has the time dimension {this_time!r}, {variables[0]!r} "
                                       f"has {times!r}; give them one time axis, or name it with task.time_name")
            times = this_time
            this = SourceGrid.of(da, layout, nside)
            extra = sorted(set(map(str, da.dims)) - {times, *this.dims})
            if extra:
                raise ClimateDataError(f"variable {name!r} has the extra dimension(s) {extra}; select one value "
                                       "first (e.g. a level as 'z500'; task.level_name names the level dimension)")
            if grid is not None and not grid.same_as(this):
                raise ClimateDataError(f"variable {name!r} is on another grid than {variables[0]!r} ("
                                       f"{this.dims} vs {grid.dims}, or different coordinates); regrid them to one "
                                       "grid")
            grid = this
            arrays.append(da.transpose(times, *this.dims))
        return cls(ds, list(variables), arrays, grid, times, level_name, nside)

    @property
    def times(self) -> np.ndarray:
        """``[T]`` datetime64[ns]; ClimateDataError when the time coordinate is not dates."""
        times = np.asarray(self.dataset[self.time_name].values)
        if not np.issubdtype(times.dtype, np.datetime64):
            raise ClimateDataError(f"the {self.time_name!r} coordinate is {times.dtype}, not dates; decode it "
                                   "(xarray.open_dataset(..., decode_times=True)) or give it CF units")
        return times.astype("datetime64[ns]")

    def source_masks(self) -> np.ndarray:
        """``[C, *grid]`` bool: the points where each variable holds a value at the first time."""
        return np.stack([np.isfinite(da.isel({self.time_name: 0}).values) for da in self.arrays])

    def read(self, c: int, rows, valid: np.ndarray, method: str) -> Tensor:
        """Variable ``c`` at the time indices ``rows`` on NEST ``[t, N]`` float64 (NaN at invalid pixels),
        after checking that it is missing exactly where ``valid [*grid]`` says."""
        values = self.arrays[c].isel({self.time_name: rows}).values  # [t, *grid], only these rows are read
        _check_values(values, valid, self.variables[c], self.times[rows], self.times[0], self.grid, self.nside)
        return self.grid.to_nest_masked(values, valid, self.nside, method)

    def constant_fields(self, names: list[str] | None, method: str) -> tuple[list[str], np.ndarray]:
        """The constant fields ``names`` (``None``: :func:`known_constants`) on NEST ``[N, K]`` float32."""
        if names is None:
            names = known_constants(self.dataset, self.time_name)
        fields = []
        for name in names:
            da = select_variable(self.dataset, name, self.level_name)
            if self.time_name in da.dims:
                raise ClimateDataError(f"constant field {name!r} has a {self.time_name!r} dimension; drop it "
                                       f"(ds[{name!r}].isel({self.time_name}=0)) if the field does not change")
            if not self.grid.same_as(SourceGrid.of(da, self.grid.layout, self.nside)):
                raise ClimateDataError(f"constant field {name!r} is on another grid than the variables")
            values = da.transpose(*self.grid.dims).values[None]
            _check_values(values, np.ones(values.shape[1:], bool), name, np.array(["(constant)"]), "(constant)",
                          self.grid, self.nside)
            fields.append(self.grid.to_nest(values, self.nside, method)[0].float().numpy())
        return list(names), (np.stack(fields, axis=-1) if fields else np.zeros((npix(self.nside), 0), np.float32))


def known_constants(ds: xr.Dataset, time_name: str = "") -> list[str]:
    """The variables of ``ds`` named like a land-sea mask or orography (:data:`KNOWN_CONSTANTS`), without time."""
    return [str(n) for n in ds.data_vars if str(n).lower() in KNOWN_CONSTANTS and time_dim(ds[n], time_name) is None]


def _check_values(values: np.ndarray, valid: np.ndarray, name: str, times: np.ndarray, first_time, grid: SourceGrid,
                  nside: int) -> None:
    """Refuse Inf in ``values [T, *grid]`` and NaN anywhere but where ``valid [*grid]`` is False
    (missing at the first time ``first_time``), naming the variable, the time and the place."""
    bad = np.isinf(values) | (np.isnan(values) == valid)
    if not bad.any():
        return
    t, flat = divmod(int(np.flatnonzero(bad)[0]), values[0].size)
    value = values.reshape(len(values), -1)[t, flat]
    where = f"at time {times[t]}, {grid.place(flat, nside)} ({int(bad.sum())} such values in this chunk)"
    if np.isinf(value) or str(first_time) == "(constant)":
        raise ClimateDataError(f"variable {name!r} is {value} {where}; fill or mask it (NaN) before training")
    if np.isnan(value):
        raise ClimateDataError(f"variable {name!r} is {value} {where} but has a value there at {first_time}; missing "
                               "values must stay at the same points at every time (a fixed mask such as land): fill "
                               "them, or drop the times they differ at")
    raise ClimateDataError(f"variable {name!r} is {value} {where} but missing (NaN) there at {first_time}; missing "
                           "values must stay at the same points at every time (a fixed mask such as land): fill them, "
                           "or drop the times they differ at")


def _build_archive(source: SourceFields, directory: Path, constants: list[str] | None, method: str) -> None:
    times, grid, nside = source.times, source.grid, source.nside
    dt = check_time_axis(times)
    constant_names, constant_values = source.constant_fields(constants, method)
    source_valid = source.source_masks()  # [C, *grid]
    for c, name in enumerate(source.variables):
        if not source_valid[c].any():
            raise ClimateDataError(f"variable {name!r} is missing (NaN) everywhere at {times[0]}; fill it or drop "
                                   "that time")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    try:
        per_chunk = max(1, CHUNK_BYTES // (8 * int(source_valid[0].size)))
        with open(staging / "fields.f32", "wb") as out:
            for start in range(0, times.size, per_chunk):
                rows = slice(start, min(times.size, start + per_chunk))
                chunk = np.empty((rows.stop - start, npix(nside), len(source.arrays)), dtype=np.float32)  # [t, N, C]
                for c in range(len(source.arrays)):
                    chunk[:, :, c] = source.read(c, rows, source_valid[c], method).float().numpy()
                out.write(chunk.tobytes())
            out.flush()
            os.fsync(out.fileno())
        valid = np.stack([grid.coverage(v, nside, method).numpy() for v in source_valid], axis=-1)  # [N, C]
        arrays = {"times": times, "constants": constant_values, "valid": valid, "source_valid": source_valid}
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array)
        meta = {
            "variables": list(source.variables), "shape": [times.size, npix(nside), len(source.arrays)],
            "constants": constant_names, "layout": grid.layout, "nside": nside,
            "dt_seconds": int(dt / np.timedelta64(1, "s")), "method": method, "time_name": source.time_name,
            "attrs": {name: {k: _plain(v) for k, v in da.attrs.items()}
                      for name, da in zip(source.variables, source.arrays, strict=True)},
            "grid": grid.describe(),
            "masks": {name: {"source_points": int((~source_valid[c]).sum()), "pixels": int((~valid[:, c]).sum())}
                      for c, name in enumerate(source.variables) if not valid[:, c].all()},
            "gaps": [[str(a), str(b)] for a, b in time_gaps(times, dt)],
        }
        (staging / "meta.json").write_text(json.dumps(meta))
        _publish(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, directory: Path) -> None:
    """Rename the built ``staging`` folder to ``directory``. If another process built the same
    archive meanwhile (the same key: the same files and settings), the rename finds ``directory``
    complete and this build is dropped in favour of it."""
    try:
        os.replace(staging, directory)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not (directory / "meta.json").is_file():
            raise


def _plain(value):
    """An attribute value as JSON: numpy scalars and arrays become Python numbers and lists."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


# ------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class TrainingStatistics:
    """Per-channel mean and standard deviation over the valid pixels and the per-pixel time
    mean (the climatology of the ACC; NaN at invalid pixels) of the training split, physical units."""

    mean: Tensor  # [C]
    std: Tensor  # [C]
    climatology: Tensor  # [N, C]

    @classmethod
    def of(cls, archive: ClimateArchive, times: np.ndarray) -> TrainingStatistics:
        """Streamed over the archive's time indices ``times`` in chunks, in float64."""
        valid = torch.from_numpy(archive.valid)  # [N, C]
        total = torch.zeros(archive.fields.shape[1:], dtype=torch.float64)  # [N, C]
        squares = torch.zeros(archive.fields.shape[2], dtype=torch.float64)  # [C]
        per_chunk = max(1, CHUNK_BYTES // (8 * archive.fields[0].size))
        for start in range(0, times.size, per_chunk):
            chunk = torch.from_numpy(archive.fields[np.sort(times[start : start + per_chunk])]).double()  # [t, N, C]
            chunk = torch.where(valid, chunk, 0.0)
            total += chunk.sum(0)
            squares += (chunk**2).sum((0, 1))
        climatology = torch.where(valid, total / times.size, math.nan)
        count = times.size * valid.sum(0)  # [C]
        mean = total.sum(0) / count
        std = torch.sqrt((squares / count - mean**2).clamp_min(0))
        if (std == 0).any():
            flat = [archive.variables[c] for c in (std == 0).nonzero()[:, 0].tolist()]
            raise ClimateDataError(f"variable(s) {flat} are constant over the training split; drop them from "
                                   "task.variables (or list them under task.constants)")
        return cls(mean.float(), std.float(), climatology.float())

    def normalisation(self, valid: np.ndarray) -> Normalisation:
        """The model's units: states standardised per variable, increments in the same units
        (σ_Δ = σ), ``valid [N, C]`` the pixels that hold data."""
        return Normalisation(self.mean, self.std, self.std, torch.from_numpy(np.asarray(valid, dtype=bool)))


# -------------------------------------------------------------------------- forcings


def forcings(times: np.ndarray, lat: Tensor, lon: Tensor) -> Tensor:
    """Analytic forcings at ``times [S]`` (datetime64) and pixels ``lat, lon [N]`` (radians), ``[S, N, 5]``.

    With the day of the year d (fractional, from 0 on 1 January) and the UTC hour u:

        declination      δ = -23.44° cos(2π (d + 10) / 365.25),
        hour angle       h = 2π u / 24 + λ - π,
        cos(zenith)      μ = sin φ sin δ + cos φ cos δ cos h,
        toa_insolation     = (1 + 0.033 cos(2π d / 365.25)) max(μ, 0)   (in units of the solar constant),

    then sin / cos of 2π u / 24 (time of day) and of 2π d / 365.25 (day of year), the same
    at every pixel.
    """
    times = np.asarray(times, dtype="datetime64[ns]")
    day = (times - times.astype("datetime64[Y]")) / np.timedelta64(1, "D")  # [S]
    hour = (times - times.astype("datetime64[D]")) / np.timedelta64(1, "h")  # [S]
    year_angle = torch.from_numpy(2 * np.pi * day / 365.25)[:, None]  # [S, 1] float64
    day_angle = torch.from_numpy(2 * np.pi * hour / 24)[:, None]
    declination = -math.radians(23.44) * torch.cos(year_angle + 2 * math.pi * 10 / 365.25)
    lat, lon = lat.double()[None], lon.double()[None]  # [1, N]
    # cos(h) = cos(u' + λ) with u' = 2π u / 24 - π, expanded so that only [S, 1] and [1, N] go through trig
    hour_angle = day_angle - math.pi
    cos_hour = torch.cos(hour_angle) * torch.cos(lon) - torch.sin(hour_angle) * torch.sin(lon)  # [S, N]
    cos_zenith = torch.sin(lat) * torch.sin(declination) + torch.cos(lat) * torch.cos(declination) * cos_hour
    out = torch.empty(len(times), lat.shape[1], len(FORCINGS))  # [S, N, 5] float32
    out[..., 0] = (1 + 0.033 * torch.cos(year_angle)) * cos_zenith.clamp_min(0)
    out[..., 1:] = torch.cat([torch.sin(day_angle), torch.cos(day_angle), torch.sin(year_angle),
                              torch.cos(year_angle)], dim=-1)[:, None]  # the same at every pixel
    return out


def pixel_latlon(nside: int) -> tuple[Tensor, Tensor]:
    """Latitude and longitude (radians) of the NEST pixel centres, ``[N]`` each."""
    xyz = pixel_vectors(nside)  # [N, 3]
    return torch.asin(xyz[:, 2].clamp(-1, 1)), torch.atan2(xyz[:, 1], xyz[:, 0])


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class Window:
    """``inputs`` states in, ``outputs`` states out per step, ``stride`` archive steps apart."""

    inputs: int
    outputs: int
    stride: int

    def offsets(self, steps: int) -> np.ndarray:
        """Archive offsets from the init time of the input states and of ``steps`` steps of outputs."""
        return self.stride * np.arange(1 - self.inputs, steps * self.outputs + 1)  # [T_in + steps T_out]


def window(archive: ClimateArchive, inputs: int, outputs: int, dt_hours: float) -> Window:
    """The :class:`Window` of ``dt_hours`` steps on ``archive``; ``dt_hours`` must be a multiple of its spacing."""
    if inputs < 1 or outputs < 1:
        raise ClimateDataError(f"task.input_steps and task.output_steps must be >= 1, got {inputs}, {outputs}")
    data_hours = _hours(archive.dt)
    stride = dt_hours / data_hours
    if stride < 1 or abs(stride - round(stride)) > 1e-9:
        raise ClimateDataError(f"task.dt_hours = {dt_hours:g} is not a multiple of the data's {data_hours:g} h "
                               "spacing; pick a multiple")
    return Window(inputs, outputs, int(round(stride)))


@dataclass(frozen=True)
class Split:
    """The archive indices of a split's init times, and how many windows of its dates crossed a gap."""

    inits: np.ndarray  # [S] int64
    crossing_gaps: int


def split_inits(archive: ClimateArchive, win: Window, steps: int, start: str, end: str, name: str) -> Split:
    """The init times whose whole sample (inputs and ``steps`` steps of outputs, ``dt`` apart)
    lies in the dates ``[start, end]``; windows that cross a gap of the time axis are dropped
    and counted. ClimateDataError when none is left."""
    first, last = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    if len(str(end)) == len("YYYY-MM-DD"):  # a bare date includes its whole day
        last += np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    offsets = win.offsets(steps)
    inits = np.arange(-offsets[0], len(archive.times) - offsets[-1])
    if inits.size:
        inside = (archive.times[inits + offsets[0]] >= first) & (archive.times[inits + offsets[-1]] <= last)
        inits = inits[inside]
    elapsed = archive.times[inits[:, None] + offsets] - archive.times[inits][:, None]  # [S, T_in + steps T_out]
    complete = (elapsed == offsets * archive.dt).all(axis=1)
    dropped = int((~complete).sum())
    inits = inits[complete]
    if not inits.size:
        span = _hours(archive.dt) * (offsets[-1] - offsets[0])
        gaps = f" ({dropped} cross a gap in the time axis)" if dropped else ""
        raise ClimateDataError(f"the {name} split [{start}, {end}] holds no complete sample of {span:g} h{gaps} within "
                               f"the data's {archive.times[0]} .. {archive.times[-1]}; widen task.{name}")
    return Split(inits, dropped)


def standardised_constants(constants: np.ndarray) -> Tensor:
    """Constant fields ``[N, K]`` standardised over the sphere (each to mean 0, std 1), float32."""
    constants = torch.from_numpy(np.asarray(constants, dtype=np.float32))  # [N, K]
    if not constants.shape[1]:
        return constants
    return (constants - constants.mean(0)) / constants.std(0).clamp_min(torch.finfo(torch.float32).tiny)


def forcing_fields(init_times: np.ndarray, step: np.timedelta64, outputs: int, steps: int, lat: Tensor,
                   lon: Tensor) -> Tensor:
    """The forcings ``[B, steps, outputs, N, F]`` at the ``steps x outputs`` valid times ``step``
    apart after each of ``init_times [B]``, at the pixels ``lat, lon [N]``."""
    valid = np.asarray(init_times)[:, None] + step * np.arange(1, steps * outputs + 1)  # [B, S T_out]
    return forcings(valid.reshape(-1), lat, lon).reshape(len(valid), steps, outputs, len(lat), len(FORCINGS))


class ForecastSamples:
    """Forecast samples at the init indices ``inits`` of ``archive``, read lazily by batch, in
    the units ``normalisation`` of the model they train.

    Implements the batch protocol of :mod:`geounet.data.samples` (``len``, ``batch``, ``to``)
    with the structured batches of :mod:`geounet.data.forecast_samples` (module docstring).
    """

    def __init__(self, archive: ClimateArchive, hierarchy: Hierarchy, normalisation: Normalisation, win: Window,
                 inits: np.ndarray, steps: int) -> None:
        self.archive, self.hierarchy, self.normalisation, self.window = archive, hierarchy, normalisation, win
        self.inits, self.steps = np.asarray(inits, dtype=np.int64), steps
        self.lat, self.lon = pixel_latlon(archive.nside)
        self.constants = standardised_constants(archive.constants)  # [N, K]

    def __len__(self) -> int:
        return len(self.inits)

    def to(self, device: torch.device | str) -> ForecastSamples:
        moved = object.__new__(ForecastSamples)
        moved.__dict__.update(self.__dict__, hierarchy=self.hierarchy.to(device))
        return moved

    def times(self, index: int) -> np.ndarray:
        """The valid times of sample ``index``: inputs then outputs, ``[T_in + steps T_out]``."""
        return self.archive.times[self.inits[index] + self.window.offsets(self.steps)]

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The archive's time indices of samples ``indices``, ``[B, T_in + steps T_out]``."""
        return self.inits[np.asarray(indices, dtype=np.int64).reshape(-1)][:, None] + self.window.offsets(self.steps)

    def states(self, indices: np.ndarray) -> Tensor:
        """Physical states of samples ``indices``, ``[B, T_in + steps T_out, N, C]`` (NaN at invalid pixels)."""
        rows = self.rows(indices)  # [B, T]
        unique, inverse = np.unique(rows, return_inverse=True)
        return torch.from_numpy(self.archive.fields[unique])[torch.from_numpy(inverse.reshape(rows.shape))]

    def batch(self, indices: Tensor | np.ndarray) -> Batch:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        init_times = self.archive.times[self.inits[indices]]
        forcing = forcing_fields(init_times, self.archive.dt * self.window.stride, self.window.outputs, self.steps,
                                 self.lat, self.lon)  # [B, S, T_out, N, F]
        return forecast_batch(self.states(indices), forcing, self.constants, self.window.inputs, self.normalisation,
                              self.hierarchy)
