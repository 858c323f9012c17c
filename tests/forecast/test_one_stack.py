"""One forecasting stack: the shallow-water and forecast tasks share the model, the batches and the scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from forecast_files import era5_like
from torch import nn

from geounet.data.climate_dataset import ForecastSamples
from geounet.data.forecast_samples import TrajectorySamples
from geounet.experiment.config import config_from_dict
from geounet.models.autoregressive import Autoregressive
from geounet.tasks import forecast, prepare_task, shallow_water_healpix

NSIDE, C, T_IN, T_OUT = 8, 2, 2, 2


class Damped(nn.Module):
    """A deterministic stand-in network that reads only the state channels of its input."""

    def forward(self, x, hierarchy):
        return -0.1 * x[..., : T_OUT * C]


def prepared(tmp_path, variables, **data):
    path = tmp_path / "era5.nc"
    era5_like(days=12, **data).to_netcdf(path)
    raw = {"task": {"name": "forecast", "data": str(path), "variables": variables, "nside": NSIDE,
                    "train_dates": ["2000-01-01", "2000-01-07"], "val_dates": ["2000-01-08", "2000-01-09"],
                    "test_dates": ["2000-01-10", "2000-01-12"], "train_rollout": 2,
                    "cache_dir": str(tmp_path / "cache")},
           "model": {"width": 8, "num_levels": 2, "channel_mult": [1, 2]}, "train": {"steps": 1, "batch_size": 2}}
    cfg = config_from_dict(raw)
    return path, cfg.task, prepare_task(cfg.task, 2)


def test_both_tasks_score_the_same_forecasts_alike(tmp_path):
    """The test windows of a forecast archive, scored by the forecast task and, as in-memory
    trajectories, by the shallow-water task: the same model gives the same scores, and the
    forecast task's source-grid persistence RMSE is WeatherBench 2's on the netCDF itself."""
    path, config, task = prepared(tmp_path, ["t2m", "z500"])
    normalisation, hierarchy = task.train.normalisation, task.train.hierarchy
    windows = ForecastSamples(task.train.archive, hierarchy, normalisation, task.test.window, task.test.inits[:3],
                              steps=config.rollout_steps)
    states = windows.states(np.arange(3))  # [3, T_in + L, N, C]
    trajectories = TrajectorySamples(states, hierarchy, normalisation, T_IN, T_OUT, steps=config.rollout_steps)
    assert len(trajectories) == 3  # one window per trajectory
    model = Autoregressive(Damped(), normalisation, T_IN, T_OUT, train_rollout=2)
    climatology = states.mean(dim=(0, 1))  # any [N, C]
    device = torch.device("cpu")
    by_shallow_water = shallow_water_healpix.rollout_scores(model, trajectories, climatology, config.variables, device)
    by_forecast = forecast.lead_time_scores(model, windows, climatology, config, device)
    assert set(by_shallow_water) == {f"{label}_{score}_{v}" for label in ("model", "persistence")
                                     for score in ("rmse", "bias", "acc") for v in config.variables}
    for key, value in by_shallow_water.items():
        np.testing.assert_allclose(by_forecast[key], value, rtol=1e-10, err_msg=key)
    assert by_forecast["model_rmse_t2m"] != by_forecast["persistence_rmse_t2m"]  # the model does something

    # on the source grid: persistence from the file, cell areas of the 4-degree grid
    assert set(by_forecast["score_grids"]) == {"", "latlon_"}
    source = xr.open_dataset(path)
    t2m = source["t2m"].values.astype(np.float64)  # [T, H, W]
    rows = windows.rows(np.arange(3))  # [I, T_in + L]
    edges = np.radians(np.r_[90.0, np.arange(86.0, -87.0, -4.0), -90.0])  # of latitudes 88, 84, ..., -88
    area = (np.sin(edges[:-1]) - np.sin(edges[1:]))[:, None] * np.ones(t2m.shape[2])  # [H, W]
    truth, persistence = t2m[rows[:, T_IN:]], t2m[rows[:, T_IN - 1]][:, None]  # [I, L, H, W], [I, 1, H, W]
    mse = ((persistence - truth) ** 2 * area).sum((2, 3)) / area.sum()  # [I, L]
    np.testing.assert_allclose(by_forecast["latlon_persistence_rmse_t2m"], np.sqrt(mse.mean(0)), rtol=1e-6)
    healpix, latlon = (np.array(by_forecast[f"{grid}model_rmse_z500"]) for grid in ("", "latlon_"))
    assert np.all(np.abs(latlon / healpix - 1) < 0.5)  # the same forecast on another grid


def test_targets_are_the_model_outputs_units(tmp_path):
    """A batch round trip: the targets, read as model outputs, are the true states (NaN without data)."""
    _, config, task = prepared(tmp_path, ["sst", "z500"], with_sst=True)
    batch = task.train.batch(np.arange(3))
    states = task.train.states(np.arange(3))  # [B, T_in + k T_out, N, C] physical
    model = task.structure.wrap_model(Damped())
    physical = model.physical(batch.targets, batch.inputs)  # [B, k T_out, N, C]
    valid = torch.from_numpy(task.train.archive.valid)
    assert (~valid[:, 0]).any() and physical[..., ~valid[:, 0], 0].isnan().all()
    torch.testing.assert_close(physical[..., valid[:, 0], 0], states[:, T_IN:, valid[:, 0], 0])
    torch.testing.assert_close(physical[..., 1], states[:, T_IN:, :, 1])
    moved = batch.inputs.to("cpu")
    assert all(torch.equal(getattr(moved, f), getattr(batch.inputs, f)) for f in ("forcings", "constants"))
    assert batch.inputs.steps == config.train_rollout and batch.inputs.forcings.shape[2] == T_OUT


def test_the_models_units_are_saved_with_it(tmp_path):
    _, config, task = prepared(tmp_path, ["t2m", "z500"])
    model = task.structure.wrap_model(Damped())
    bare = forecast.structure(config, 2, num_constants=1).wrap_model(Damped())
    assert not torch.equal(bare.normalisation.mean, model.normalisation.mean)
    bare.load_state_dict(model.state_dict())
    for name, value in model.normalisation.state_dict().items():
        assert torch.equal(bare.normalisation.state_dict()[name], value)


def test_statistics_without_spread_are_refused():
    from geounet.models.autoregressive import Normalisation

    with pytest.raises(ValueError, match="constant over the training data"):
        Normalisation(torch.zeros(2), torch.tensor([1.0, 0.0]), torch.ones(2), torch.ones(3, 2, dtype=torch.bool))
