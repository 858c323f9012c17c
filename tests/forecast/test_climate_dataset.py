"""The climate data set: lazy reading into the HEALPix cache, checks, samples, forcings."""

from __future__ import annotations

import math

import healpy
import numpy as np
import pytest
import torch
import xarray as xr
from forecast_files import LEVELS, era5_like, geopotential, healpix_like, t2m

from geounet.data import climate_dataset as cd
from geounet.geometry.cache_files import CacheRebuiltWarning, manifest_path
from geounet.geometry.healpix import FACE_LAYOUTS, npix
from geounet.hierarchy import HealpixHaarHierarchy
from geounet.testing.faults import damage_file

NSIDE = 8


def pixel_degrees(nside):
    theta, phi = healpy.pix2ang(nside, np.arange(npix(nside)), nest=True)
    return 90 - np.degrees(theta), np.degrees(phi)


def exact_fields(nside, times):
    lat, lon = pixel_degrees(nside)
    hours = ((times - times[0]) / np.timedelta64(1, "h"))[:, None]
    return np.stack([t2m(lat, lon, hours), geopotential(LEVELS[0], lat, lon, hours)], axis=-1)  # [T, N, 2]


@pytest.mark.parametrize("layout", ["nest", "ring", *FACE_LAYOUTS])
def test_healpix_layouts_land_in_nest_exactly(tmp_path, layout):
    path = tmp_path / "hp.nc"
    healpix_like(NSIDE, layout).to_netcdf(path)
    archive = cd.open_archive(str(path), ["t2m", "z500"], layout, NSIDE, tmp_path / "cache")
    expected = exact_fields(NSIDE, archive.times)
    np.testing.assert_allclose(archive.fields[:], expected, rtol=1e-6)


