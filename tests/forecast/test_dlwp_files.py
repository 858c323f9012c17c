"""DLWP-HEALPix forecast files, in and out.

The files going in are written as DLWP-HEALPix's forecast script writes them: a
``prediction [time, step, channel_out, face, height, width]`` DataArray with ``step`` a list
of ``pd.Timedelta`` starting at 0, face / height / width coordinates from the input data,
split by ``to_dataset(dim="channel_out")``; its faces come from NEST maps through DLWP's own
NEST -> face mapping (:func:`dlwp_face_image`, written from DLWP's ``hpx1d2hpx3d``). The
files coming out are read back the way DLWP's tools read them: ``variables[name][t, s]`` a
``[face, height, width]`` image, ``time + step`` the valid time.
"""

from __future__ import annotations

import json

import healpy as hp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from forecast_files import LEVELS, geopotential, t2m

from geounet.cli import main
from geounet.data import climate_dataset as cd
from geounet.data.forecast_files import lead_series
from geounet.errors import GeounetError
from geounet.inference import Forecaster

NSIDE = 4
INITS = pd.date_range("2000-01-01", periods=48, freq="6h").to_numpy()
LEADS = [pd.Timedelta(hours=0), pd.Timedelta(hours=6), pd.Timedelta(hours=12)]
#: the forecasts in the file are the truth plus this much per hour of lead, so that each lead is recognisable
DRIFT = 0.5


def dlwp_face_image(nest_map: np.ndarray) -> np.ndarray:
    """DLWP's ``hpx1d2hpx3d``: split the in-face NEST index into its binary digits (most
    significant first), ``y`` from the even and ``x`` from the odd positions, write the value
    at ``[f, x, y]``, then flip both in-face axes. ``[..., N] -> [..., 12, n, n]``."""
    n = NSIDE
    image = np.zeros((*nest_map.shape[:-1], 12, n, n), dtype=nest_map.dtype)
    for index in range(12 * n * n):
        f, local = divmod(index, n * n)
        bits = format(local, "b").zfill(2 * (n.bit_length() - 1))
        y, x = int(bits[::2], 2), int(bits[1::2], 2)
        image[..., f, x, y] = nest_map[..., index]
    return np.flip(image, axis=(-2, -1))


def truth(hours: np.ndarray) -> dict[str, np.ndarray]:
    """The analytic fields of forecast_files at the NEST pixel centres, ``[T, N]`` per channel."""
    lon, lat = hp.pix2ang(NSIDE, np.arange(12 * NSIDE**2), nest=True, lonlat=True)
    hours = hours[:, None]
    return {"t2m": t2m(lat[None], lon[None], hours), "z500": geopotential(LEVELS[0], lat[None], lon[None], hours)}


def hours_since_start(times: np.ndarray) -> np.ndarray:
    return (times - INITS[0]) / np.timedelta64(1, "h")


def write_dlwp_forecast(path) -> None:
    """A DLWP-HEALPix forecast file: every init of :data:`INITS` forecast to the leads :data:`LEADS`."""
    channels = ["t2m", "z500"]
    prediction = np.empty((len(INITS), len(LEADS), len(channels), 12, NSIDE, NSIDE), dtype="float32")
    for s, lead in enumerate(LEADS):
        hours = hours_since_start(INITS + lead.to_timedelta64())
        for c, name in enumerate(channels):
            prediction[:, s, c] = dlwp_face_image(truth(hours)[name] + DRIFT * lead / pd.Timedelta(hours=1))
    prediction_da = xr.DataArray(
        prediction,
        dims=["time", "step", "channel_out", "face", "height", "width"],
        coords={"time": INITS, "step": LEADS, "channel_out": channels, "face": np.arange(12, dtype=np.int64),
                "height": np.arange(NSIDE, dtype=np.int64), "width": np.arange(NSIDE, dtype=np.int64)},
    )
    prediction_da.to_dataset(dim="channel_out").to_netcdf(path)


@pytest.mark.parametrize("lead_hours", [0, 12])
def test_a_dlwp_forecast_file_is_read_as_the_series_of_one_lead(tmp_path, lead_hours):
    write_dlwp_forecast(tmp_path / "forecast.nc")
    archive = cd.open_archive(str(tmp_path / "forecast.nc"), ["t2m", "z500"], "face", NSIDE, tmp_path / "cache",
                              data_step_hours=lead_hours)
    lead = np.timedelta64(lead_hours, "h")
    np.testing.assert_array_equal(archive.times, INITS + lead)  # valid times
    expected = truth(hours_since_start(INITS + lead))
    for c, name in enumerate(["t2m", "z500"]):
        np.testing.assert_allclose(archive.fields[:][..., c], expected[name] + DRIFT * lead_hours, rtol=1e-6)


