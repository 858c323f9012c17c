import itertools

import healpy as hp
import numpy as np
import pytest
import torch
import xarray as xr

from geounet.data.climate_io import find_latlon, healpix_to_latlon_xr, latlon_to_healpix_xr
from geounet.functional.regrid import LatLonGrid, healpix_to_latlon, latlon_to_healpix, regrid_operator
from geounet.geometry.healpix import from_nest

LAT = np.linspace(88.0, -88.0, 45)  # descending, 4° spacing
LON = np.arange(0.0, 360.0, 5.0)
NSIDE = 8


def _field(lat, lon):
    """A smooth test field on the sphere (degrees in, [len(lat), len(lon)] out)."""
    la, lo = np.radians(lat)[:, None], np.radians(lon)[None, :]
    return np.cos(la) ** 2 * np.cos(lo) + np.sin(la) ** 2 + 0.5 * np.sin(la) * np.cos(la) * np.sin(2 * lo)


def _pixel_field(nside):
    lon, lat = hp.pix2ang(nside, np.arange(12 * nside**2), nest=True, lonlat=True)
    la, lo = np.radians(lat), np.radians(lon)
    return np.cos(la) ** 2 * np.cos(lo) + np.sin(la) ** 2 + 0.5 * np.sin(la) * np.cos(la) * np.sin(2 * lo)


def test_bilinear_to_healpix_accuracy_and_exactness():
    data = torch.from_numpy(_field(LAT, LON))
    out = latlon_to_healpix(data, LAT, LON, NSIDE)
    assert np.abs(out.numpy() - _pixel_field(NSIDE)).max() < 0.02  # 4° grid, O(h²)
    # a field linear in latitude is reproduced exactly between the outermost rows
    linear = torch.from_numpy(np.repeat(LAT[:, None], LON.size, 1))
    lon_p, lat_p = hp.pix2ang(NSIDE, np.arange(768), nest=True, lonlat=True)
    inside = np.abs(lat_p) <= 88.0
    result = latlon_to_healpix(linear, LAT, LON, NSIDE).numpy()
    np.testing.assert_allclose(result[inside], lat_p[inside], atol=1e-12)
    np.testing.assert_allclose(result[~inside], np.sign(lat_p[~inside]) * 88.0, atol=1e-12)  # constant beyond


def test_layout_conventions_give_the_same_answer():
    """Ascending/descending latitude and 0..360 / -180..180 longitude are the same grid."""
    data = _field(LAT, LON)
    reference = latlon_to_healpix(torch.from_numpy(data), LAT, LON, NSIDE)
    lon180 = np.where(LON >= 180, LON - 360, LON)
    order = np.argsort(lon180)
    flipped = torch.from_numpy(data[::-1][:, order].copy())
    for method in ("bilinear", "conservative"):
        a = latlon_to_healpix(torch.from_numpy(data), LAT, LON, NSIDE, method=method)
        b = latlon_to_healpix(flipped, LAT[::-1], lon180[order], NSIDE, method=method)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # bitwise: the same operator on the same data, then a permutation
    assert torch.equal(latlon_to_healpix(torch.from_numpy(data), LAT, LON, NSIDE, ordering="ring"),
                       from_nest(reference, "ring"))


def test_conservative_constants_and_integrals():
    grid = LatLonGrid.from_coords(LAT, LON)
    exact_areas = grid.cell_areas()
    np.testing.assert_allclose(exact_areas.sum(), 4 * np.pi, rtol=1e-12)
    ones = torch.ones(2, *grid.shape, dtype=torch.float64)
    torch.testing.assert_close(latlon_to_healpix(ones, LAT, LON, NSIDE, method="conservative"),
                               torch.ones(2, 768, dtype=torch.float64), rtol=0, atol=1e-12)
    data = torch.from_numpy(_field(LAT, LON))
    out = latlon_to_healpix(data, LAT, LON, NSIDE, method="conservative")
    # integral with the measured overlaps: exact; against exact cell areas: to the sub-pixel error
    overlaps = regrid_operator(LAT, LON, NSIDE, "conservative", "to_healpix").to_dense() * (4 * np.pi / 768)
    measured_areas = overlaps.sum(0).reshape(grid.shape)
    torch.testing.assert_close((out * 4 * np.pi / 768).sum(), (data * measured_areas).sum(), rtol=1e-12, atol=0)
    # against the exact cell areas: to the overlap error (0.2% here)
    assert abs((out.sum() * 4 * np.pi / 768).item() - (data.numpy() * exact_areas).sum()) < 0.02


def test_conservative_overlap_error_halves_per_subdivision():
    """Misassigned area fraction Σ|measured - exact| / 4π (4°x5° cells, nside 8)."""
    exact = LatLonGrid.from_coords(LAT, LON).cell_areas()
    errors = []
    for k in (3, 4, 5, 6):
        operator = regrid_operator(LAT, LON, NSIDE, "conservative", "to_healpix", k).to_dense()
        measured = (operator * 4 * np.pi / 768).sum(0).reshape(exact.shape).numpy()
        errors.append(np.abs(measured - exact).sum() / (4 * np.pi))
    assert errors[1] < 0.05 and errors[3] < 0.01
    assert all(later < 0.6 * earlier for earlier, later in itertools.pairwise(errors))