def test_latlon_regrid_is_close_and_keeps_the_constants(latlon_file, tmp_path):
    archive = cd.open_archive(str(latlon_file), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    assert archive.meta["constants"] == ["lsm"] and archive.constants.shape == (npix(NSIDE), 1)
    expected = exact_fields(NSIDE, archive.times)
    error = np.abs(archive.fields[:] - expected).max(axis=(0, 1))  # bilinear on a 4 x 5 degree grid
    assert error[0] < 0.5 and error[1] < 0.02 * np.abs(expected[..., 1]).max()
    assert archive.meta["attrs"]["z500"]["units"] == "m**2 s**-2"
    assert archive.meta["grid"]["lat"][0] == 88.0  # descending latitude kept for the way back


def test_cache_is_reused_and_rebuilt_when_the_file_changes(latlon_file, tmp_path):
    first = cd.open_archive(str(latlon_file), ["t2m"], "latlon", NSIDE, tmp_path / "cache")
    again = cd.open_archive(str(latlon_file), ["t2m"], "latlon", NSIDE, tmp_path / "cache")
    assert again.directory == first.directory
    era5_like(days=7).to_netcdf(latlon_file)
    changed = cd.open_archive(str(latlon_file), ["t2m"], "latlon", NSIDE, tmp_path / "cache")
    assert changed.directory != first.directory and len(changed.times) == 28


def test_glob_and_zarr_read_the_same_fields(tmp_path):
    ds = era5_like()
    ds.isel(time=slice(0, 12)).to_netcdf(tmp_path / "part0.nc")
    ds.isel(time=slice(12, None)).to_netcdf(tmp_path / "part1.nc")
    ds.chunk({"time": 5}).to_zarr(tmp_path / "store.zarr", consolidated=False)
    ds.to_netcdf(tmp_path / "whole.nc")
    read = [cd.open_archive(str(tmp_path / name), ["z850", "t2m"], "latlon", NSIDE, tmp_path / "cache").fields[:]
            for name in ("whole.nc", "part*.nc", "store.zarr")]
    np.testing.assert_array_equal(read[0], read[1])
    np.testing.assert_array_equal(read[0], read[2])


def bad(tmp_path, ds, variables=("t2m",), layout="latlon", nside=NSIDE):
    path = tmp_path / f"bad{len(list(tmp_path.glob('bad*.nc')))}.nc"  # a file still open is not rewritten
    ds.to_netcdf(path)
    with pytest.raises(cd.ClimateDataError) as error:
        cd.open_archive(str(path), list(variables), layout, nside, tmp_path / "cache")
    return " ".join(str(error.value).split())


def test_missing_variable_and_level_are_named(tmp_path):
    message = bad(tmp_path, era5_like(), ["t2m", "u10"])
    assert "'u10' is not in the data" in message and "z<level> (levels [500.0, 850.0])" in message
    assert "no level 300" in bad(tmp_path, era5_like(), ["z300"])


def test_nan_names_variable_time_and_place(tmp_path):
    ds = era5_like()
    ds["t2m"][5, 3, 7] = np.nan
    message = bad(tmp_path, ds)
    assert "'t2m' is nan at time 2000-01-02T06:00" in message and "latitude 76, longitude 35" in message


def test_disorder_in_time_is_refused(tmp_path):
    ds = era5_like()
    order = np.arange(ds.sizes["time"])
    order[[3, 4]] = order[[4, 3]]
    assert "not strictly increasing" in bad(tmp_path, ds.isel(time=order))


def unlabelled(ds):
    """``ds`` without the healpix_order attributes (a file that does not say its ordering)."""
    for da in ds.data_vars.values():
        da.attrs.pop("healpix_order")
    return ds


def test_ordering_that_does_not_fit_the_shape(tmp_path):
    face = healpix_like(NSIDE, "face")
    assert "face layout such as 'face'" in bad(tmp_path, unlabelled(healpix_like(NSIDE, "face")), layout="nest")
    assert "'pixel' dim means 'nest' or 'ring'" in bad(tmp_path, unlabelled(healpix_like(NSIDE, "nest")),
                                                       layout="face")
    assert "says healpix_order='ring'" in bad(tmp_path, healpix_like(NSIDE, "ring"), layout="nest")
    assert "set task.nside to the file's nside" in bad(tmp_path, face, layout="face", nside=16)
    assert "set task.layout to its ordering" in bad(tmp_path, face, layout="latlon")


def test_mismatched_grids_are_refused(tmp_path):
    ds = era5_like()
    coarse = ds[["t2m"]].isel(latitude=slice(0, None, 2)).rename(t2m="t_coarse", latitude="lat2")
    mixed = xr.merge([ds, coarse.rename(lat2="lat")])
    assert "is on another grid" in bad(tmp_path, mixed, ["t2m", "t_coarse"])


def test_samples_hold_the_documented_layout(latlon_file, tmp_path):
    archive = cd.open_archive(str(latlon_file), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    win = cd.window(archive, 2, 2, 12.0)  # every second 6-hourly state
    inits = cd.split_inits(archive, win, 3, "2000-01-01", "2000-01-06", "train").inits
    assert win.stride == 2 and inits[0] == 2 and inits[-1] == len(archive.times) - 1 - 12
    stats = cd.TrainingStatistics.of(archive, np.arange(len(archive.times)))
    normalisation = stats.normalisation(archive.valid)
    samples = cd.ForecastSamples(archive, HealpixHaarHierarchy(NSIDE, 2), normalisation, win, inits, steps=3)
    batch = samples.batch(torch.tensor([4, 0]))
    n, c = npix(NSIDE), 2
    x = batch.inputs
    assert x.state.shape == (2, 2, n, c) and x.forcings.shape == (2, 3, 2, n, 5) and x.constants.shape == (n, 1)
    assert batch.targets.shape == (2, n, 3 * 2 * c)
    fields = torch.from_numpy(archive.fields[:])
    t = int(inits[4])
    torch.testing.assert_close(x.state[0, 0], fields[t - 2])  # the older input state first, physical units
    torch.testing.assert_close(x.state[0, 1], fields[t])
    # the 6th output, 72 h later, as its change since the last input state in units of σ_Δ = σ
    torch.testing.assert_close(batch.targets[0, :, -c:], (fields[t + 12] - fields[t]) / stats.std)
    valid = archive.times[t] + np.timedelta64(12, "h") * np.arange(1, 7)
    torch.testing.assert_close(x.forcings[0].reshape(6, n, 5), cd.forcings(valid, samples.lat, samples.lon))
    torch.testing.assert_close(samples.states(np.array([4]))[0, 2:], fields[t + 2 : t + 13 : 2])


def test_statistics_are_exact_moments(latlon_file, tmp_path, monkeypatch):
    monkeypatch.setattr(cd, "CHUNK_BYTES", 1)  # one time step per chunk
    archive = cd.open_archive(str(latlon_file), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    times = np.array([1, 4, 5, 9])
    stats = cd.TrainingStatistics.of(archive, times)
    values = torch.from_numpy(archive.fields[times]).double()
    torch.testing.assert_close(stats.mean.double(), values.mean((0, 1)), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats.std.double(), values.std((0, 1), correction=0), rtol=1e-5, atol=0)
    torch.testing.assert_close(stats.climatology.double(), values.mean(0), rtol=1e-6, atol=0)


def test_insolation_follows_the_sun():
    lat = torch.deg2rad(torch.tensor([0.0, 0.0, 89.0, -89.0, 23.44]))
    lon = torch.deg2rad(torch.tensor([0.0, 180.0, 0.0, 0.0, 0.0]))
    noon = np.array(["2001-06-21T12:00"], dtype="datetime64[ns]")
    f = cd.forcings(noon, lat, lon)[0]  # [5 pixels, 5 forcings]
    day = 171.5  # 21 June, noon, counted from 0 on 1 January
    earth_sun = 1 + 0.033 * math.cos(2 * math.pi * day / 365.25)
    assert float(f[4, 0]) == pytest.approx(earth_sun, abs=1e-3)  # the sun overhead at the tropic of cancer
    assert float(f[0, 0]) == pytest.approx(earth_sun * math.cos(math.radians(23.44)), abs=1e-3)  # noon at Greenwich
    assert f[1, 0] == 0 and f[3, 0] == 0  # midnight at the date line, polar night in the south
    assert float(f[2, 0]) == pytest.approx(earth_sun * math.sin(math.radians(23.44 + 1)), abs=1e-3)  # polar day, noon
    torch.testing.assert_close(f[:, 1:3], torch.tensor([0.0, -1.0]).expand(5, 2), atol=1e-6, rtol=0)


def test_state_file_reads_exactly_the_rows_asked_for(tmp_path):
    states = np.arange(5 * 6 * 2, dtype=np.float32).reshape(5, 6, 2)
    states.tofile(tmp_path / "fields.f32")
    file = cd.StateFile(tmp_path / "fields.f32", states.shape)
    np.testing.assert_array_equal(file[np.array([4, 0, 4])], states[[4, 0, 4]])
    np.testing.assert_array_equal(file[1:3], states[1:3])
    np.testing.assert_array_equal(file[2], states[2])
    with pytest.raises(IndexError, match="out of range"):
        file[np.array([5])]
    states[:4].tofile(tmp_path / "fields.f32")  # a truncated cache
    with pytest.raises(cd.ClimateDataError, match="truncated; delete its directory"):
        file[4]


@pytest.mark.parametrize(("name", "kind"), [("fields.f32", "zeroed"), ("fields.f32", "truncated"),
                                            ("valid.npy", "changed"), ("meta.json", "bad_json"),
                                            ("manifest", "bad_json")])
def test_a_damaged_archive_is_rebuilt_with_one_warning(latlon_file, tmp_path, name, kind):
    first = cd.open_archive(str(latlon_file), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    clean = first.fields[:]
    damage_file(manifest_path(first.directory) if name == "manifest" else first.directory / name, kind)
    with pytest.warns(CacheRebuiltWarning, match=f"climate archive {first.directory} cannot be used") as caught:
        again = cd.open_archive(str(latlon_file), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    assert len(caught) == 1 and again.directory == first.directory
    np.testing.assert_array_equal(again.fields[:], clean)
    assert again.meta == first.meta and np.array_equal(again.valid, first.valid)
