"""physicsnemo's DLWP-HEALPix U-Net under geounet's trainer (``model.architecture = "dlwp"``) on the
forecast task: train, reload from the checkpoint in another working directory, evaluate and
forecast. Skipped without the ``dlwp`` extra."""

from __future__ import annotations

import json

import numpy as np
import pytest
from forecast_files import era5_like
from test_forecaster import train

from geounet.cli import main
from geounet.inference import Forecaster
from geounet.models.baselines import DLWPHealpixUNet

pytest.importorskip("physicsnemo", reason="the dlwp extra (physicsnemo) is not installed")


@pytest.fixture(scope="module")
def dlwp_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dlwp")
    metrics = train(folder, era5_like(days=12), train_rollout=1)  # the U-Net run's config, model swapped below
    unet_parameters = metrics["parameters"]["total"]
    config = (folder / "forecast.toml").read_text().replace("[model]\n", '[model]\narchitecture = "dlwp"\n')
    (folder / "forecast.toml").write_text(config)
    assert main(["train", "--config", str(folder / "forecast.toml"), "--out", str(folder / "dlwp"), "--quiet"]) == 0
    return folder / "dlwp", unet_parameters


def test_dlwp_run_is_sized_to_the_unet_and_scored_like_it(dlwp_run):
    run, unet_parameters = dlwp_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["model"]["architecture"] == "dlwp"
    # the width whose count is nearest the U-Net's: one width step either way is farther
    assert abs(metrics["parameters"]["total"] - unet_parameters) < unet_parameters
    test = metrics["test"]
    assert len(test["model_rmse_t2m"]) == len(test["lead_hours"]) and np.isfinite(test["model_rmse_t2m"]).all()


def test_dlwp_checkpoint_reloads_elsewhere_to_the_same_scores_and_forecasts(dlwp_run, tmp_path, monkeypatch):
    """``geounet evaluate`` from another working directory rebuilds the model from the checkpoint
    alone and reproduces the training run's test scores exactly; the forecaster loads it too."""
    run, _ = dlwp_run
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run)]) == 0
    trained = json.loads((run / "metrics.json").read_text())["test"]
    again = json.loads((run / "evaluation.json").read_text())["test"]
    for key in ("rel_l2_mean", "model_rmse_t2m", "model_acc_z500"):
        assert again[key] == trained[key]
    forecaster = Forecaster.load(run)
    assert isinstance(forecaster.model.net, DLWPHealpixUNet)
    era5_like(days=3, start="2021-06-01").to_netcdf("new.nc")
    forecast = forecaster.predict("new.nc", init="2021-06-02T06", steps=3)
    assert forecast["t2m"].dims == ("time", "lead_time", "latitude", "longitude")
    assert np.isfinite(forecast["t2m"].values).all()