def test_conservative_single_cell():
    """One unit cell: the HEALPix integral is the cell's measured area, close to the exact one."""
    grid = LatLonGrid.from_coords(LAT, LON)
    data = torch.zeros(grid.shape, dtype=torch.float64)
    data[20, 10] = 1.0
    out = latlon_to_healpix(data, LAT, LON, NSIDE, method="conservative", subdivisions=6)
    np.testing.assert_allclose(out.sum().item() * 4 * np.pi / 768, grid.cell_areas()[20, 10], rtol=0.01)
    assert (out >= 0).all() and (out <= 1).all()


def test_healpix_to_latlon_bilinear_equals_healpy():
    values = np.random.default_rng(0).standard_normal(768)
    out = healpix_to_latlon(torch.from_numpy(values), LAT, LON, ordering="nest")
    lon, lat = np.meshgrid(LON, LAT)
    expected = hp.get_interp_val(values, lon, lat, nest=True, lonlat=True)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    ring = from_nest(torch.from_numpy(values), "ring")
    torch.testing.assert_close(healpix_to_latlon(ring, LAT, LON, ordering="ring"), out)
    faces = from_nest(torch.from_numpy(values), "face")
    torch.testing.assert_close(healpix_to_latlon(faces, LAT, LON, ordering="face"), out)


def test_healpix_to_latlon_conservative_preserves_integral():
    values = torch.from_numpy(_pixel_field(NSIDE))
    out = healpix_to_latlon(values, LAT, LON, ordering="nest", method="conservative")
    operator = regrid_operator(LAT, LON, NSIDE, "conservative", "to_healpix").to_dense() * (4 * np.pi / 768)
    measured = operator.sum(0).reshape(out.shape)
    torch.testing.assert_close((out * measured).sum(), values.sum() * 4 * np.pi / 768, rtol=1e-12, atol=0)
    ones = healpix_to_latlon(torch.ones(768, dtype=torch.float64), LAT, LON, ordering="nest", method="conservative")
    torch.testing.assert_close(ones, torch.ones_like(ones), rtol=0, atol=1e-12)


def test_conservative_tiny_polar_cells_fall_back_to_containing_pixel():
    lat = np.linspace(-89.95, 89.95, 1800)  # 0.1° rows: polar cells far smaller than a sub-pixel
    lon = np.arange(0.0, 360.0, 10.0)
    values = torch.arange(48, dtype=torch.float64)
    out = healpix_to_latlon(values, lat, lon, ordering="nest", method="conservative", subdivisions=2)
    pole = hp.ang2pix(2, lon, np.full(lon.size, 89.95), nest=True, lonlat=True)
    np.testing.assert_array_equal(out[-1].numpy(), pole.astype(np.float64))  # one weight 1.0 per cell: exact


def test_round_trip_smooth_field():
    lat, lon = np.linspace(-89.0, 89.0, 90), np.arange(0.0, 360.0, 2.0)
    data = torch.from_numpy(_field(lat, lon))
    there = latlon_to_healpix(data, lat, lon, 32)
    back = healpix_to_latlon(there, lat, lon, ordering="nest")
    assert (back - data).abs().max() < 0.01


def test_bad_input():
    data = torch.from_numpy(_field(LAT, LON))
    nan = data.clone()
    nan[3, 4] = float("nan")
    with pytest.raises(ValueError, match="contains 1 NaN value"):
        latlon_to_healpix(nan, LAT, LON, NSIDE)
    with pytest.raises(ValueError, match="unknown regridding method 'nearest'"):
        latlon_to_healpix(data, LAT, LON, NSIDE, method="nearest")
    with pytest.raises(ValueError, match="only global grids are supported"):
        latlon_to_healpix(data[:, :40], LAT, LON[:40], NSIDE)
    with pytest.raises(ValueError, match="strictly monotonic"):
        latlon_to_healpix(data, np.roll(LAT, 1), LON, NSIDE)
    with pytest.raises(ValueError, match="distinct modulo 360"):
        LatLonGrid.from_coords(LAT, np.append(LON, 360.0))
    with pytest.raises(ValueError, match=r"must end with \[lat, lon\] = \[45, 72\]"):
        latlon_to_healpix(data.T, LAT, LON, NSIDE)
    with pytest.raises(ValueError, match="nside must be a power of two"):
        latlon_to_healpix(data, LAT, LON, 6)
    with pytest.raises(ValueError, match="unknown HEALPix ordering"):
        healpix_to_latlon(torch.zeros(768), LAT, LON, ordering="nested")
    with pytest.raises(ValueError, match="770 pixels is not a HEALPix map"):
        healpix_to_latlon(torch.zeros(770), LAT, LON, ordering="ring")
    with pytest.raises(ValueError, match="NaN"):
        healpix_to_latlon(torch.full((768,), float("nan")), LAT, LON, ordering="nest")


# ---------------------------------------------------------------------- xarray / netCDF


