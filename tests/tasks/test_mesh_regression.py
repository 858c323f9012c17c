"""Mesh-regression tasks on data sets of many meshes: splits by geometry, mixed batches,
resolution transfer, exact constraints, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geounet.experiment.config import load_config
from geounet.experiment.runner import build_model, evaluate_transfers, run_experiment
from geounet.hierarchy import BatchedHierarchy
from geounet.tasks import prepare_task


def tiny(tmp_path, task: str, *overrides: str):
    return load_config(None, [
        f"task.name='{task}'", "task.num_meshes=10", "task.samples_per_mesh=2", "task.transfer_meshes=2",
        "task.test_fraction=0.3", f"task.cache_dir='{tmp_path}'",
        "model.width=8", "model.channel_mult=[1,2,2]", "model.num_levels=4",
        "train.batch_size=4", "train.steps=2", "train.eval_every=2", "train.checkpoint_every=2", *overrides,
    ])


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("darcy"), "darcy_mesh")
    return cfg, prepare_task(cfg.task, cfg.model.num_levels)


def test_darcy_splits_by_geometry_and_batches_mix_meshes(darcy):
    cfg, task = darcy
    train_meshes = {s.mesh.content_hash for s in task.train.samples}
    test_meshes = {s.mesh.content_hash for s in task.test.samples}
    assert not train_meshes & test_meshes
    assert len(train_meshes) + len(test_meshes) == 10
    assert len(task.train) == 2 * len(train_meshes) and task.train.num_meshes == len(train_meshes)
    batch = task.train.batch(torch.arange(4))
    assert isinstance(batch.hierarchy, BatchedHierarchy) and len(batch.hierarchy.parts()) == 4
    inputs = torch.cat([s.inputs for s in task.train.samples])
    targets = torch.cat([s.targets for s in task.train.samples])
    assert inputs.std().item() == pytest.approx(1.0, rel=1e-4)  # normalised by the training std
    assert targets.std().item() == pytest.approx(1.0, rel=1e-4)


def test_resolution_transfer_remeshes_held_out_domains_with_matched_cell_sizes(darcy):
    _, task = darcy
    originals = task.test.samples[::2][:2]  # one sample per mesh, the first two held-out meshes
    for name, (low, high) in (("refined", (3, 5.5)), ("coarsened", (0.1, 0.45))):
        data = task.transfer[name].data
        assert len(data) == 4
        for j, original in enumerate(originals):
            moved = data.samples[2 * j].mesh
            assert low < moved.num_faces / original.mesh.num_faces < high, name
            assert moved.area == pytest.approx(original.mesh.area, rel=1e-9)  # the same polygon
            ratio = data.hierarchy(2 * j).num_nodes(1) / task.test.hierarchy(2 * j).num_nodes(1)
            assert 0.4 < ratio < 2.5, (name, ratio)  # match_scales: similar cells below the finest level


def test_the_trained_model_runs_on_held_out_meshes_passed_in(darcy):
    cfg, task = darcy
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    batch = task.test.batch(torch.arange(3))
    assert model(batch.inputs, batch.hierarchy).shape == batch.inputs.shape
    with pytest.raises(ValueError, match="expects input of shape"):  # the data must match the geometry
        model(batch.inputs, task.train.hierarchy(0))


def test_constrained_spectral_darcy_vanishes_on_every_boundary(tmp_path, monkeypatch):
    """Dirichlet spaces + projection: zero boundary values on every mesh, for untrained weights."""
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "eigen"))
    cfg = tiny(tmp_path, "darcy_mesh", "task.hierarchy='spectral'", "task.band_limits=[4,12,32]",
               "task.resolution_transfer=false")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    batch = task.test.batch(torch.arange(len(task.test)))
    hierarchy = batch.hierarchy
    on_boundary = hierarchy.boundary_mask(hierarchy.finest_level)
    prediction = model(batch.inputs, hierarchy).detach()  # [1, Σ V_j, 1]
    assert on_boundary.sum() > 0
    assert prediction[:, on_boundary].abs().max() == 0  # exact: the constraint multiplies them by 0
    assert prediction[:, ~on_boundary].abs().max() > 0


def test_surface_task_runs_end_to_end_with_transfer_metrics(tmp_path):
    cfg = tiny(tmp_path, "surface_poisson", "task.num_meshes=6", "task.test_fraction=0.4")
    metrics = run_experiment(cfg, tmp_path / "run", progress=False)
    transfers = {k: v for k, v in metrics["test"].items() if isinstance(v, dict)}
    assert set(transfers) == {"refined", "coarsened"}
    assert all(np.isfinite(v["rel_l2_mean"]) for v in transfers.values())
    assert (tmp_path / "run" / "predictions.png").is_file()


@pytest.mark.slow
def test_darcy_model_learns_and_transfers_to_held_out_domains(tmp_path):
    """200 steps on 40 domains: the error on held-out domains and their remeshings drops well
    below the untrained model's."""
    cfg = tiny(tmp_path, "darcy_mesh", "task.num_meshes=50", "task.test_fraction=0.2", "train.steps=200",
               "train.batch_size=8", "train.lr=3e-3")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    from geounet.train.loop import evaluate, fit

    before = {"test": evaluate(model, task.test, 8, torch.device("cpu"))} | evaluate_transfers(
        cfg, model, task, torch.device("cpu"))
    fit(model, task.train, cfg.train, progress=False)
    after = {"test": evaluate(model, task.test, 8, torch.device("cpu"))} | evaluate_transfers(
        cfg, model, task, torch.device("cpu"))
    for name in ("test", "refined", "coarsened"):
        assert after[name]["rel_l2_mean"] < 0.6 * before[name]["rel_l2_mean"], (name, before[name], after[name])
