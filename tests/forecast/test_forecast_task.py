"""The forecast task: the autoregressive wrapper, per-lead scores, `geounet train` / `geounet forecast`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr
from forecast_files import era5_like, healpix_like
from torch import nn

from geounet.cli import main
from geounet.data.climate_dataset import FORCINGS
from geounet.experiment.config import config_from_dict
from geounet.hierarchy import HealpixHaarHierarchy
from geounet.models.autoregressive import Autoregressive, ForecastInputs, Normalisation
from geounet.tasks import forecast, prepare_task

NSIDE = 8
C, T_IN, T_OUT, K = 2, 2, 2, 1


class Recorder(nn.Module):
    """A stand-in network: a fixed linear map of its input, recording the ``cond`` it gets."""

    def __init__(self, in_channels: int, film: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, T_OUT * C)
        self.film = nn.Identity() if film else None
        self.conds: list[torch.Tensor | None] = []

    def forward(self, x, hierarchy, cond=None):
        self.conds.append(cond)
        return self.linear(x)


def wrapper(film: bool = True, train_rollout: int = 2) -> Autoregressive:
    torch.manual_seed(0)
    net = Recorder(T_IN * C + T_OUT * len(FORCINGS) + K, film)
    return Autoregressive(net, Normalisation.identity(C, 5), T_IN, T_OUT, train_rollout)


def inputs(steps: int, batch: int = 3, nodes: int = 5) -> ForecastInputs:
    return ForecastInputs(torch.randn(batch, T_IN, nodes, C), torch.randn(batch, steps, T_OUT, nodes, len(FORCINGS)),
                          torch.randn(nodes, K))


def test_a_rollout_is_its_steps_fed_back():
    model = wrapper()
    x = inputs(steps=3)
    rolled = model.physical(model(x, None), x)  # [B, 3 T_out, N, C]
    state = x.state
    for s in range(3):
        step = ForecastInputs(state, x.forcings[:, s : s + 1], x.constants)  # one step at a time
        one = model.physical(model(step, None), step)  # [B, T_out, N, C]
        torch.testing.assert_close(one, rolled[:, s * T_OUT : (s + 1) * T_OUT])
        state = torch.cat([state, one], dim=1)[:, -T_IN:]
    assert [c[0, 0].item() for c in model.net.conds[:3]] == [0.5, 1.0, 1.0]  # lead / trained horizon, held at 1


def test_steps_add_increments_to_the_last_input_state():
    model = wrapper(film=False)
    nn.init.zeros_(model.net.linear.weight)
    nn.init.zeros_(model.net.linear.bias)
    x = inputs(steps=2)
    y = model(x, None)
    assert model.net.conds == [None, None]
    assert (y == 0).all()  # a zero network is persistence: no change
    torch.testing.assert_close(model.physical(y, x), x.state[:, -1:].expand(-1, 2 * T_OUT, -1, -1))
    with pytest.raises(ValueError, match="do not fit the model's"):
        model(ForecastInputs(x.state[..., :-1], x.forcings, x.constants), None)


def test_outputs_are_changes_in_units_of_the_increment_scale():
    """y = (x_{t+j} - x_t) / σ_Δ: the network's increment u moves the standardised state by r u, r = σ_Δ / σ."""
    mean, std, increment_std = torch.tensor([1.0, -2.0]), torch.tensor([2.0, 4.0]), torch.tensor([0.5, 1.0])
    valid = torch.ones(5, C, dtype=torch.bool)
    valid[0, 1] = False
    net = nn.Module()
    net.forward = lambda x, hierarchy: torch.ones(*x.shape[:2], T_OUT * C)  # u = 1 everywhere
    model = Autoregressive(net, Normalisation(mean, std, increment_std, valid), T_IN, T_OUT, 1)
    x = inputs(steps=2)
    x.state[:, :, 0, 1] = float("nan")  # no data there
    y = model(x, None).reshape(3, 5, 2 * T_OUT, C)  # [B, N, S T_out, C]
    leads = torch.tensor([1.0, 1.0, 2.0, 2.0])  # each step adds u = 1 to the last state of the step before
    torch.testing.assert_close(y[:, :, :, 0], leads.expand(3, 5, -1))
    torch.testing.assert_close(y[:, 1:, :, 1], leads.expand(3, 4, -1))
    assert (y[:, 0, :, 1] == 0).all()  # where there are no data the output is 0, as the targets there
    physical = model.physical(model(x, None), x)  # [B, S T_out, N, C]
    torch.testing.assert_close(physical[:, :, 1:], x.state[:, -1:, 1:] + increment_std * leads[:, None, None])
    assert physical[:, :, 0, 1].isnan().all()
