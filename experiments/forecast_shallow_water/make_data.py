"""Write one long shallow-water run as an ERA5-like lat-lon netCDF for the forecast task.

The rotating shallow-water solver (geounet.datagen.shallow_water, torch-harmonics) is
integrated from one random balanced state; after the spin-up every ``--dt-hours`` state
is written as a file shaped like an ERA5 download:

    z     (time, level, latitude, longitude)  geopotential g h at the one "level" 500   m**2 s**-2
    u, v  (time, level, latitude, longitude)  winds at that level                        m s**-1
    vo    (time, latitude, longitude)         relative vorticity, a "surface" field      s**-1

with descending latitude (+90 .. -90), longitude 0 .. 360 (exclusive) and dates from
2000-01-01 (the solver has no calendar: the dates only label the steps).

    python experiments/forecast_shallow_water/make_data.py --days 60 --out data/sw_era5_like.nc
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from geounet.datagen.shallow_water import generate_shallow_water

GRAVITY = 9.80616  # the solver's


def era5_like(days: float, dt_hours: float, nlat: int, nlon: int, seed: int) -> xr.Dataset:
    steps = int(round(days * 24 / dt_hours))
    sw = generate_shallow_water(1, steps, dt_hours, nlat, nlon, seed, spinup_hours=24.0).isel(sample=0)
    times = np.datetime64("2000-01-01T00", "ns") + (sw.time.values * 3600e9).astype("timedelta64[ns]")
    level = {"level": ("level", [500.0], {"units": "hPa", "long_name": "pressure level (nominal)"})}

    def on_level(values: np.ndarray) -> tuple:
        return ("time", "level", "latitude", "longitude"), values[:, None].astype(np.float32)

    return xr.Dataset(
        {
            "z": (*on_level(GRAVITY * sw.h.values), {"units": "m**2 s**-2", "long_name": "Geopotential"}),
            "u": (*on_level(sw.u.values), {"units": "m s**-1", "long_name": "U component of wind"}),
            "v": (*on_level(sw.v.values), {"units": "m s**-1", "long_name": "V component of wind"}),
            "vo": (("time", "latitude", "longitude"), sw.vorticity.values.astype(np.float32),
                   {"units": "s**-1", "long_name": "Vorticity (relative)"}),
        },
        coords={"time": times, "latitude": ("latitude", sw.lat.values, {"units": "degrees_north"}),
                "longitude": ("longitude", sw.lon.values, {"units": "degrees_east"}), **level},
        attrs={"source": f"geounet rotating shallow water, nlat {nlat}, nlon {nlon}, seed {seed}"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--dt-hours", type=float, default=6.0)
    parser.add_argument("--nlat", type=int, default=32)
    parser.add_argument("--nlon", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("data/sw_era5_like.nc"))
    args = parser.parse_args()
    ds = era5_like(args.days, args.dt_hours, args.nlat, args.nlon, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(args.out)
    print(f"wrote {args.out}: {dict(ds.sizes)}, {ds.time.values[0]} .. {ds.time.values[-1]}")


if __name__ == "__main__":
    main()
