"""Mesh-regression tasks: geometry families, transfer tests, exact constraints, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geounet.data.fem import make_planar_domain, surface_mesh
from geounet.tasks import darcy_mesh, prepare_task, surface_poisson
from geounet.tasks.mesh_regression import geometry_seed
from geounet.train.config import load_config
from geounet.train.experiment import build_model, evaluate_transfers, run_experiment


def tiny(tmp_path, task: str, *overrides: str):
    return load_config(None, [
        f"task.name='{task}'", "task.num_train=6", "task.num_test=3", f"task.cache_dir='{tmp_path}'",
        "model.width=8", "model.channel_mult=[1,2,2]", "model.num_levels=4",
        "train.batch_size=3", "train.steps=2", "train.eval_every=2", "train.checkpoint_every=2", *overrides,
    ])


@pytest.fixture(scope="module")
def darcy(tmp_path_factory):
    cfg = tiny(tmp_path_factory.mktemp("darcy"), "darcy_mesh")
    return cfg, prepare_task(cfg.task, cfg.model.num_levels)


def test_darcy_task_splits_geometries_and_resolutions(darcy):
    cfg, task = darcy
    hierarchy = task.structure.hierarchy
    assert len(hierarchy.hierarchies) == len(darcy_mesh.TRAIN_DOMAINS)
    expected = {f"heldout/{n}" for n in darcy_mesh.HELDOUT_DOMAINS}
    expected |= {f"{kind}/{n}" for n in darcy_mesh.TRAIN_DOMAINS for kind in ("single", "refined", "coarsened")}
    assert set(task.transfer) == expected
    finest = hierarchy.finest_level
    assert task.train.inputs.shape == (6, hierarchy.num_nodes(finest), 1)
    assert task.test.inputs.shape == (3, hierarchy.num_nodes(finest), 1)
    # faces of the one-hole domain: refined has exactly 4x, coarsened about 1/4
    faces = hierarchy.sizes(finest)[0]
    refined = task.transfer["refined/one_hole"].data.hierarchy
    coarsened = task.transfer["coarsened/one_hole"].data.hierarchy
    assert refined.num_nodes(refined.finest_level) == 4 * faces
    assert 0.15 < coarsened.num_nodes(coarsened.finest_level) / faces < 0.35
    # match_scales: below the finest level, both have about the training mesh's cells
    for level in range(1, finest):
        for other in (refined, coarsened):
            assert 0.6 < other.num_nodes(level) / hierarchy.sizes(level)[0] < 1.6, level
    # normalised by the training standard deviations
    assert task.train.inputs.std().item() == pytest.approx(1.0, rel=1e-4)
    assert task.train.targets.std().item() == pytest.approx(1.0, rel=1e-4)


def test_darcy_fields_differ_between_geometries_and_splits(darcy):
    _, task = darcy
    hierarchy = task.structure.hierarchy
    level = hierarchy.finest_level
    train_parts = hierarchy.split(task.train.inputs, level)
    test_parts = hierarchy.split(task.test.inputs, level)
    for train_part, test_part in zip(train_parts, test_parts, strict=True):
        assert not torch.allclose(train_part[0], test_part[0])  # test fields are new draws
    assert len({geometry_seed(0, name) for name in darcy_mesh.TRAIN_DOMAINS}) == len(darcy_mesh.TRAIN_DOMAINS)
    # a training geometry on its own sees exactly its test fields in the union (paired comparison)
    single = task.transfer["single/one_hole"].data
    assert torch.equal(single.inputs, test_parts[0])
    assert torch.equal(single.targets, hierarchy.split(task.test.targets, level)[0])


@pytest.mark.parametrize("spec", [*darcy_mesh.TRAIN_DOMAINS.values(), *darcy_mesh.HELDOUT_DOMAINS.values()])
def test_darcy_resize_keeps_the_domain(spec):
    faces = len(make_planar_domain(spec)[1])
    area = _planar_area(*make_planar_domain(spec))
    for factor, (low, high) in ((4, (4, 4)), (1 / 4, (0.15, 0.35))):
        resized = make_planar_domain(darcy_mesh.resize(spec, factor))
        assert low <= len(resized[1]) / faces <= high
        assert _planar_area(*resized) == pytest.approx(area, rel=0.1)  # the same domain, remeshed


def _planar_area(vertices, faces):
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * np.abs(np.cross(b - a, c - a)).sum()


@pytest.mark.parametrize("name", ["icosphere", "bumpy_sphere_a"])
def test_surface_resize(name):
    spec = surface_poisson.TRAIN_SURFACES[name]
    faces = len(surface_mesh(spec)[1])
    assert len(surface_mesh(surface_poisson.resize(spec, 4))[1]) == 4 * faces
    assert len(surface_mesh(surface_poisson.resize(spec, 1 / 4))[1]) * 4 == faces
    with pytest.raises(ValueError, match="factor must be 4 or 1/4"):
        surface_poisson.resize(spec, 2)


def test_the_trained_model_runs_on_a_held_out_geometry_passed_in(darcy):
    cfg, task = darcy
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    annulus = task.transfer["heldout/annulus"].data
    x = annulus.inputs[:2]
    assert model(x, annulus.hierarchy).shape == x.shape
    with pytest.raises(ValueError, match="expects input of shape"):  # the data must match the geometry
        model(x, task.train.hierarchy)


def test_constrained_spectral_darcy_vanishes_on_every_boundary(tmp_path, monkeypatch):
    """Dirichlet spaces + projection: zero boundary values on training and held-out meshes,
    for random (untrained) weights."""
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "eigen"))
    cfg = tiny(tmp_path, "darcy_mesh", "task.hierarchy='spectral'", "task.band_limits=[4,16,64]",
               "task.resolution_transfer=false")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    geometries = {"train": task.test} | {name: t.data for name, t in task.transfer.items()}
    for name, data in geometries.items():
        hierarchy = data.hierarchy
        on_boundary = hierarchy.boundary_mask(hierarchy.finest_level)
        prediction = model(data.inputs, hierarchy).detach()  # [S, V, 1]
        assert on_boundary.sum() > 0
        assert prediction[:, on_boundary].abs().max() == 0, name
        assert prediction[:, ~on_boundary].abs().max() > 0, name


def test_surface_task_runs_end_to_end_with_transfer_metrics(tmp_path):
    cfg = tiny(tmp_path, "surface_poisson")
    metrics = run_experiment(cfg, tmp_path / "run", progress=False)
    transfers = {k: v for k, v in metrics["test"].items() if isinstance(v, dict)}
    assert set(transfers) == {"heldout/bumpy_sphere_b", "heldout/torus"} | {
        f"{kind}/{name}" for kind in ("single", "refined", "coarsened") for name in ("icosphere", "bumpy_sphere_a")}
    assert all(np.isfinite(v["rel_l2_mean"]) for v in transfers.values())
    for png in ("predictions.png", "predictions_heldout_torus.png", "predictions_heldout_bumpy_sphere_b.png"):
        assert (tmp_path / "run" / png).stat().st_size > 10_000


def test_darcy_model_learns_and_transfers_to_held_out_domains(tmp_path):
    """80 steps on 24 samples: the error on held-out domains drops well below the untrained model's."""
    cfg = tiny(tmp_path, "darcy_mesh", "task.num_train=24", "train.steps=80", "train.batch_size=4", "train.lr=3e-3")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    torch.manual_seed(0)
    model = build_model(cfg, task.structure)
    from geounet.train.loop import fit

    before = evaluate_transfers(cfg, model, task, torch.device("cpu"))
    fit(model, task.train, cfg.train, progress=False)
    after = evaluate_transfers(cfg, model, task, torch.device("cpu"))
    for name in ("heldout/three_holes", "heldout/l_shape", "refined/one_hole"):
        assert after[name]["rel_l2_mean"] < 0.65 < before[name]["rel_l2_mean"], name
