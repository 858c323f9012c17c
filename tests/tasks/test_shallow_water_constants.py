"""Constant input fields of the shallow-water task (``task.constants``): the Coriolis parameter's latitude."""

import dataclasses

import healpy
import numpy as np
import pytest
import torch

from geounet.errors import GeounetError
from geounet.experiment.config import config_from_dict
from geounet.experiment.runner import run_experiment
from geounet.hierarchy.healpix_face import face_nodes_from_nest
from geounet.inference.runs import load_run
from geounet.tasks.shallow_water_healpix import Config, constant_fields, prepare


def tiny(tmp_path, **overrides) -> Config:
    """The task at toy size (nside 4, 2 + 1 trajectories of 3 steps), data cached under ``tmp_path``."""
    values = dict(nside=4, nlat=16, nlon=32, num_train=2, num_test=1, steps=3, rollout_steps=2,
                  spinup_hours=1.0, cache_dir=str(tmp_path / "data"))
    return Config(**{**values, **overrides})


def test_the_fields_are_the_standardised_latitude_functions_of_the_nest_pixel_centres():
    config = Config(nside=8, constants=["sin_latitude", "cos_latitude"])
    colatitude, _ = healpy.pix2ang(8, np.arange(12 * 64), nest=True)  # healpy's own pixel centres
    reference = np.stack([np.cos(colatitude), np.sin(colatitude)], axis=1)
    reference = (reference - reference.mean(0)) / reference.std(0, ddof=1)
    fields = constant_fields(config)  # [N, 2]
    assert fields.shape == (768, 2) and fields.dtype == torch.float32
    np.testing.assert_allclose(fields.numpy(), reference, atol=1e-5)
    # HEALPix is symmetric about the equator: sin(latitude) has mean 0 before standardising
    assert abs(np.cos(colatitude).mean()) < 1e-12
    assert constant_fields(Config(nside=8)).shape == (768, 0)  # none by default


@pytest.mark.parametrize("node_order", ["nest", "face"])
def test_every_batch_and_rollout_carries_the_constants_in_the_models_pixel_order(tmp_path, node_order):
    config = tiny(tmp_path, node_order=node_order, constants=["sin_latitude"])
    task = prepare(config, num_levels=2)
    expected = constant_fields(config)
    if node_order == "face":
        expected = face_nodes_from_nest(expected)
    assert task.structure.in_channels == 3 + 1
    for samples in (task.train, task.test):
        torch.testing.assert_close(samples.batch([0]).inputs.constants, expected, rtol=0, atol=0)


def test_a_run_with_constants_loads_elsewhere_and_evaluate_may_not_change_them(tmp_path, monkeypatch):
    task = dataclasses.asdict(tiny(tmp_path, constants=["sin_latitude"]))
    cfg = config_from_dict({"task": {"name": "shallow_water_healpix", **task},
                            "model": {"width": 4, "num_levels": 2, "channel_mult": [1, 1]},
                            "train": {"steps": 3, "batch_size": 2, "eval_every": 3, "checkpoint_every": 3}})
    metrics = run_experiment(cfg, tmp_path / "run", progress=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded, _, prepared, model, device = load_run(tmp_path / "run", None)
    assert loaded.task.constants == ["sin_latitude"] and model.net.lift.in_features == 4
    report = prepared.evaluate_extra(model, device)
    torch.testing.assert_close(torch.tensor(report["model_rmse_h"]), torch.tensor(metrics["test"]["model_rmse_h"]))
    with pytest.raises(GeounetError, match="the checkpoint fixes task.constants"):
        load_run(tmp_path / "run", None, ["task.constants=[]"])


@pytest.mark.parametrize("constants", [["latitude"], ["sin_latitude", "sin_latitude"]])
def test_unknown_or_repeated_constants_are_rejected(tmp_path, constants):
    with pytest.raises(GeounetError, match="task.constants must name distinct fields of"):
        tiny(tmp_path, constants=constants).validate()


def test_constants_of_another_grid_are_refused(tmp_path):
    task = prepare(tiny(tmp_path, constants=["sin_latitude"]), num_levels=2)
    wrong = torch.zeros(12 * 64, 1)  # nside 8's pixels for an nside-4 hierarchy
    with pytest.raises(GeounetError, match=r"constants must be \[N, K\] with N = 192 nodes, got \(768, 1\)"):
        dataclasses.replace(task.train, constants=wrong)
