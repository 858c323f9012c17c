"""xarray front end for lat-lon <-> HEALPix regridding of climate data (netCDF, zarr).

Coordinates are found by name only: latitude ``lat`` / ``latitude`` and longitude
``lon`` / ``longitude`` (case-insensitive); anything else raises with the rename that
fixes it. Latitude may ascend or descend and longitude use 0..360 or -180..180; the
values are used as given (see :mod:`geounet.functional.regrid`). Every other dimension
(time, level, member, ...) is kept and moved in front of the spatial one(s), in its
original order. HEALPix results carry the dimension ``pixel`` and the attributes
``healpix_nside`` and ``healpix_order``; the ordering is always an explicit argument and
must agree with ``healpix_order`` when that attribute is present.

    ds = xarray.open_dataset("era5.nc")                    # (time, level, latitude, longitude)
    hp = latlon_to_healpix_xr(ds, nside=64)                # (time, level, pixel), NEST
    back = healpix_to_latlon_xr(hp, ds.latitude, ds.longitude, ordering="nest")
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from geounet.functional.regrid import healpix_to_latlon, latlon_to_healpix

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")
PIXEL_DIM = "pixel"


def find_latlon(obj: xr.DataArray | xr.Dataset) -> tuple[str, str]:
    """Names of the latitude and longitude dimensions; ValueError when absent or ambiguous."""
    found = []
    for names, what in ((LAT_NAMES, "latitude"), (LON_NAMES, "longitude")):
        matches = [d for d in obj.dims if str(d).lower() in names]
        if len(matches) != 1:
            raise ValueError(
                f"expected exactly one {what} dimension named one of {names}, found "
                f"{matches or 'none'} among dims {list(obj.dims)}; rename it, e.g. "
                f"obj.rename({{'y': '{names[0]}'}})"
            )
        found.append(matches[0])
    return found[0], found[1]


def _coordinate(obj: xr.DataArray | xr.Dataset, dim: str) -> np.ndarray:
    if dim not in obj.coords:
        raise ValueError(f"dimension {dim!r} has no coordinate values; assign them with obj.assign_coords")
    return np.asarray(obj[dim].values, dtype=np.float64)


def _map_arrays(obj, fn, spatial: tuple[str, ...]):
    """Apply ``fn(DataArray) -> DataArray`` to every variable that has all ``spatial`` dims."""
    if isinstance(obj, xr.DataArray):
        return fn(obj)
    converted = {name: fn(var) for name, var in obj.data_vars.items() if set(spatial) <= set(var.dims)}
    if not converted:
        raise ValueError(f"no data variable has the dimensions {spatial}")
    untouched = {name: var for name, var in obj.data_vars.items() if name not in converted}
    return xr.Dataset({**converted, **untouched}, attrs=obj.attrs)


def latlon_to_healpix_xr(
    obj: xr.DataArray | xr.Dataset, nside: int, *, method: str = "bilinear", ordering: str = "nest",
    subdivisions: int | None = None,
) -> xr.DataArray | xr.Dataset:
    """Regrid every lat-lon variable of ``obj`` to HEALPix; dims become ``(*others, pixel)``."""
    lat_dim, lon_dim = find_latlon(obj)
    lat, lon = _coordinate(obj, lat_dim), _coordinate(obj, lon_dim)
    if ordering == "face":
        raise ValueError("xarray output supports ordering 'nest' or 'ring'; convert to faces with "
                         "geounet.geometry.healpix.from_nest afterwards")

    def convert(da: xr.DataArray) -> xr.DataArray:
        others = [d for d in da.dims if d not in (lat_dim, lon_dim)]
        data = torch.from_numpy(np.ascontiguousarray(da.transpose(*others, lat_dim, lon_dim).values))
        out = latlon_to_healpix(data, lat, lon, nside, method=method, ordering=ordering,
                                subdivisions=subdivisions)
        coords = {d: da.coords[d] for d in others if d in da.coords}
        attrs = {**da.attrs, "healpix_nside": nside, "healpix_order": ordering, "regrid_method": method}
        return xr.DataArray(out.numpy(), dims=[*others, PIXEL_DIM], coords=coords, name=da.name, attrs=attrs)

    return _map_arrays(obj, convert, (lat_dim, lon_dim))


def healpix_to_latlon_xr(
    obj: xr.DataArray | xr.Dataset, lat, lon, *, ordering: str, method: str = "bilinear",
    subdivisions: int | None = None, lat_name: str = "lat", lon_name: str = "lon",
) -> xr.DataArray | xr.Dataset:
    """Regrid every variable with a ``pixel`` dim to the lat-lon grid; dims ``(*others, lat, lon)``."""
    lat = np.asarray(getattr(lat, "values", lat), dtype=np.float64)
    lon = np.asarray(getattr(lon, "values", lon), dtype=np.float64)

    def convert(da: xr.DataArray) -> xr.DataArray:
        stored = da.attrs.get("healpix_order")
        if stored is not None and stored != ordering:
            raise ValueError(f"variable {da.name!r} is stored in {stored!r} order but ordering={ordering!r} was "
                             "requested; pass the ordering the data is in")
        others = [d for d in da.dims if d != PIXEL_DIM]
        data = torch.from_numpy(np.ascontiguousarray(da.transpose(*others, PIXEL_DIM).values))
        out = healpix_to_latlon(data, lat, lon, ordering=ordering, method=method, subdivisions=subdivisions)
        coords = {d: da.coords[d] for d in others if d in da.coords}
        coords.update({lat_name: lat, lon_name: lon})
        attrs = {k: v for k, v in da.attrs.items() if k not in ("healpix_nside", "healpix_order")}
        attrs["regrid_method"] = method
        return xr.DataArray(out.numpy(), dims=[*others, lat_name, lon_name], coords=coords, name=da.name,
                            attrs=attrs)

    if PIXEL_DIM not in obj.dims:
        raise ValueError(f"expected a {PIXEL_DIM!r} dimension holding the HEALPix pixels, got dims {list(obj.dims)}")
    return _map_arrays(obj, convert, (PIXEL_DIM,))
