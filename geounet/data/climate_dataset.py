"""The user's climate data as forecast samples on HEALPix: lazy reading, one cache, time windows.

A source is a netCDF file, a zarr store or a glob of netCDF files, opened lazily with
xarray + dask (:func:`open_climate`). ``variables`` name surface fields (``"t2m"``) or
one level of a field with a level dimension (``"z500"`` = ``z`` at level 500). The
spatial layout is stated, never guessed: ``"latlon"`` (``lat``/``latitude`` and
``lon``/``longitude`` dimensions, regridded to HEALPix NEST at ``nside``), or a
HEALPix ordering of :mod:`geounet.geometry.healpix` (``"nest"`` / ``"ring"`` with a
``pixel`` dimension, a face layout such as ``"face"`` with ``(face, height, width)``).

The selected fields are streamed once, a few time steps at a time (only those are ever
in memory), through the checks below, converted to NEST and written to an on-disk
cache ``fields.f32 [T, N, C]`` float32 that training reads row by row (:class:`StateFile`,
:class:`ClimateArchive`). Peak memory therefore does not grow with the data set's length.

Every defect of the input is a :class:`ClimateDataError` naming it and the fix: a
missing variable or level, grids that differ between variables or from ``nside``, an
ordering that does not fit the file's dimensions, NaN (naming the variable, the time and
the place) and gaps or disorder in the time axis.

Samples (:class:`ForecastSamples`) follow DLWP: ``T_in`` consecutive states
``x_{t-T_in+1} .. x_t`` (step ``dt``) go in, ``k`` autoregressive steps of ``T_out``
states each come out. In normalised units (``(x - μ_c) / σ_c`` per channel, statistics of
the training split) a sample is

    inputs  [N, T_in C + k T_out F + K]   the input window, the forcings at the valid times of
                                          every output state, the constant fields;
    targets [N, k T_out C]                the k T_out states after t.

The ``F = 5`` forcings are analytic functions of the valid time and position
(:func:`forcings`); the ``K`` constant fields (land-sea mask, orography, ...) are
standardised over the sphere.
"""

from __future__ import annotations

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

import healpy
import numpy as np
import torch
import xarray as xr
from torch import Tensor

from geounet.data.climate_io import PIXEL_DIM, find_latlon, healpix_dims
from geounet.data.samples import Batch
from geounet.errors import GeounetError, MissingFileError
from geounet.functional.regrid import latlon_to_healpix
from geounet.geometry.healpix import ORDERINGS, from_nest, npix, pixel_vectors, to_nest, validate_nside
from geounet.hierarchy.base import Hierarchy

LAYOUTS = ("latlon", *ORDERINGS)
LEVEL_DIMS = ("level", "plev", "pressure_level", "isobaricinhpa", "lev")
TIME_DIM = "time"
FORCINGS = ("toa_insolation", "sin_time_of_day", "cos_time_of_day", "sin_day_of_year", "cos_day_of_year")
#: about this many bytes of float64 source data are read per chunk when the cache is built
CHUNK_BYTES = 16 * 2**20
CACHE_VERSION = 2


class ClimateDataError(GeounetError):
    """The climate data do not fit the request (variables, grid, ordering, values, time axis)."""


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


def _level_dim(da: xr.DataArray) -> str | None:
    matches = [d for d in da.dims if str(d).lower() in LEVEL_DIMS]
    return matches[0] if matches else None


