"""xarray front end for lat-lon <-> HEALPix regridding of climate data (netCDF, zarr).

Dimensions are found by name only, case-insensitively, by one routine (:func:`find_dim`)
that every front end of geounet shares: latitude ``lat`` / ``latitude``, longitude ``lon``
/ ``longitude``, time ``time`` / ``valid_time`` (the new-CDS ERA5 name) and pressure level
``level`` / ``pressure_level`` / ``plev`` / ``isobaricInhPa`` / ``lev`` (ERA5, CMIP and
GRIB names); anything else raises with the rename (or the setting naming the dimension)
that fixes it. Latitude may ascend or descend and longitude use 0..360 or -180..180; the
values are used as given (see :mod:`geounet.functional.regrid`). Every other dimension
(time, level, member, ...) is kept and moved in front of the spatial one(s), in its
original order. HEALPix results carry the dimension ``pixel`` ("nest" / "ring") or
``(face, height, width)`` (the face layouts of :mod:`geounet.geometry.healpix`, e.g.
"face" as in DLWP-HEALPix files) and the attributes ``healpix_nside`` and
``healpix_order``; the ordering is always an explicit argument and must agree with
``healpix_order`` when that attribute is present.

Dask-backed variables (``open_dataset(..., chunks=...)`` or ``.chunk()``) stay lazy:
each chunk of the non-spatial dimensions is regridded on its own when computed, and
the spatial dimensions are merged into one chunk first.

    ds = xarray.open_dataset("era5.nc")                    # (time, level, latitude, longitude)
    hp = latlon_to_healpix_xr(ds, nside=64)                # (time, level, pixel), NEST
    back = healpix_to_latlon_xr(hp, ds.latitude, ds.longitude, ordering="nest")
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from geounet.errors import GeounetError
from geounet.functional.regrid import healpix_to_latlon, latlon_to_healpix
from geounet.geometry.healpix import is_face_layout, validate_nside

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")
TIME_NAMES = ("time", "valid_time")
LEVEL_NAMES = ("level", "pressure_level", "plev", "isobaricinhpa", "lev")
PIXEL_DIM = "pixel"
FACE_DIMS = ("face", "height", "width")


def find_dim(obj: xr.DataArray | xr.Dataset, names: tuple[str, ...], what: str, *, name: str = "",
             setting: str = "") -> str | None:
    """The dimension of ``obj`` that holds ``what``: ``name`` when given (it must be one of the
    dims), else the one dim named like one of ``names`` (case-insensitive), or None when no dim
    is. GeounetError when ``name`` is absent or several dims match; the message names the dims
    found and ``setting``, the option that names the dimension explicitly."""
    dims = [str(d) for d in obj.dims]
    how = f"set {setting}" if setting else "rename the one meant"
    if name:
        if name not in dims:
            raise GeounetError(f"the {what} dimension {name!r} ({setting or 'as named'}) is not among dims {dims}; "
                               f"name one of them")
        return name
    matches = [d for d in dims if d.lower() in names]
    if len(matches) > 1:
        raise GeounetError(f"several dims {matches} could hold the {what} (among dims {dims}); {how}")
    return matches[0] if matches else None


def find_latlon(obj: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    """Names of the latitude and longitude dimensions; GeounetError when absent or ambiguous."""
    found = []
    for names, what in ((LAT_NAMES, "latitude"), (LON_NAMES, "longitude")):
        dim = find_dim(obj, names, what)
        if dim is None:
            raise GeounetError(
                f"expected one {what} dimension named one of {names}, found none among dims {list(obj.dims)}; "
                f"rename it, e.g. obj.rename({{'y': '{names[0]}'}})"
            )
        found.append(dim)
    return found[0], found[1]


def _coordinate(obj: xr.DataArray | xr.Dataset, dim: str) -> np.ndarray:
    if dim not in obj.coords:
        raise GeounetError(f"dimension {dim!r} has no coordinate values; assign them with obj.assign_coords")
    return np.asarray(obj[dim].values, dtype=np.float64)



def healpix_dims(ordering: str) -> tuple[str, ...]:
    """The xarray dimensions of a HEALPix map in ``ordering``: ``(pixel,)`` or ``(face, height, width)``."""
    return FACE_DIMS if is_face_layout(ordering) else (PIXEL_DIM,)


def _map_arrays(obj, fn, spatial: tuple[str, ...]):
    """Apply ``fn(DataArray) -> DataArray`` to every variable that has all ``spatial`` dims."""
    if isinstance(obj, xr.DataArray):
        return fn(obj)
    converted = {name: fn(var) for name, var in obj.data_vars.items() if set(spatial) <= set(var.dims)}
    if not converted:
        raise GeounetError(f"no data variable has the dimensions {spatial}")
    untouched = {name: var for name, var in obj.data_vars.items() if name not in converted}
    return xr.Dataset({**converted, **untouched}, attrs=obj.attrs)


def _regrid_array(da: xr.DataArray, fn, core_in: tuple[str, ...], core_out: dict[str, int]) -> xr.DataArray:
    """``fn(ndarray [..., *core_in]) -> ndarray [..., *core_out]`` over ``da``, lazily when dask-backed."""
    if da.chunks is not None:
        da = da.chunk({dim: -1 for dim in core_in})  # one chunk along the spatial dims
    return xr.apply_ufunc(
        lambda values: fn(torch.from_numpy(np.ascontiguousarray(values))).numpy(),
        da,
        input_core_dims=[list(core_in)],
        output_core_dims=[list(core_out)],
        dask="parallelized",
        output_dtypes=[da.dtype],
        dask_gufunc_kwargs={"output_sizes": core_out},
        keep_attrs=True,
    )


def latlon_to_healpix_xr(
    obj: xr.DataArray | xr.Dataset, nside: int, *, method: str = "bilinear", ordering: str = "nest",
    subdivisions: int | None = None,
) -> xr.DataArray | xr.Dataset:
    """Regrid every lat-lon variable of ``obj`` to HEALPix; dims become ``(*others, *healpix_dims(ordering))``."""
    lat_dim, lon_dim = find_latlon(obj)
    lat, lon = _coordinate(obj, lat_dim), _coordinate(obj, lon_dim)
    nside = validate_nside(nside)
    out_dims = healpix_dims(ordering)
    sizes = (12, nside, nside) if len(out_dims) == 3 else (12 * nside * nside,)

    def regrid(data: torch.Tensor) -> torch.Tensor:
        return latlon_to_healpix(data, lat, lon, nside, method=method, ordering=ordering, subdivisions=subdivisions)

    def convert(da: xr.DataArray) -> xr.DataArray:
        out = _regrid_array(da, regrid, (lat_dim, lon_dim), dict(zip(out_dims, sizes, strict=True)))
        out.attrs.update(healpix_nside=nside, healpix_order=ordering, regrid_method=method)
        return out.drop_vars([lat_dim, lon_dim], errors="ignore")

    return _map_arrays(obj, convert, (lat_dim, lon_dim))


def healpix_to_latlon_xr(
    obj: xr.DataArray | xr.Dataset, lat, lon, *, ordering: str, method: str = "bilinear",
    subdivisions: int | None = None, lat_name: str = "lat", lon_name: str = "lon",
) -> xr.DataArray | xr.Dataset:
    """Regrid every variable with the dims of ``ordering`` (see :func:`healpix_dims`) to the lat-lon
    grid; dims ``(*others, lat, lon)``."""
    lat = np.asarray(getattr(lat, "values", lat), dtype=np.float64)
    lon = np.asarray(getattr(lon, "values", lon), dtype=np.float64)
    in_dims = healpix_dims(ordering)

    def regrid(data: torch.Tensor) -> torch.Tensor:
        return healpix_to_latlon(data, lat, lon, ordering=ordering, method=method, subdivisions=subdivisions)

    def convert(da: xr.DataArray) -> xr.DataArray:
        stored = da.attrs.get("healpix_order")
        if stored is not None and stored != ordering:
            raise GeounetError(f"variable {da.name!r} is stored in {stored!r} order but ordering={ordering!r} was "
                             "requested; pass the ordering the data is in")
        out = _regrid_array(da, regrid, in_dims, {lat_name: lat.size, lon_name: lon.size})
        for key in ("healpix_nside", "healpix_order"):
            out.attrs.pop(key, None)
        out.attrs["regrid_method"] = method
        return out.assign_coords({lat_name: lat, lon_name: lon})

    if not set(in_dims) <= set(obj.dims):
        raise GeounetError(f"ordering {ordering!r} keeps HEALPix pixels in the dimension(s) {in_dims}, got dims "
                         f"{list(obj.dims)}; pass the ordering the data is in or rename its dimensions")
    return _map_arrays(obj, convert, in_dims)