def _write_netcdf(path, lat_name="latitude", lon_name="longitude"):
    lon180 = np.where(LON >= 180, LON - 360, LON)  # -180..180, ascending after sort
    lon180 = np.sort(lon180)
    base = _field(LAT, lon180)
    temperature = base[None, None] * np.arange(1, 4)[:, None, None, None] + np.arange(2)[None, :, None, None]
    ds = xr.Dataset(
        {
            "t": (("time", "level", lat_name, lon_name), temperature, {"units": "K"}),
            "orography": ((lat_name, lon_name), base),
            "station_count": (("time",), np.arange(3)),
        },
        coords={"time": np.arange(3), "level": [500, 850], lat_name: LAT, lon_name: lon180},
    )
    ds.to_netcdf(path)
    return lon180


def test_netcdf_round_trip(tmp_path):
    path = tmp_path / "era.nc"
    lon180 = _write_netcdf(path)
    with xr.open_dataset(path) as ds:
        hp_ds = latlon_to_healpix_xr(ds.transpose("latitude", "time", "longitude", "level"), NSIDE)
        assert hp_ds["t"].dims == ("time", "level", "pixel")
        assert hp_ds["orography"].dims == ("pixel",)
        assert hp_ds["t"].attrs["healpix_order"] == "nest" and hp_ds["t"].attrs["units"] == "K"
        assert list(hp_ds["level"].values) == [500, 850]
        np.testing.assert_array_equal(hp_ds["station_count"].values, np.arange(3))
        expected = latlon_to_healpix(torch.from_numpy(ds["t"].values), LAT, lon180, NSIDE).numpy()
        np.testing.assert_allclose(hp_ds["t"].values, expected, rtol=0, atol=1e-12)
        back = healpix_to_latlon_xr(hp_ds, ds.latitude, ds.longitude, ordering="nest",
                                    lat_name="latitude", lon_name="longitude")
        assert back["t"].dims == ("time", "level", "latitude", "longitude")
        assert np.abs(back["t"] - ds["t"]).max() < 0.1 * 3
        np.testing.assert_array_equal(back["latitude"].values, LAT)


def test_xarray_names_and_orderings(tmp_path):
    path = tmp_path / "short_names.nc"
    _write_netcdf(path, "lat", "lon")
    with xr.open_dataset(path) as ds:
        assert find_latlon(ds) == ("lat", "lon")
        ring = latlon_to_healpix_xr(ds["orography"], NSIDE, ordering="ring", method="conservative")
        nest = latlon_to_healpix_xr(ds["orography"], NSIDE, method="conservative")
        np.testing.assert_allclose(ring.values, from_nest(torch.from_numpy(nest.values), "ring").numpy())
        with pytest.raises(ValueError, match="stored in 'ring' order but ordering='nest'"):
            healpix_to_latlon_xr(ring, LAT, LON, ordering="nest")
        with pytest.raises(ValueError, match="latitude dimension named one of"):
            latlon_to_healpix_xr(ds.rename({"lat": "y"}), NSIDE)
        with pytest.raises(ValueError, match=r"ordering 'nest' keeps HEALPix pixels in the dimension"):
            healpix_to_latlon_xr(ds, LAT, LON, ordering="nest")


def test_netcdf_to_unet_and_back(tmp_path):
    """The README pipeline: netCDF -> HEALPix -> Multi-ResNet on the Haar / SH hierarchy -> lat-lon."""
    from geounet.hierarchy.healpix import HealpixHaarHierarchy
    from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
    from geounet.models.unet import build_unet
    from geounet.nn.message_passing import MessagePassingFactory

    path = tmp_path / "era.nc"
    _write_netcdf(path)
    with xr.open_dataset(path) as ds:
        hp_ds = latlon_to_healpix_xr(ds, NSIDE, method="conservative")
        x = torch.from_numpy(hp_ds["orography"].values).float()[None, :, None]  # [1, N, 1]
        for hierarchy in (HealpixHaarHierarchy(NSIDE, 3), HealpixSHHierarchy(NSIDE, 3, iterations=5)):
            model = build_unet(hierarchy, 1, 1, MessagePassingFactory(hierarchy), width=8)
            y = model(x, hierarchy)
            assert y.shape == (1, 768, 1) and torch.isfinite(y).all()
        out = hp_ds["orography"].copy(data=y[0, :, 0].detach().double().numpy())
        back = healpix_to_latlon_xr(out, ds.latitude, ds.longitude, ordering="nest")
        assert back.dims == ("lat", "lon") and back.attrs["regrid_method"] == "bilinear"


def test_regrid_operator_hands_out_a_tensor_of_its_own():
    """The operators are cached; changing a returned one must not change later results."""
    data = torch.randn(2, 45, 72, dtype=torch.float64)
    expected = latlon_to_healpix(data, LAT, LON, NSIDE)
    operator = regrid_operator(LAT, LON, NSIDE, "bilinear", "to_healpix")
    operator.values().zero_()
    torch.testing.assert_close(latlon_to_healpix(data, LAT, LON, NSIDE), expected, rtol=0, atol=0)
    assert regrid_operator(LAT, LON, NSIDE, "bilinear", "to_healpix").values().abs().sum() > 0
