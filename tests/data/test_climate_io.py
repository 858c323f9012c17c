"""climate_io on files the tests write: DLWP-HEALPix face files and dask-chunked datasets."""

import healpy as hp
import numpy as np
import pytest
import torch
import xarray as xr

from geounet.data.climate_io import healpix_to_latlon_xr, latlon_to_healpix_xr
from geounet.geometry.healpix import from_nest, to_nest

NSIDE = 16
LAT = np.linspace(87.5, -87.5, 36)  # descending, as in ERA5
LON = np.arange(0.0, 360.0, 5.0)


def field(lat_deg, lon_deg):
    """A smooth function of latitude and longitude (degrees)."""
    lat, lon = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    return np.cos(lat) * np.cos(lon - 0.7) + 0.5 * np.sin(2 * lat)


def write_dlwp_file(path, times: int = 2):
    """A HEALPix file as DLWP-HEALPix writes it: ``z500 (time, face, height, width)`` plus the
    pixel latitudes and longitudes, where ``[f, h, w]`` holds the pixel with healpy face
    coordinates ``x = n-1-h``, ``y = n-1-w`` (north corner first)."""
    n = NSIDE
    f, h, w = np.meshgrid(np.arange(12), np.arange(n), np.arange(n), indexing="ij")
    pixel = hp.xyf2pix(n, n - 1 - h, n - 1 - w, f, nest=True)  # [12, n, n]
    lon, lat = hp.pix2ang(n, pixel, nest=True, lonlat=True)
    z500 = field(lat, lon)[None] * (1.0 + np.arange(times))[:, None, None, None]
    dims = ("face", "height", "width")
    xr.Dataset(
        {"z500": (("time", *dims), z500, {"units": "m"}), "lat": (dims, lat), "lon": (dims, lon)},
        coords={"time": np.arange(times), "face": np.arange(12), "height": np.arange(n), "width": np.arange(n)},
    ).to_netcdf(path)


def test_dlwp_face_file_regrids_to_the_right_places(tmp_path):
    path = tmp_path / "forecast_hpx.nc"
    write_dlwp_file(path)
    expected = field(LAT[:, None], LON[None, :])
    with xr.open_dataset(path, chunks={"time": 1}) as ds:
        pixels = to_nest(torch.from_numpy(ds["lat"].values), "face")
        assert np.array_equal(pixels.numpy(), hp.pix2ang(NSIDE, np.arange(12 * NSIDE**2), nest=True, lonlat=True)[1])
        latlon = healpix_to_latlon_xr(ds[["z500"]], LAT, LON, ordering="face")
        assert latlon["z500"].dims == ("time", "lat", "lon") and latlon["z500"].attrs["units"] == "m"
        np.testing.assert_allclose(latlon["z500"].values[1], 2 * expected, atol=0.05)  # bilinear at nside 16
        scrambled = healpix_to_latlon_xr(ds[["z500"]], LAT, LON, ordering="face_s_ccw")  # the misreading
        assert np.abs(scrambled["z500"].values[0] - expected).max() > 0.5


def test_dask_chunked_dataset_converts_lazily(tmp_path):
    path = tmp_path / "era.nc"
    t = field(LAT[:, None], LON[None, :])[None, None] * np.arange(1.0, 4.0)[:, None, None, None] * [[[[1.0]], [[0.5]]]]
    xr.Dataset(
        {"t": (("time", "level", "latitude", "longitude"), t, {"units": "K"})},
        coords={"time": np.arange(3), "level": [500, 850], "latitude": LAT, "longitude": LON},
    ).to_netcdf(path)
    with xr.open_dataset(path) as eager, xr.open_dataset(path, chunks={"time": 1, "latitude": 12}) as lazy:
        assert lazy["t"].chunks is not None
        for ordering, dims in (("nest", ("pixel",)), ("face", ("face", "height", "width"))):
            hp_lazy = latlon_to_healpix_xr(lazy, NSIDE, ordering=ordering)
            assert hp_lazy["t"].chunks is not None  # nothing computed yet
            assert hp_lazy["t"].dims == ("time", "level", *dims)
            assert hp_lazy["t"].attrs == {"units": "K", "healpix_nside": NSIDE, "healpix_order": ordering,
                                          "regrid_method": "bilinear"}
            hp_eager = latlon_to_healpix_xr(eager, NSIDE, ordering=ordering)
            # The same operator on other batch shapes (a chunk is one time step): equal to the rounding of
            # its convex combinations of <= 4 values, |Δ| <= 2 γ_4 max|t| ≈ 4 eps max|t| (asserted: 8 eps).
            bound = 8 * np.finfo(np.float64).eps * np.abs(t).max()
            np.testing.assert_allclose(hp_lazy["t"].values, hp_eager["t"].values, rtol=0, atol=bound)
            back = healpix_to_latlon_xr(hp_lazy, LAT, LON, ordering=ordering, lat_name="latitude",
                                        lon_name="longitude")
            assert back["t"].chunks is not None and back["t"].dims == eager["t"].dims
            np.testing.assert_allclose(back["t"].values, eager["t"].values, atol=0.1)
        nest = latlon_to_healpix_xr(eager["t"], NSIDE).values
        face = latlon_to_healpix_xr(eager["t"], NSIDE, ordering="face").values
        np.testing.assert_array_equal(face, from_nest(torch.from_numpy(nest), "face").numpy())


def test_ordering_that_does_not_match_the_dimensions(tmp_path):
    path = tmp_path / "forecast_hpx.nc"
    write_dlwp_file(path)
    with xr.open_dataset(path) as ds:
        with pytest.raises(ValueError, match=r"ordering 'nest' keeps HEALPix pixels in the dimension\(s\) "
                                             r"\('pixel',\), got dims \['time', 'face', 'height', 'width'\]"):
            healpix_to_latlon_xr(ds[["z500"]], LAT, LON, ordering="nest")
        tagged = ds["z500"].assign_attrs(healpix_order="face_s_ccw")
        with pytest.raises(ValueError, match="stored in 'face_s_ccw' order but ordering='face'"):
            healpix_to_latlon_xr(tagged, LAT, LON, ordering="face")
