import numpy as np
import pytest
import torch
import xarray as xr

import geounet.datagen.shallow_water as sw
from geounet.data.cache import CacheMismatchError, save_netcdf

SMALL = dict(num_trajectories=3, steps=2, dt_hours=1.0, nlat=16, nlon=32, seed=0)


@pytest.fixture(scope="module")
def small_ds():
    return sw.generate_shallow_water(**SMALL)


def _solver_and_ics(num=2, nlat=16, nlon=32):
    solver = sw.make_solver(nlat, nlon, sw.stable_solver_dt(nlat))
    return solver, sw.random_initial_conditions(solver, num, seed=3, mach=0.1)


def test_batched_integration_equals_solver_timestep():
    solver, uspec = _solver_and_ics(num=2)
    ours = sw.integrate(solver, uspec, num_outputs=1, substeps=4)[-1]  # [3, 2, L, M]
    for b in range(2):
        reference = solver.timestep(uspec[:, b], 4)
        torch.testing.assert_close(ours[:, b], reference, rtol=1e-12, atol=1e-12 * reference.abs().max().item())


def test_mass_conserved_and_mean_vorticity_zero():
    solver, uspec = _solver_and_ics(num=2)
    states = sw.integrate(solver, uspec, num_outputs=3, substeps=4)  # [T, 3, B, L, M]
    fields = sw.spectral_to_grid(solver, states.movedim(1, 0))  # each [T, B, nlat, nlon]
    mass = solver.integrate_grid(fields["h"], dimensionless=True)  # [T, B]
    torch.testing.assert_close(mass, mass[:1].expand_as(mass), rtol=1e-12, atol=0)
    circulation = solver.integrate_grid(fields["vorticity"], dimensionless=True)
    scale = fields["vorticity"].abs().max()
    assert (circulation.abs() < 1e-12 * scale).all()
    # The flow actually evolves (the test above is not vacuous).
    assert (fields["vorticity"][-1] - fields["vorticity"][0]).abs().max() > 1e-3 * scale


def test_random_ic_is_balanced_and_scaled():
    solver, uspec = _solver_and_ics(num=2)
    tendency = solver.dudtspec(uspec)  # [3, B, L, M]
    assert tendency[2].abs().max() < 1e-9 * tendency[1].abs().max()
    assert uspec[2].abs().max() == 0  # set to zeros, not computed
    fields = sw.spectral_to_grid(solver, uspec)
    wind = torch.sqrt(fields["u"] ** 2 + fields["v"] ** 2)
    expected = 0.1 * float(torch.sqrt(solver.gravity * solver.havg))
    torch.testing.assert_close(sw.area_rms(solver, wind), torch.full((2,), expected, dtype=torch.float64))


def test_winds_match_vorticity_and_divergence_by_finite_differences():
    """Independent check of the conventions: u eastward, v northward, lat descending."""
    ds = sw.generate_shallow_water(1, 1, 1.0, 48, 96, seed=1)
    radius = ds.attrs["radius_m"]
    lat = np.deg2rad(ds.lat.values)[:, None]
    lon = np.deg2rad(ds.lon.values)
    u, v = (ds[name].isel(sample=0, time=0).values.astype(np.float64) for name in ("u", "v"))
    dlon = lon[1] - lon[0]
    d_dlon = lambda f: (np.roll(f, -1, axis=1) - np.roll(f, 1, axis=1)) / (2 * dlon)  # noqa: E731
    d_dlat = lambda f: np.gradient(f, lat[:, 0], axis=0)  # noqa: E731
    vorticity = (d_dlon(v) - d_dlat(u * np.cos(lat))) / (radius * np.cos(lat))
    divergence = (d_dlon(u) + d_dlat(v * np.cos(lat))) / (radius * np.cos(lat))
    interior = slice(6, -6)
    ref_vort = ds.vorticity.isel(sample=0, time=0).values[interior]
    err = np.abs(vorticity[interior] - ref_vort).max() / np.abs(ref_vort).max()
    assert err < 0.1  # second-order differences; a sign or axis error gives err >= 1
    ref_div = ds.divergence.isel(sample=0, time=0).values[interior]
    assert np.abs(divergence[interior]).max() < 0.05 * np.abs(ref_vort).max()  # δ = 0 at t = 0
    assert np.abs(ref_div).max() == 0  # exact: the transform of an all-zero spectrum


