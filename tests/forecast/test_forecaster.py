"""Forecasts from new data: a self-contained run folder, ERA5 names, masks, gaps, the WeatherBench-2 layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import xarray as xr
from forecast_files import era5_like, land, sst, t2m

from geounet.cli import main
from geounet.data import climate_dataset as cd
from geounet.experiment.config import config_from_dict, load_config
from geounet.inference import Forecaster
from geounet.tasks import prepare_task

NSIDE = 4
TASK = {"name": "forecast", "variables": ["t2m", "z500"], "nside": NSIDE, "train_rollout": 2,
        "train_dates": ["2000-01-01", "2000-01-07"], "val_dates": ["2000-01-08", "2000-01-09"],
        "test_dates": ["2000-01-10", "2000-01-12"]}
SMALL = {"model": {"width": 8, "num_levels": 2, "channel_mult": [1, 2]},
         "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2, "warmup_steps": 1}}


def toml(task: dict) -> str:
    lines = []
    for section, values in {"task": task, **SMALL}.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def train(folder, data: xr.Dataset, **task) -> dict:
    """Train a tiny run in ``folder/run`` from a config with paths relative to ``folder``."""
    data.to_netcdf(folder / "era5.nc")
    (folder / "forecast.toml").write_text(toml({**TASK, "data": "era5.nc", "cache_dir": "cache", **task}))
    assert main(["train", "--config", str(folder / "forecast.toml"), "--out", str(folder / "run"), "--quiet"]) == 0
    return json.loads((folder / "run" / "metrics.json").read_text())


def test_config_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "forecast.toml").write_text(toml({**TASK, "data": "files/*.nc"}))
    monkeypatch.chdir(tmp_path / "b")
    cfg = load_config(tmp_path / "a" / "forecast.toml", ["task.cache_dir='here'"])
    assert cfg.task.data == str(tmp_path / "a" / "files" / "*.nc")  # the file's folder, not the working directory
    assert cfg.task.cache_dir == str(tmp_path / "b" / "here")  # an override: the working directory


def test_a_run_folder_forecasts_from_a_new_file_after_its_data_are_gone(tmp_path, monkeypatch, capsys):
    trained_in = tmp_path / "a"
    trained_in.mkdir()
    train(trained_in, era5_like(days=12))
    (trained_in / "era5.nc").unlink()
    shutil.rmtree(trained_in / "cache")
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    new = era5_like(days=3, start="2021-06-01", time_name="valid_time", level_name="pressure_level")  # new-CDS names
    new.to_netcdf("new.nc")
    forecaster = Forecaster.load(trained_in / "run")
    forecast = forecaster.predict("new.nc", init="2021-06-02T06", steps=3)
    assert forecast["t2m"].dims == ("time", "lead_time", "latitude", "longitude")
    np.testing.assert_array_equal(forecast.latitude, new.latitude)
    assert forecast.valid_time.values[0, -1] == np.datetime64("2021-06-02T06") + np.timedelta64(18, "h")
    truth = t2m(new.latitude.values[:, None], new.longitude.values[None], 30 + 6)  # 6 h after init, 30 h in
    assert np.abs(forecast["t2m"].values[0, 0] - truth).mean() < 10  # a sane forecast in K
    # the same states from an xarray Dataset with the old names give the same forecast
    renamed = new.rename(valid_time="time", pressure_level="level")
    again = forecaster.predict(renamed, init="2021-06-02T06", steps=3)
    np.testing.assert_array_equal(again["z500"].values, forecast["z500"].values)
    with pytest.raises(FileNotFoundError, match=r"training data .*era5.nc are gone \(searched .*\); pass the data"):
        forecaster.predict(init="2000-01-10T06", steps=1)
    with pytest.raises(cd.ClimateDataError, match="the data have none at 2021-05-31T18"):
        forecaster.predict(new, init="2021-06-01T00", steps=1)
    with pytest.raises(cd.ClimateDataError, match="not on the grid the run was trained on: its 23 latitudes"):
        forecaster.predict(new.isel(latitude=slice(0, None, 2)), init="2021-06-02T06", steps=1)
    # the command, with --data, in WeatherBench 2's layout
    assert main(["forecast", str(trained_in / "run"), "--data", "new.nc", "--init", "2021-06-02T06", "--steps", "2",
                 "--layout", "weatherbench2", "--out", "wb2.nc"]) == 0
    with xr.open_dataset("wb2.nc") as wb2:
        assert wb2["z"].dims == ("time", "prediction_timedelta", "level", "latitude", "longitude")
        assert wb2["t2m"].dims == ("time", "prediction_timedelta", "latitude", "longitude")
        assert wb2.level.values.tolist() == [500.0]
        np.testing.assert_allclose(wb2["z"].sel(level=500.0).values, forecast["z500"].values[:, :2], rtol=1e-6)
    assert main(["forecast", str(trained_in / "run"), "--init", "2000-01-10T06", "--steps", "2", "--out",
                 "f.nc"]) == 2
    assert "pass the data to forecast from (geounet forecast --data PATH" in capsys.readouterr().err


def test_valid_time_files_and_a_time_name_setting(tmp_path):
    path = tmp_path / "cds.nc"
    era5_like(time_name="valid_time", level_name="pressure_level").to_netcdf(path)
    archive = cd.open_archive(str(path), ["t2m", "z500"], "latlon", NSIDE, tmp_path / "cache")
    assert archive.times[0] == np.datetime64("2000-01-01") and archive.meta["time_name"] == "valid_time"
    era5_like(time_name="date").to_netcdf(tmp_path / "date.nc")
    with pytest.raises(cd.ClimateDataError, match=r"no time dimension \(its dims are \['date', 'latitude', "
                                                  r"'longitude'\]; a time dimension is one named time or valid_time"):
        cd.open_archive(str(tmp_path / "date.nc"), ["t2m"], "latlon", NSIDE, tmp_path / "cache")
    named = cd.open_archive(str(tmp_path / "date.nc"), ["t2m"], "latlon", NSIDE, tmp_path / "cache", time_name="date")
    np.testing.assert_array_equal(named.fields[:], cd.open_archive(str(path), ["t2m"], "latlon", NSIDE,
                                                                   tmp_path / "cache").fields[:])


def masked_task(tmp_path, **task):
    path = tmp_path / "ocean.nc"
    era5_like(days=12, with_sst=True).to_netcdf(path)
    raw = {"task": {**TASK, "variables": ["sst", "z500"], "data": str(path), "cache_dir": str(tmp_path / "cache"),
                    **task}, **SMALL}
    cfg = config_from_dict(raw)
    return cfg, prepare_task(cfg.task, 2)


def test_masked_variables_stay_out_of_the_loss_and_the_scores(tmp_path):
    _, task = masked_task(tmp_path)
    valid = torch.from_numpy(task.train.archive.valid)  # [N, 2]
    assert valid[:, 1].all() and 0 < (~valid[:, 0]).sum() < valid.shape[0]
    # a pixel is valid when every lat-lon point it is interpolated from is ocean
    assert any("mask of sst:" in line and "HEALPix pixels left out" in line for line in task.log)
    assert task.log[0] == "constant fields: lsm (found by name; set task.constants to choose)"
    batch = task.train.batch(np.arange(2))
    c = 2  # channels
    land_pixels = ~valid[:, 0]
    assert (batch.targets[:, land_pixels, 0::c] == 0).all() and batch.inputs.state[:, :, land_pixels, 0].isnan().all()
    net = torch.nn.Module()
    net.forward = lambda x, hierarchy: torch.randn(*x.shape[:2], 2 * c)  # any network
    model = task.structure.wrap_model(net)
    prediction = model(batch.inputs, batch.hierarchy)
    assert (prediction[:, land_pixels, 0::c] == 0).all()  # the loss sees 0 - 0 there, whatever the network
    report = task.evaluate_extra(model, torch.device("cpu"))
    assert all(np.isfinite(report["persistence_rmse_sst"])) and all(np.isfinite(report["model_acc_sst"]))


def test_masked_forecasts_are_nan_where_the_input_is(tmp_path):
    metrics = train(tmp_path, era5_like(days=12, with_sst=True), variables=["sst", "t2m"])
    assert any(line.startswith("mask of sst") for line in metrics["data"])
    new = era5_like(days=2, start="2020-01-01", with_sst=True)
    forecast = Forecaster.load(tmp_path / "run").predict(new, init="2020-01-01T18", steps=2)
    is_land = land(new.latitude.values[:, None], new.longitude.values[None])
    values = forecast["sst"].values  # [1, 2, H, W]
    assert np.isnan(values[..., is_land]).all()
    ocean = np.isfinite(values[0, 0])
    assert ocean.sum() > 0.8 * (~is_land).sum()  # ocean points next to the coast may have no valid pixel
    truth = sst(new.latitude.values[:, None], new.longitude.values[None], 24)
    assert np.abs(values[0, 0][ocean] - truth[ocean]).mean() < 5
    assert np.isfinite(forecast["t2m"].values).all()
    new["sst"][3, 20, 15] = np.nan  # an ocean point (latitude 8, longitude 75) at the init time
    with pytest.raises(cd.ClimateDataError, match="where the run was trained with values"):
        Forecaster.load(tmp_path / "run").predict(new, init="2020-01-01T18", steps=1)


def test_missing_values_that_move_are_refused(tmp_path):
    ds = era5_like(with_sst=True)
    ds["sst"][4, 0, 0] = np.nan  # a point that has a value at the first time
    ds.to_netcdf(tmp_path / "moving.nc")
    with pytest.raises(cd.ClimateDataError, match="must stay at the same points at every time"):
        cd.open_archive(str(tmp_path / "moving.nc"), ["sst"], "latlon", NSIDE, tmp_path / "cache")


@pytest.mark.parametrize("missing, dropped", [("2000-01-07T06", 0), ("2000-01-03T06", 5)])
def test_a_gap_drops_only_the_windows_that_cross_it(tmp_path, missing, dropped):
    path = tmp_path / "gap.nc"
    full = era5_like(days=12)
    full.drop_sel(time=np.datetime64(missing)).to_netcdf(path)
    dates = {"train_dates": ["2000-01-01", "2000-01-06"]}  # 7 January is in no split
    cfg = config_from_dict({"task": {**TASK, "data": str(path), "cache_dir": str(tmp_path / "cache"), **dates},
                            **SMALL})
    task = prepare_task(cfg.task, 2)
    assert "time axis: 1 gap(s) in its 6 h spacing" in task.log[-1 - bool(dropped)]
    windows = len(task.train)
    full.to_netcdf(tmp_path / "full.nc")
    cfg_full = config_from_dict({"task": {**TASK, "data": str(tmp_path / "full.nc"),
                                          "cache_dir": str(tmp_path / "cache"), **dates}, **SMALL})
    # a sample spans 6 states: 6 windows held the missing state, 5 of them now cross the gap
    assert windows == len(prepare_task(cfg_full.task, 2).train) - (6 if dropped else 0)
    if dropped:
        assert task.log[-1] == f"train split: {dropped} window(s) crossing a gap dropped, {windows} kept"


def test_what_the_checkpoint_fixes_cannot_be_overridden_and_outputs_are_not_replaced(tmp_path, capsys):
    train(tmp_path, era5_like(days=13))
    run = str(tmp_path / "run")
    capsys.readouterr()
    # swapped variables would relabel the channels the model (and its normalisation) was trained on
    assert main(["evaluate", run, "--set", 'task.variables=["z500", "t2m"]']) == 2
    assert ("the checkpoint fixes task.variables = ['t2m', 'z500'] (the model's channels, their order, "
            "normalisation and grid were trained on it)") in capsys.readouterr().err
    assert main(["evaluate", run, "--set", "task.nside=8"]) == 2
    assert "the checkpoint fixes task.nside = 4" in capsys.readouterr().err
    assert main(["evaluate", run, "--set", 'task.variables=["t2m", "z500"]']) == 0  # the trained value is fine
    # a forecast whose output cannot fit is refused before the rollout, with the estimate
    assert main(["forecast", run, "--init", "2000-01-10T06", "--steps", "100000000",
                 "--out", str(tmp_path / "huge.nc")]) == 2
    assert "a forecast of 100,000,000 lead times from 1 init time(s) needs about" in capsys.readouterr().err
    # a zarr store is replaced only with --overwrite, and then as a whole
    store = tmp_path / "forecast.zarr"
    forecast = ["forecast", run, "--init", "2000-01-10T06", "--out", str(store)]
    assert main([*forecast, "--steps", "3"]) == 0
    assert main([*forecast, "--steps", "2"]) == 2
    assert "forecast.zarr exists; pass --overwrite" in capsys.readouterr().err
    assert main([*forecast, "--steps", "2", "--overwrite"]) == 0
    assert xr.open_zarr(store).sizes["lead_time"] == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging folder left