def config(tmp_path, path, **task):
    raw = {
        "task": {"name": "forecast", "data": str(path), "variables": ["t2m", "z500"], "nside": NSIDE,
                 "train_dates": ["2000-01-01", "2000-01-07"], "val_dates": ["2000-01-08", "2000-01-09"],
                 "test_dates": ["2000-01-10", "2000-01-12"], "train_rollout": 2, "cache_dir": str(tmp_path / "cache"),
                 **task},
        "model": {"width": 8, "num_levels": 2, "channel_mult": [1, 2]},
        "train": {"steps": 4, "batch_size": 2, "eval_every": 4, "checkpoint_every": 4, "warmup_steps": 1},
    }
    return raw


def test_scores_of_persistence_and_climatology(tmp_path):
    path = tmp_path / "era5.nc"
    era5_like(days=12).to_netcdf(path)
    cfg = config_from_dict(config(tmp_path, path))
    task = prepare_task(cfg.task, 2)
    net = nn.Module()
    model = task.structure.wrap_model(net)  # with the training statistics
    net.forward = lambda x, hierarchy: torch.zeros(*x.shape[:2], T_OUT * C)  # persistence
    report = task.evaluate_extra(model, torch.device("cpu"))
    assert report["lead_hours"] == [6.0, 12.0, 18.0, 24.0]
    assert report["model_rmse_t2m"] == report["persistence_rmse_t2m"]
    assert report["model_rmse_t2m"][0] < report["model_rmse_t2m"][-1]  # the fields move
    # climatology's bias is the mean of (training mean - truth), its RMSE at least that
    assert all(r >= abs(b) for r, b in zip(report["climatology_rmse_z500"], report["climatology_bias_z500"],
                                           strict=True))
    assert len(report["spectrum_truth_t2m"]) == 3 * NSIDE


def run_cli(*args):
    return main([str(a) for a in args])


def test_train_then_forecast_to_the_source_grid(tmp_path, capsys, assert_drawn_png):
    path = tmp_path / "era5.nc"
    era5_like(days=12).to_netcdf(path)
    cfg_path = tmp_path / "forecast.toml"
    cfg_path.write_text(_toml(config(tmp_path, path)))
    run = tmp_path / "run"
    assert run_cli("train", "--config", cfg_path, "--out", run, "--quiet") == 0
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert len(metrics["model_rmse_z500"]) == 4 and "val_mse" in metrics
    assert len(metrics["latlon_model_rmse_z500"]) == 4  # also on the source grid, and metrics.json says so
    assert metrics["score_grids"] == {"": f"HEALPix NEST nside {NSIDE}, equal-area pixels",
                                      "latlon_": "the source lat-lon grid, 45 x 72, cell-area (cos-latitude) "
                                                 "weights, points with data only; forecast and climatology "
                                                 "regridded back bilinearly from HEALPix"}
    assert_drawn_png(run / "skill.png")
    assert_drawn_png(run / "predictions.png")
    out = tmp_path / "forecast.nc"
    assert run_cli("forecast", run, "--init", "2000-01-10T06", "--steps", 3, "--out", out) == 0
    with xr.open_dataset(out) as result:
        source = xr.open_dataset(path)
        assert result["t2m"].dims == ("time", "lead_time", "latitude", "longitude")
        np.testing.assert_array_equal(result.latitude, source.latitude)  # descending, as in the source
        assert result["z500"].attrs["units"] == "m**2 s**-2" and result["z500"].attrs["level"] == 500.0
        assert result.attrs["healpix_nside"] == NSIDE
        assert (result.lead_time.values == np.array([6, 12, 18], dtype="timedelta64[h]")).all()
        assert str(result.valid_time.values[0, -1]).startswith("2000-01-11T00")
        assert np.isfinite(result["t2m"].values).all()
        truth = source["t2m"].sel(time="2000-01-10T12").values
        assert np.abs(result["t2m"].values[0, 0] - truth).mean() < 10  # a sane forecast in K
    assert run_cli("forecast", run, "--init", "2000-01-10T06", "--steps", 3, "--out", out) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert run_cli("forecast", run, "--init", "2000-01-01T00", "--steps", 3, "--out", tmp_path / "f.nc") == 2
    assert "needs the 2 states 6 h apart up to it; the data have none at 1999-12-31T18" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["face", "ring"])
