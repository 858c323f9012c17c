"""Forecast files in DLWP-HEALPix's convention: read one lead of them as a time series, write forecasts like them.

DLWP-HEALPix (and physicsnemo's DLWP-HEALPix example) writes a forecast as one data
variable per channel with the dims ``(time, step, face, height, width)``:

- ``time`` the initialisation times (datetime64),
- ``step`` the lead times as timedelta64 (netCDF: CF units, e.g. "hours"), starting with
  ``0``: step 0 is the initial state (the last input state), steps ``dt, 2 dt, ...`` the
  model's outputs; the valid time of ``[t, s]`` is ``time[t] + step[s]``,
- ``face`` 0..11, ``height`` and ``width`` 0..nside-1 (int64) as coordinates, the face
  images in the ``"face"`` layout of :mod:`geounet.geometry.healpix` (DLWP's own).

**Reading** (:func:`lead_series`). A file with a lead dimension (``step``, or
``lead_time`` / ``prediction_timedelta`` as geounet and WeatherBench 2 name it) holds a
time series for every lead. geounet reads ONE lead ``k`` (``data_step_hours``, default
0) as the series of states at the valid times ``time + k``:

- ``k = 0`` (the default): the initial states of the forecasts, i.e. the analyses they
  started from. Training pairs and initial conditions are windows of these states,
  ``dt_hours`` apart, exactly as for a plain ``(time, ...)`` file.
- ``k > 0``: the forecasts' lead-``k`` states, e.g. to verify against them or to train
  on a model's own output at that lead.

Nothing else is read: other leads are not mixed in (states of different leads at one
valid time are different states).

**Writing** (:func:`dlwp_forecast`): the reverse, with ``step`` in timedelta64 including
0, the face/height/width coordinates and, as 2-D coordinates ``(face, height, width)``,
the pixel centres ``lat`` / ``lon`` in degrees (longitude 0..360) as DLWP's remapping
stores them.
"""

from __future__ import annotations

import healpy
import numpy as np
import torch
import xarray as xr

from geounet.data.climate_io import FACE_DIMS, TIME_NAMES, find_dim
from geounet.errors import GeounetError
from geounet.geometry.healpix import from_nest, npix

#: names of the lead-time dimension: DLWP's, geounet's and WeatherBench 2's
STEP_NAMES = ("step", "lead_time", "prediction_timedelta")
DLWP_DIMS = ("time", "step", *FACE_DIMS)


def _leads(ds: xr.Dataset, dim: str) -> np.ndarray:
    """The lead coordinate ``dim`` as timedelta64[ns]: timedeltas, or numbers whose ``units`` are hours."""
    if dim not in ds.coords:
        raise GeounetError(f"the lead dimension {dim!r} has no coordinate values; assign them as timedeltas "
                           "(ds.assign_coords(step=pd.to_timedelta(hours, 'h')))")
    values = np.asarray(ds[dim].values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[ns]")
    units = str(ds[dim].attrs.get("units", ""))
    if np.issubdtype(values.dtype, np.number) and units.lower().startswith("hour"):
        return (values * 3600e9).round().astype("timedelta64[ns]")
    raise GeounetError(f"the lead coordinate {dim!r} is {values.dtype} with units {units!r}, not timedeltas; "
                       "decode it (xarray.open_dataset(..., decode_timedelta=True)) or give it units 'hours'")


def lead_series(ds: xr.Dataset, step_hours: float = 0.0, time_name: str = "") -> xr.Dataset:
    """The lead ``step_hours`` of the forecast file ``ds`` as a time series at the valid times
    ``time + step`` (module docstring); ``ds`` unchanged when it has no lead dimension (and
    ``step_hours`` is 0). GeounetError naming the leads present when ``step_hours`` is not one."""
    step_dim = find_dim(ds, STEP_NAMES, "forecast lead")
    if step_dim is None:
        if step_hours:
            raise GeounetError(f"the lead {step_hours:g} h (task.data_step_hours, geounet forecast --data-step) picks "
                               f"a lead of a forecast file, but the data have no lead dimension "
                               f"({' / '.join(STEP_NAMES)}; dims {list(ds.dims)}); set it to 0")
        return ds
    time = find_dim(ds, TIME_NAMES, "time", name=time_name, setting="task.time_name")
    if time is None:
        raise GeounetError(f"the forecast file has a lead dimension {step_dim!r} but no initialisation time "
                           f"dimension among {list(ds.dims)}; name it with task.time_name")
    leads = _leads(ds, step_dim)
    wanted = np.timedelta64(int(round(step_hours * 3600e9)), "ns")
    hits = np.flatnonzero(leads == wanted)
    if hits.size != 1:
        have = [f"{lead / np.timedelta64(1, 'h'):g}" for lead in leads]
        what = "is not among" if not hits.size else "appears more than once among"
        raise GeounetError(f"the lead {step_hours:g} h {what} the file's {step_dim!r} values {have} (hours); set "
                           "task.data_step_hours (geounet forecast --data-step) to one of them")
    series = ds.isel({step_dim: int(hits[0])}, drop=True)
    return series.assign_coords({time: series[time].values + wanted})


def dlwp_forecast(fields: dict[str, np.ndarray], init_times: np.ndarray, leads: np.ndarray,
                  attrs: dict[str, dict], global_attrs: dict) -> xr.Dataset:
    """Forecasts in DLWP's layout (module docstring) from NEST maps ``fields[name] [B, S, N]``
    (step 0 the initial state), ``init_times [B]`` datetime64 and ``leads [S]`` timedelta64
    (``leads[0] == 0``); ``attrs`` per variable, ``global_attrs`` for the file."""
    if leads[0] != np.timedelta64(0):
        raise GeounetError(f"a DLWP forecast starts with step 0 (the initial state), got {leads[0]}")
    num_pixels = next(iter(fields.values())).shape[-1]
    nside = int(round((num_pixels / 12) ** 0.5))
    if npix(nside) != num_pixels:
        raise GeounetError(f"{num_pixels} pixels are not a HEALPix map")
    lon, lat = healpy.pix2ang(nside, np.arange(num_pixels), nest=True, lonlat=True)  # degrees

    def faces(values: np.ndarray) -> np.ndarray:  # [..., N] -> [..., 12, n, n]
        return from_nest(torch.from_numpy(np.ascontiguousarray(values)), "face").numpy()

    coords = {"time": np.asarray(init_times, dtype="datetime64[ns]"),
              "step": np.asarray(leads, dtype="timedelta64[ns]"),
              "face": np.arange(12, dtype=np.int64), "height": np.arange(nside, dtype=np.int64),
              "width": np.arange(nside, dtype=np.int64),
              "lat": (FACE_DIMS, faces(lat), {"units": "degrees_north"}),
              "lon": (FACE_DIMS, faces(lon), {"units": "degrees_east"})}
    variables = {name: (DLWP_DIMS, faces(values), attrs.get(name, {})) for name, values in fields.items()}
    return xr.Dataset(variables, coords=coords, attrs={**global_attrs, "healpix_nside": nside,
                                                       "healpix_order": "face"})