def select_variable(ds: xr.Dataset, name: str) -> xr.DataArray:
    """``ds[name]``, or for ``"<var><level>"`` (e.g. ``"z500"``) ``ds[var]`` at that level."""
    if name in ds.data_vars:
        return ds[name]
    match = re.fullmatch(r"(.*?)(\d+(?:\.\d+)?)", name)
    if match and match[1] in ds.data_vars:
        da = ds[match[1]]
        level_dim = _level_dim(da)
        if level_dim is not None:
            levels = np.asarray(da[level_dim].values, dtype=np.float64)
            hits = np.flatnonzero(np.isclose(levels, float(match[2])))
            if hits.size == 1:
                picked = da.isel({level_dim: int(hits[0])}, drop=True)
                picked.attrs = {**da.attrs, "level": float(match[2]), "level_dim": str(level_dim)}
                return picked.rename(name)
            raise ClimateDataError(f"variable {match[1]!r} has no level {match[2]} for {name!r}; its "
                                   f"{level_dim} values are {levels.tolist()}")
    available = []
    for var, da in ds.data_vars.items():
        level_dim = _level_dim(da)
        available.append(f"{var}<level> (levels {np.asarray(da[level_dim].values).tolist()})" if level_dim else var)
    raise ClimateDataError(f"variable {name!r} is not in the data; available: {', '.join(available)}; fix "
                           "task.variables")


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class SourceGrid:
    """The spatial layout of the source: its dims, and lat/lon values for ``"latlon"``."""

    layout: str
    dims: tuple[str, ...]
    lat: np.ndarray | None = None  # [H] as in the file (latlon only)
    lon: np.ndarray | None = None  # [W]

    @classmethod
    def of(cls, da: xr.DataArray, layout: str, nside: int) -> SourceGrid:
        """The grid of ``da`` in ``layout``; ClimateDataError when the dims do not fit."""
        if layout not in LAYOUTS:
            raise ClimateDataError(f"task.layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "latlon":
            try:
                lat_dim, lon_dim = find_latlon(da)
            except ValueError as error:
                raise ClimateDataError(f"variable {da.name!r}: {error}; or, for HEALPix data, set task.layout "
                                       "to its ordering") from error
            return cls(layout, (lat_dim, lon_dim), np.asarray(da[lat_dim].values, dtype=np.float64),
                       np.asarray(da[lon_dim].values, dtype=np.float64))
        dims = healpix_dims(layout)
        stored = da.attrs.get("healpix_order")
        if stored is not None and stored != layout:
            raise ClimateDataError(f"variable {da.name!r} says healpix_order={stored!r} but task.layout is "
                                   f"{layout!r}; set task.layout = {stored!r}")
        if not set(dims) <= set(da.dims):
            hint = ("(face, height, width) dims mean a face layout such as 'face'" if set(healpix_dims("face"))
                    <= set(da.dims) else f"a {PIXEL_DIM!r} dim means 'nest' or 'ring'" if PIXEL_DIM in da.dims
                    else "rename the pixel dimension(s)")
            raise ClimateDataError(f"task.layout {layout!r} keeps pixels in the dims {dims}, but variable "
                                   f"{da.name!r} has dims {list(da.dims)}; {hint}")
        expected = (12, nside, nside) if len(dims) == 3 else (npix(nside),)
        shape = tuple(da.sizes[d] for d in dims)
        if shape != expected:
            raise ClimateDataError(f"variable {da.name!r} has {dict(zip(dims, shape, strict=True))}, which is not "
                                   f"HEALPix nside {nside} in {layout!r} order (expected {expected}); set "
                                   "task.nside to the file's nside")
        return cls(layout, dims)

    def same_as(self, other: SourceGrid) -> bool:
        if self.dims != other.dims:
            return False
        return self.lat is None or (np.array_equal(self.lat, other.lat) and np.array_equal(self.lon, other.lon))

    def place(self, flat_index: int, nside: int) -> str:
        """Where the source point ``flat_index`` (row-major over ``dims``) lies, in words."""
        if self.lat is not None:
            i, j = divmod(flat_index, self.lon.size)
            return f"latitude {self.lat[i]:g}, longitude {self.lon[j]:g}"
        nest = _nest_index(flat_index, self.layout, nside)
        theta, phi = healpy.pix2ang(nside, nest, nest=True)
        return (f"{self.layout} pixel {flat_index} (latitude {90 - math.degrees(theta):.3g}, "
                f"longitude {math.degrees(phi):.3g})")

    def to_nest(self, values: np.ndarray, nside: int, method: str) -> Tensor:
        """Source values ``[T, *dims]`` -> NEST ``[T, N]`` float64."""
        data = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
        if self.lat is not None:
            return latlon_to_healpix(data, self.lat, self.lon, nside, method=method)
        return to_nest(data, self.layout)


def _nest_index(flat_index: int, layout: str, nside: int) -> int:
    """The NEST index of the pixel at row-major position ``flat_index`` of a map in ``layout``."""
    ids = from_nest(torch.arange(npix(nside)), layout).reshape(-1)
    return int(ids[flat_index])


# --------------------------------------------------------------------------- time axis


def check_time_axis(times: np.ndarray) -> np.timedelta64:
    """The spacing of ``times`` (datetime64 ``[T]``); ClimateDataError on disorder, duplicates or gaps."""
    if times.size < 2:
        raise ClimateDataError(f"the data hold {times.size} time step(s); forecasting needs a time series")
    steps = np.diff(times)
    disorder = np.flatnonzero(steps <= np.timedelta64(0))
    if disorder.size:
        i = int(disorder[0])
        raise ClimateDataError(f"the time axis is not strictly increasing ({times[i]} is followed by {times[i + 1]}); "
                               "sort it (ds.sortby('time')) and drop duplicated times")
    dt = steps.min()
    gaps = np.flatnonzero(steps != dt)
    if gaps.size:
        i = int(gaps[0])
        raise ClimateDataError(f"the time axis has {gaps.size} gap(s) in its {_hours(dt):g} h spacing (first: "
                               f"{times[i]} -> {times[i + 1]}); fill them or restrict the data to a gap-free period")
    return dt


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
    fields: StateFile  # [T, N, C] float32, physical units
    times: np.ndarray  # [T] datetime64[ns]
    constants: np.ndarray  # [N, K] float32, physical units
    meta: dict  # variables, units, long_names, constants, layout, nside, source grid

    @classmethod
    def open(cls, directory: Path) -> ClimateArchive:
        meta = json.loads((directory / "meta.json").read_text())
        return cls(directory, StateFile(directory / "fields.f32", meta["shape"]), np.load(directory / "times.npy"),
                   np.load(directory / "constants.npy"), meta)

    @property
    def variables(self) -> list[str]:
        return self.meta["variables"]

    @property
    def nside(self) -> int:
        return self.meta["nside"]

    @property
    def dt(self) -> np.timedelta64:
        return np.timedelta64(self.meta["dt_seconds"], "s")


def _fingerprint(files: list[Path]) -> list:
    rows = []
    for path in files:
        stat = path.stat()
        rows.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return rows


def open_archive(source: str, variables: list[str], layout: str, nside: int, cache_dir: str | Path, *,
                 constants: list[str] | None = None, method: str = "bilinear") -> ClimateArchive:
    """The cached archive of ``variables`` from ``source``, built on first use.

    ``constants`` names time-independent fields (``None``: those of :data:`KNOWN_CONSTANTS`
    that the data hold). The cache is keyed by the files (path, size, modification time)
    and every argument, so a changed file is read again.
    """
    nside = validate_nside(nside)
    if not variables or len(set(variables)) != len(variables):
        raise ClimateDataError(f"task.variables must be distinct names, got {variables}")
    files = source_files(source)
    request = {"files": _fingerprint(files), "variables": list(variables), "constants": constants,
               "layout": layout, "nside": nside, "method": method, "version": CACHE_VERSION}
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    directory = Path(cache_dir) / f"climate-{key}"
    if not (directory / "meta.json").is_file():
        _build_archive(open_climate(source), variables, layout, nside, directory, constants, method)
    return ClimateArchive.open(directory)


def _checked_fields(ds: xr.Dataset, variables: list[str], layout: str, nside: int):
    """The selected variables as ``(time, *grid dims)`` arrays, with their common grid."""
    arrays, grid = [], None
    for name in variables:
        da = select_variable(ds, name)
        if TIME_DIM not in da.dims:
            raise ClimateDataError(f"variable {name!r} has no {TIME_DIM!r} dimension (dims {list(da.dims)}); "
                                   "forecast variables must vary in time (list constant fields under task.constants)")
        this = SourceGrid.of(da, layout, nside)
        extra = sorted(set(map(str, da.dims)) - {TIME_DIM, *this.dims})
        if extra:
            raise ClimateDataError(f"variable {name!r} has the extra dimension(s) {extra}; select one value first "
                                   "(e.g. a level as 'z500')")
        if grid is not None and not grid.same_as(this):
            raise ClimateDataError(f"variable {name!r} is on another grid than {variables[0]!r} "
                                   f"({this.dims} vs {grid.dims}, or different coordinates); regrid them to one grid")
        grid = this
        arrays.append(da.transpose(TIME_DIM, *this.dims))
    return arrays, grid


def known_constants(ds: xr.Dataset) -> list[str]:
    """The variables of ``ds`` named like a land-sea mask or orography (:data:`KNOWN_CONSTANTS`), without time."""
    return [str(n) for n in ds.data_vars if str(n).lower() in KNOWN_CONSTANTS and TIME_DIM not in ds[n].dims]


def _constant_fields(ds: xr.Dataset, names: list[str] | None, grid: SourceGrid, nside: int, method: str):
    if names is None:
        names = known_constants(ds)
    fields = []
    for name in names:
        da = select_variable(ds, name)
        if TIME_DIM in da.dims:
            raise ClimateDataError(f"constant field {name!r} has a {TIME_DIM!r} dimension; drop it "
                                   f"(ds[{name!r}].isel(time=0)) if the field does not change")
        if not grid.same_as(SourceGrid.of(da, grid.layout, nside)):
            raise ClimateDataError(f"constant field {name!r} is on another grid than the variables")
        values = da.transpose(*grid.dims).values[None]
        _check_values(values, name, np.array(["(constant)"]), grid, nside)
        fields.append(grid.to_nest(values, nside, method)[0].float().numpy())
    return list(names), (np.stack(fields, axis=-1) if fields else np.zeros((npix(nside), 0), np.float32))


def _check_values(values: np.ndarray, name: str, times: np.ndarray, grid: SourceGrid, nside: int) -> None:
    """Refuse NaN / Inf in ``values [T, *grid]``, naming the variable, the time and the place."""
    finite = np.isfinite(values)
    if not finite.all():
        t, flat = divmod(int(np.flatnonzero(~finite)[0]), values[0].size)
        raise ClimateDataError(f"variable {name!r} is {values.reshape(len(values), -1)[t, flat]} at time {times[t]}, "
                               f"{grid.place(flat, nside)} ({int((~finite).sum())} such values in this chunk); "
                               "fill or mask them before training")


def _build_archive(ds: xr.Dataset, variables: list[str], layout: str, nside: int, directory: Path,
                   constants: list[str] | None, method: str) -> None:
    arrays, grid = _checked_fields(ds, variables, layout, nside)
    times = np.asarray(ds[TIME_DIM].values)
    if not np.issubdtype(times.dtype, np.datetime64):
        raise ClimateDataError(f"the {TIME_DIM!r} coordinate is {times.dtype}, not dates; decode it "
                               "(xarray.open_dataset(..., decode_times=True)) or give it CF units")
    dt = check_time_axis(times)
    constant_names, constant_values = _constant_fields(ds, constants, grid, nside, method)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=directory.name + ".", dir=directory.parent))
    try:
        per_chunk = max(1, CHUNK_BYTES // (8 * int(np.prod([arrays[0].sizes[d] for d in grid.dims]))))
        with open(staging / "fields.f32", "wb") as out:
            for start in range(0, times.size, per_chunk):
                stop = min(times.size, start + per_chunk)
                chunk = np.empty((stop - start, npix(nside), len(arrays)), dtype=np.float32)  # [t, N, C]
                for c, da in enumerate(arrays):
                    values = da.isel({TIME_DIM: slice(start, stop)}).values  # only this chunk is read
                    _check_values(values, variables[c], times[start:stop], grid, nside)
                    chunk[:, :, c] = grid.to_nest(values, nside, method).float().numpy()
                out.write(chunk.tobytes())
            out.flush()
            os.fsync(out.fileno())
        np.save(staging / "times.npy", times.astype("datetime64[ns]"))
        np.save(staging / "constants.npy", constant_values)
        meta = {
            "variables": list(variables), "shape": [times.size, npix(nside), len(arrays)],
            "constants": constant_names, "layout": layout, "nside": nside,
            "dt_seconds": int(dt / np.timedelta64(1, "s")), "method": method,
            "attrs": {name: {k: _plain(v) for k, v in da.attrs.items()} for name, da in zip(variables, arrays,
                                                                                          strict=True)},
            "grid": None if grid.lat is None else {"lat_name": grid.dims[0], "lon_name": grid.dims[1],
                                                    "lat": grid.lat.tolist(), "lon": grid.lon.tolist()},
        }
        (staging / "meta.json").write_text(json.dumps(meta))
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _plain(value):
    """An attribute value as JSON: numpy scalars and arrays become Python numbers and lists."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


# ------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class TrainingStatistics:
    """Per-channel mean and standard deviation and the per-pixel time mean (the climatology
    of the ACC) of the training split, physical units."""

    mean: Tensor  # [C]
    std: Tensor  # [C]
    climatology: Tensor  # [N, C]

    @classmethod
    def of(cls, archive: ClimateArchive, times: np.ndarray) -> TrainingStatistics:
        """Streamed over the archive's time indices ``times`` in chunks, in float64."""
        total = torch.zeros(archive.fields.shape[1:], dtype=torch.float64)  # [N, C]
        squares = torch.zeros(archive.fields.shape[2], dtype=torch.float64)  # [C]
        per_chunk = max(1, CHUNK_BYTES // (8 * archive.fields[0].size))
        for start in range(0, times.size, per_chunk):
            chunk = torch.from_numpy(archive.fields[np.sort(times[start : start + per_chunk])]).double()  # [t, N, C]
            total += chunk.sum(0)
            squares += (chunk**2).sum((0, 1))
        climatology = total / times.size
        count = times.size * total.shape[0]
        mean = total.sum(0) / count
        std = torch.sqrt((squares / count - mean**2).clamp_min(0))
        if (std == 0).any():
            flat = [archive.variables[c] for c in (std == 0).nonzero()[:, 0].tolist()]
            raise ClimateDataError(f"variable(s) {flat} are constant over the training split; drop them from "
                                   "task.variables (or list them under task.constants)")
        return cls(mean.float(), std.float(), climatology.float())


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


def split_inits(archive: ClimateArchive, win: Window, steps: int, start: str, end: str, name: str) -> np.ndarray:
    """Archive indices of the init times whose whole sample (inputs and ``steps`` steps of
    outputs) lies in the dates ``[start, end]``; ClimateDataError when there is none."""
    first, last = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    if len(str(end)) == len("YYYY-MM-DD"):  # a bare date includes its whole day
        last += np.timedelta64(1, "D") - np.timedelta64(1, "ns")
    offsets = win.offsets(steps)
    inits = np.arange(-offsets[0], len(archive.times) - offsets[-1])
    if inits.size:
        inside = (archive.times[inits + offsets[0]] >= first) & (archive.times[inits + offsets[-1]] <= last)
        inits = inits[inside]
    if not inits.size:
        span = _hours(archive.dt) * (offsets[-1] - offsets[0])
        raise ClimateDataError(f"the {name} split [{start}, {end}] holds no complete sample of {span:g} h within the "
                               f"data's {archive.times[0]} .. {archive.times[-1]}; widen task.{name}")
    return inits


class ForecastSamples:
    """Forecast samples at the init indices ``inits`` of ``archive``, read lazily by batch.

    Implements the batch protocol of :mod:`geounet.data.samples` (``len``, ``batch``, ``to``);
    see the module docstring for the layout of inputs and targets.
    """

    def __init__(self, archive: ClimateArchive, hierarchy: Hierarchy, stats: TrainingStatistics, win: Window,
                 inits: np.ndarray, steps: int) -> None:
        self.archive, self.hierarchy, self.stats, self.window = archive, hierarchy, stats, win
        self.inits, self.steps = np.asarray(inits, dtype=np.int64), steps
        lat, lon = pixel_latlon(archive.nside)
        self.lat, self.lon = lat, lon
        constants = torch.from_numpy(np.asarray(archive.constants, dtype=np.float32))  # [N, K]
        if constants.shape[1]:
            constants = (constants - constants.mean(0)) / constants.std(0).clamp_min(torch.finfo(torch.float32).tiny)
        self.constants = constants  # [N, K], standardised over the sphere

    def __len__(self) -> int:
        return len(self.inits)

    def to(self, device: torch.device | str) -> ForecastSamples:
        moved = object.__new__(ForecastSamples)
        moved.__dict__.update(self.__dict__, hierarchy=self.hierarchy.to(device))
        return moved

    def times(self, index: int) -> np.ndarray:
        """The valid times of sample ``index``: inputs then outputs, ``[T_in + steps T_out]``."""
        return self.archive.times[self.inits[index] + self.window.offsets(self.steps)]

    def states(self, indices: np.ndarray) -> Tensor:
        """Physical states of samples ``indices``, ``[B, T_in + steps T_out, N, C]``."""
        rows = self.inits[indices][:, None] + self.window.offsets(self.steps)[None]  # [B, T]
        unique, inverse = np.unique(rows, return_inverse=True)
        return torch.from_numpy(self.archive.fields[unique])[torch.from_numpy(inverse.reshape(rows.shape))]

    def model_inputs(self, states: Tensor, init_times: np.ndarray, steps: int) -> Tensor:
        """Model inputs from the physical input states ``[B, T_in, N, C]`` at init times ``[B]``."""
        b, t_in, n, c = states.shape
        state = ((states - self.stats.mean) / self.stats.std).permute(0, 2, 1, 3).reshape(b, n, t_in * c)
        dt = self.archive.dt * self.window.stride
        valid = np.asarray(init_times)[:, None] + dt * np.arange(1, steps * self.window.outputs + 1)  # [B, S T_out]
        forcing = forcings(valid.reshape(-1), self.lat, self.lon).reshape(b, -1, n, len(FORCINGS))
        forcing = forcing.permute(0, 2, 1, 3).reshape(b, n, -1)  # [B, N, S T_out F]
        return torch.cat([state, forcing, self.constants.expand(b, -1, -1)], dim=-1)

    def batch(self, indices: Tensor | np.ndarray) -> Batch:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        states = self.states(indices)  # [B, T, N, C]
        t_in = self.window.inputs
        init_times = self.archive.times[self.inits[indices]]
        targets = ((states[:, t_in:] - self.stats.mean) / self.stats.std).permute(0, 2, 1, 3)
        return Batch(self.model_inputs(states[:, :t_in], init_times, self.steps),
                     targets.reshape(len(indices), states.shape[2], -1), self.hierarchy)