def test_forecast_keeps_a_healpix_layout(tmp_path, layout):
    path = tmp_path / "hp.nc"
    healpix_like(NSIDE, layout, days=12).to_netcdf(path)
    cfg_path = tmp_path / "forecast.toml"
    cfg_path.write_text(_toml(config(tmp_path, path, layout=layout)))
    assert run_cli("train", "--config", cfg_path, "--out", tmp_path / "run", "--quiet") == 0
    out = tmp_path / "forecast.zarr"
    assert run_cli("forecast", tmp_path / "run", "--init", "2000-01-10", "--steps", 2, "--out", out) == 0
    result = xr.open_zarr(out)
    pixels = ("face", "height", "width") if layout == "face" else ("pixel",)
    assert result["t2m"].dims == ("time", "lead_time", *pixels)
    assert result.attrs["healpix_order"] == layout


def test_overlapping_splits_are_one_line(tmp_path, capsys):
    path = tmp_path / "era5.nc"
    era5_like(days=12).to_netcdf(path)
    cfg_path = tmp_path / "forecast.toml"
    cfg_path.write_text(_toml(config(tmp_path, path, test_dates=["2000-01-07", "2000-01-12"])))
    assert run_cli("train", "--config", cfg_path, "--out", tmp_path / "run", "--quiet") == 2
    assert "overlap those of task.train_dates" in capsys.readouterr().err


def _toml(raw: dict) -> str:
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def test_hierarchy_is_haar_at_nside():
    structure = forecast.structure(forecast.Config(data="x.nc", variables=["t2m"], constants=[]), 3)
    assert isinstance(structure.hierarchy, HealpixHaarHierarchy) and structure.cond_dim == 1
    assert structure.in_channels == 2 * 1 + 2 * len(FORCINGS) and structure.out_channels == 2


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    """Under torchrun each process reads its slice of every batch from the shared cache; the
    2-process loss trajectory equals the single-process one."""
    path = tmp_path / "era5.nc"
    era5_like(days=12).to_netcdf(path)
    raw = config(tmp_path, path)
    raw["train"].update(steps=3, eval_every=3, checkpoint_every=3)
    cfg_path = tmp_path / "forecast.toml"
    cfg_path.write_text(_toml(raw))
    assert run_cli("train", "--config", cfg_path, "--out", tmp_path / "single", "--quiet") == 0
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
              "geounet.cli", "train", "--config", str(cfg_path), "--out", str(tmp_path / "ddp"), "--quiet"]
    done = subprocess.run(launch, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [[row["loss"] for row in json.loads((tmp_path / run / "metrics.json").read_text())["history"]]
              for run in ("single", "ddp")]
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=1e-4, atol=1e-6)
