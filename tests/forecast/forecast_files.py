"""Synthetic ERA5-like files, written by the tests themselves.

Fields are analytic functions of latitude φ, longitude λ and time t (hours), so their
values are known at every grid point and every HEALPix pixel centre:

    t2m(φ, λ, t)      = 280 + 20 cos φ + 5 cos φ sin(λ - 2π t / 48)          [K]
    z(level, φ, λ, t) = 9.81 level (11 + cos² φ sin(2λ + 2π t / 120)) / 10   [m² s⁻²]
    lsm(φ, λ)         = 1 where sin(3λ) cos φ > 0.3, else 0                  (no time dim)

on a 4° x 5° grid with descending latitude and 0..355 longitude, every 6 h.
"""

from __future__ import annotations

import math

import healpy
import numpy as np
import torch
import xarray as xr

from geounet.geometry.healpix import from_nest, npix

LEVELS = (500.0, 850.0)


def t2m(lat, lon, hours):
    lat, lon = np.radians(lat), np.radians(lon)
    return 280 + 20 * np.cos(lat) + 5 * np.cos(lat) * np.sin(lon - 2 * math.pi * hours / 48)


def geopotential(level, lat, lon, hours):
    lat, lon = np.radians(lat), np.radians(lon)
    return 9.81 * level * (11 + np.cos(lat) ** 2 * np.sin(2 * lon + 2 * math.pi * hours / 120)) / 10


def sst(lat, lon, hours):
    lat, lon = np.radians(lat), np.radians(lon)
    return 275 + 25 * np.cos(lat) ** 2 + 2 * np.sin(lon + 2 * math.pi * hours / 72)


def land(lat, lon):
    """The land-sea mask: 1 (land) where sin(3λ) cos φ > 0.3."""
    return np.sin(3 * np.radians(lon)) * np.cos(np.radians(lat)) > 0.3


def era5_like(days: float = 6.0, step_hours: int = 6, start: str = "2000-01-01", *, time_name: str = "time",
              level_name: str = "level", with_sst: bool = False) -> xr.Dataset:
    """The fields above; ``time_name`` / ``level_name`` rename the dims (new-CDS ERA5: "valid_time",
    "pressure_level"); ``with_sst`` adds ``sst`` = 275 + 25 cos² φ + 2 sin(λ + 2π t / 72) [K], NaN over land."""
    lat = np.arange(88.0, -89.0, -4.0)  # descending
    lon = np.arange(0.0, 360.0, 5.0)
    times = np.datetime64(start, "ns") + np.arange(int(days * 24 / step_hours)) * np.timedelta64(step_hours, "h")
    hours = ((times - times[0]) / np.timedelta64(1, "h"))[:, None, None]
    la, lo = lat[None, :, None], lon[None, None, :]
    z = np.stack([geopotential(level, la, lo, hours) for level in LEVELS], axis=1)
    mask = land(lat[:, None], lon[None]).astype(np.float32)
    fields = {
        "t2m": ((time_name, "latitude", "longitude"), t2m(la, lo, hours).astype(np.float32),
                {"units": "K", "long_name": "2 metre temperature"}),
        "z": ((time_name, level_name, "latitude", "longitude"), z.astype(np.float32),
              {"units": "m**2 s**-2", "long_name": "Geopotential"}),
        "lsm": (("latitude", "longitude"), mask, {"units": "(0 - 1)", "long_name": "Land-sea mask"}),
    }
    if with_sst:
        values = np.where(mask[None] > 0, np.nan, sst(la, lo, hours)).astype(np.float32)
        fields["sst"] = ((time_name, "latitude", "longitude"), values, {"units": "K", "long_name": "Sea surface "
                                                                          "temperature"})
    return xr.Dataset(fields, coords={time_name: times, level_name: np.array(LEVELS), "latitude": lat,
                                      "longitude": lon})


def healpix_like(nside: int, ordering: str, days: float = 6.0) -> xr.Dataset:
    """The same fields evaluated exactly at the HEALPix pixel centres, in ``ordering``."""
    theta, phi = healpy.pix2ang(nside, np.arange(npix(nside)), nest=True)
    lat, lon = 90 - np.degrees(theta), np.degrees(phi)
    ds = era5_like(days)
    hours = ((ds.time.values - ds.time.values[0]) / np.timedelta64(1, "h"))[:, None]
    nest = {
        "t2m": t2m(lat[None], lon[None], hours),
        "z": np.stack([geopotential(level, lat[None], lon[None], hours) for level in LEVELS], axis=1),
    }
    fields = hp_dataset({name: from_nest(torch.from_numpy(v), ordering).numpy() for name, v in nest.items()},
                        ordering, ds)
    for name in ("t2m", "z"):
        fields[name].attrs.update(ds[name].attrs, healpix_nside=nside, healpix_order=ordering)
    return fields


def hp_dataset(values: dict, ordering: str, like: xr.Dataset) -> xr.Dataset:
    """Wrap ``values`` (NumPy, pixel dims of ``ordering`` last) like :func:`latlon_to_healpix_xr` does."""
    pixel = ("face", "height", "width") if ordering.startswith("face") else ("pixel",)
    data = {
        "t2m": (("time", *pixel), values["t2m"].astype(np.float32)),
        "z": (("time", "level", *pixel), values["z"].astype(np.float32)),
    }
    return xr.Dataset(data, coords={"time": like.time.values, "level": like.level.values})