def test_a_lead_the_file_does_not_hold_is_refused(tmp_path):
    write_dlwp_forecast(tmp_path / "forecast.nc")
    with xr.open_dataset(tmp_path / "forecast.nc") as ds:
        with pytest.raises(GeounetError, match=r"the lead 3 h is not among the file's 'step' values \['0', '6', "
                                               r"'12'\] \(hours\); set task.data_step_hours"):
            lead_series(ds, 3)
        with pytest.raises(GeounetError, match="the data have no lead dimension"):
            lead_series(ds.isel(step=0, drop=True), 6)
        assert lead_series(ds.isel(step=0, drop=True)).identical(ds.isel(step=0, drop=True))


def test_lead_hours_as_numbers_with_units(tmp_path):
    with xr.open_dataset(_written(tmp_path)) as ds:
        numeric = ds.assign_coords(step=("step", [0.0, 6.0, 12.0], {"units": "hours"}))
        np.testing.assert_array_equal(lead_series(numeric, 6).time.values, INITS + np.timedelta64(6, "h"))
        with pytest.raises(GeounetError, match="not timedeltas; decode it"):
            lead_series(numeric.assign_coords(step=("step", [0.0, 6.0, 12.0])), 6)


def _written(tmp_path):
    path = tmp_path / "forecast.nc"
    write_dlwp_forecast(path)
    return path


def test_train_on_a_dlwp_file_and_forecast_in_dlwps_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_dlwp_forecast(tmp_path / "forecast.nc")
    task = {"name": "forecast", "data": "forecast.nc", "layout": "face", "variables": ["t2m", "z500"],
            "nside": NSIDE, "cache_dir": "cache", "train_dates": ["2000-01-01", "2000-01-07"],
            "val_dates": ["2000-01-08", "2000-01-09"], "test_dates": ["2000-01-10", "2000-01-12"]}
    sections = {"task": task, "model": {"width": 8, "num_levels": 2, "channel_mult": [1, 2]},
                "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2, "warmup_steps": 1}}
    lines = [line for name, values in sections.items()
             for line in [f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]]
    (tmp_path / "forecast.toml").write_text("\n".join(lines) + "\n")
    assert main(["train", "--config", "forecast.toml", "--out", "run", "--quiet"]) == 0
    init = INITS[20]
    assert main(["forecast", "run", "--data", "forecast.nc", "--init", str(init), "--steps", "3", "--layout", "dlwp",
                 "--out", "out.nc"]) == 0
    ours = Forecaster.load("run").predict("forecast.nc", init=init, steps=3)
    np.testing.assert_array_equal(ours.valid_time.values[0], init + np.arange(1, 4) * np.timedelta64(6, "h"))
    # read back as DLWP's tools do
    with xr.open_dataset("out.nc") as out, xr.open_dataset("forecast.nc") as given:
        assert out["t2m"].dims == ("time", "step", "face", "height", "width")
        np.testing.assert_array_equal(out.time.values, [init])
        assert [pd.Timedelta(s) for s in out.step.values] == [pd.Timedelta(hours=h) for h in (0, 6, 12, 18)]
        for dim, size in (("face", 12), ("height", NSIDE), ("width", NSIDE)):
            np.testing.assert_array_equal(out[dim].values, np.arange(size))
        lon, lat = hp.pix2ang(NSIDE, np.arange(12 * NSIDE**2), nest=True, lonlat=True)
        np.testing.assert_array_equal(out["lat"].values, dlwp_face_image(lat))
        np.testing.assert_array_equal(out["lon"].values, dlwp_face_image(lon))
        for name in ("t2m", "z500"):
            initial = out.variables[name][0, 0].values  # [face, height, width]
            np.testing.assert_array_equal(initial, given.variables[name][20, 0].values)  # step 0: the analysis
            # steps 1..3: the forecast geounet writes in its own layout, for this face-layout run on the same grid
            np.testing.assert_array_equal(out.variables[name][0, 1:].values, ours[name].values[0])
    # a lead of the file as the initial states: 6 h later valid times, so the init 6 h later has its inputs
    assert main(["forecast", "run", "--data", "forecast.nc", "--data-step", "6", "--init",
                 str(INITS[-1] + np.timedelta64(6, "h")), "--steps", "1", "--layout", "dlwp", "--out", "lead.nc"]) == 0
    with xr.open_dataset("lead.nc") as out, xr.open_dataset("forecast.nc") as given:
        np.testing.assert_array_equal(out.variables["z500"][0, 0].values, given.variables["z500"][-1, 1].values)
