"""Segmentation tasks end to end at CI size: they learn, and their files read back with
xarray (HEALPix probabilities) and meshio (.vtu shapes)."""

import json

import healpy
import meshio
import numpy as np
import pytest
import torch
import xarray as xr

from geounet import configs
from geounet.cli import main
from geounet.experiment.config import load_config
from geounet.experiment.runner import run_experiment
from geounet.tasks.segmentation import LabelledNodes, pointwise_classifier

TINY_MODEL = ["model.width=8", "model.channel_mult=[1, 2, 2]", "train.batch_size=4", "train.warmup_steps=5",
              "train.lr=5e-3"]
TINY_PARTS = ["task.num_meshes=24", "task.export_meshes=2", "train.steps=80", "train.eval_every=80", *TINY_MODEL]
TINY_VORTICES = ["task.nside=8", "task.nlat=32", "task.nlon=64", "task.num_train=2", "task.num_test=1",
                 "task.steps=2", "task.dt_hours=2.0", "task.spinup_hours=2.0", "model.num_levels=3",
                 "train.steps=4", "train.eval_every=4", *TINY_MODEL]


def _run(name, overrides, root):
    cfg = load_config(configs.resolve(name), [*overrides, f"task.cache_dir='{root / 'data'}'"])
    return run_experiment(cfg, root / name, progress=False), root / name


@pytest.fixture(scope="module")
def part_run(tmp_path_factory):
    return _run("part_segmentation", TINY_PARTS, tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def vortex_run(tmp_path_factory):
    return _run("vortex_segmentation", TINY_VORTICES, tmp_path_factory.mktemp("vortices"))


def test_part_segmentation_learns_beyond_the_trivial_baselines(part_run):
    metrics, _ = part_run
    test = metrics["test"]
    assert test["mean_iou"] > test["pointwise_baseline_mean_iou"] >= test["majority_class_mean_iou"]
    assert {"iou_leg", "dice_head", "boundary_mean_leg", "boundary_p95_body"} <= set(test)
    assert test["boundary_mean_leg"] <= test["boundary_p95_leg"]


def test_part_predictions_read_back_with_meshio(part_run):
    _, out = part_run
    shape = meshio.read(out / "test_shape_0.vtu")
    cells = {name: values[0] for name, values in shape.cell_data.items()}
    probabilities = np.stack([cells[f"probability_{c}"] for c in ("body", "leg", "head")], axis=1)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert (probabilities.argmax(1) == cells["predicted_class"]).all()
    assert set(np.unique(cells["true_class"])) == {0, 1, 2}
    assert len(shape.cells[0].data) == len(cells["true_class"])
    assert (out / "class_iou.png").stat().st_size > 0 and (out / "predictions.png").stat().st_size > 0


def test_vortex_probabilities_read_back_with_xarray_on_healpix_pixels(vortex_run):
    metrics, out = vortex_run
    ds = xr.load_dataset(out / "test_probabilities.nc")  # read and closed
    assert ds.attrs["healpix_nside"] == 8 and ds.attrs["healpix_order"] == "nest"
    assert ds["probability"].dims == ("sample", "pixel", "class")
    assert list(ds["class"].values) == ["background", "cyclonic", "anticyclonic"]
    assert np.allclose(ds["probability"].sum("class"), 1, atol=1e-5)
    theta, phi = healpy.pix2ang(8, ds["pixel"].values, nest=True)  # healpy's own pixel centres
    assert np.allclose(ds["lat"], 90 - np.degrees(theta), atol=1e-9)
    assert np.allclose(ds["lon"], np.degrees(phi), atol=1e-9)
    assert ds.sizes["sample"] == 3  # one test trajectory of steps + 1 states
    assert "mean_iou" in metrics["test"] and "pointwise_baseline_mean_iou" in metrics["test"]


def test_evaluate_command_rescores_a_segmentation_run(vortex_run, capsys):
    metrics, out = vortex_run
    (out / "test_probabilities.nc").unlink()
    assert main(["evaluate", str(out), "--plot"]) == 0
    assert "test mean IoU" in capsys.readouterr().out
    assert (out / "test_probabilities.nc").is_file()  # the task's own files are written again
    evaluation = json.loads((out / "evaluation.json").read_text())["test"]
    assert evaluation["mean_iou"] == pytest.approx(metrics["test"]["mean_iou"], abs=1e-6)


def test_pointwise_classifier_finds_a_threshold_and_nothing_more():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(4000, 1, generator=generator)
    weights = torch.ones(4000, dtype=torch.float64)
    by_threshold = (inputs[:, 0] > 0.8).long()  # a pointwise rule: found exactly up to the bin width
    classifier = pointwise_classifier(LabelledNodes(inputs, by_threshold, weights), 2)
    assert (classifier(inputs) == by_threshold).float().mean() > 0.97
    unrelated = torch.randint(0, 2, (4000,), generator=generator)  # labels the inputs say nothing about
    classifier = pointwise_classifier(LabelledNodes(inputs, unrelated, weights), 2)
    assert (classifier(inputs) == unrelated).float().mean() < 0.6