def test_layout_coordinates_and_attributes(small_ds):
    ds = small_ds
    for name in sw.VARIABLES:
        assert ds[name].dims == ("sample", "time", "lat", "lon")
        assert ds[name].shape == (3, 3, 16, 32)
        assert ds[name].dtype == np.float32
        assert "units" in ds[name].attrs and "standard_name" in ds[name].attrs
    np.testing.assert_allclose(ds.time.values, [0.0, 1.0, 2.0])
    assert ds.lat.values[0] == pytest.approx(90.0) and ds.lat.values[-1] == pytest.approx(-90.0)
    assert (np.diff(ds.lat.values) < 0).all()
    assert ds.lon.values[0] == 0.0 and ds.lon.values[-1] < 360.0
    np.testing.assert_allclose(ds.quad_weight.sum(), 2.0)
    assert ds.attrs["seed"] == 0 and ds.attrs["nlat"] == 16
    assert float(ds.h.mean()) == pytest.approx(ds.attrs["mean_depth_m"], rel=0.05)


def test_reproducible_and_prefix_stable(small_ds):
    state = torch.get_rng_state()
    again = sw.generate_shallow_water(**{**SMALL, "num_trajectories": 2})
    assert torch.equal(state, torch.get_rng_state()), "global RNG must be left untouched"
    np.testing.assert_array_equal(again.h.values, small_ds.h.values[:2])
    other = sw.generate_shallow_water(**{**SMALL, "seed": 1})
    assert not np.allclose(other.h.values, small_ds.h.values)


def test_galewsky_case():
    ds = sw.generate_shallow_water(1, 2, 1.0, 32, 64, initial_condition="galewsky")
    assert ds.attrs["initial_condition"] == "galewsky"
    assert all(np.isfinite(ds[name].values).all() for name in sw.VARIABLES)
    # The jet is a westerly in the northern mid-latitudes.
    jet = ds.u.isel(sample=0, time=0).mean("lon")
    assert float(jet.sel(lat=slice(60, 30)).max()) > 30.0
    with pytest.raises(ValueError, match="num_trajectories=1"):
        sw.generate_shallow_water(2, 2, 1.0, 16, 32, initial_condition="galewsky")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_trajectories=0), "num_trajectories"),
        (dict(steps=-1), "steps"),
        (dict(dt_hours=0.3), "multiple of the solver step"),
        (dict(nlon=20), "nlon"),
        (dict(grid="healpix"), "grid"),
        (dict(initial_condition="vortex"), "initial_condition"),
        (dict(spinup_hours=0.5), "spinup_hours"),
        (dict(mach=-1.0), "mach"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sw.generate_shallow_water(**{**SMALL, **kwargs})


def _stored_seed(path):
    with xr.open_dataset(path) as ds:
        return ds.attrs["seed"]


def test_cache_reuse_and_mismatch(tmp_path, monkeypatch, small_ds):
    calls = []
    real = sw.generate_shallow_water

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(sw, "generate_shallow_water", counting)
    first = sw.load_or_generate_shallow_water(tmp_path, **SMALL)
    second = sw.load_or_generate_shallow_water(tmp_path, **SMALL)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.h.values, small_ds.h.values)
    np.testing.assert_array_equal(second.u.values, first.u.values)
    assert second.attrs["seed"] == 0
    # A different request gets a different file; an intact file recording other parameters is
    # refused, not overwritten (a damaged one is regenerated: tests/data/test_cache_integrity.py).
    sw.load_or_generate_shallow_water(tmp_path, **{**SMALL, "seed": 5})
    assert len(calls) == 2 and len(list(tmp_path.glob("shallow_water-*.nc"))) == 2
    forged = first.copy()
    explicit_defaults = {**SMALL, "mach": 0.1, "grid": "equiangular"}
    assert sw.load_or_generate_shallow_water(tmp_path, **explicit_defaults).attrs["mach"] == 0.1
    assert len(calls) == 2, "spelling out a default must name the same file"
    (target,) = [p for p in tmp_path.glob("*.nc") if _stored_seed(p) == 0]
    save_netcdf(forged, target, {"generator": "shallow_water", "other": 1})
    with pytest.raises(CacheMismatchError):
        sw.load_or_generate_shallow_water(tmp_path, **SMALL)


def test_normalization_stats(small_ds):
    stats = sw.normalization_stats(small_ds, ["h", "u"])
    w = small_ds.quad_weight.values[None, None, :, None] * np.ones(small_ds.h.shape)
    h = small_ds.h.values.astype(np.float64)
    mean = (w * h).sum() / w.sum()
    std = np.sqrt((w * (h - mean) ** 2).sum() / w.sum())
    assert stats["h"] == pytest.approx((mean, std), rel=1e-10)
    plain = sw.normalization_stats(small_ds, ["u"], area_weighted=False)["u"]
    assert plain == pytest.approx((small_ds.u.values.astype(np.float64).mean(), small_ds.u.values.std()), rel=1e-5)
    with pytest.raises(ValueError, match="not in the dataset"):
        sw.normalization_stats(small_ds, ["pressure"])
