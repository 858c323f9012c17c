"""The shallow-water HEALPix task at toy size: spaces, splits, Galewsky out-of-distribution scores."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from geounet.geometry.healpix import pixel_vectors
from geounet.hierarchy import HealpixHaarHierarchy, HealpixSHHierarchy
from geounet.tasks.shallow_water_healpix import Config, load_trajectories, prepare, structure


def tiny(tmp_path, **overrides) -> Config:
    values = dict(nside=4, nlat=16, nlon=32, num_train=2, num_test=1, steps=3, rollout_steps=2,
                  spinup_hours=1.0, cache_dir=str(tmp_path / "data"))
    return Config(**{**values, **overrides})


class Zero(nn.Module):
    """Predicts a zero increment: its rollout is persistence."""

    def forward(self, x, hierarchy):
        return torch.zeros_like(x)


def test_galewsky_split_is_one_rollout_long_trajectory(tmp_path):
    config = tiny(tmp_path)
    galewsky = load_trajectories(config, "galewsky")
    assert galewsky.shape == (1, config.rollout_steps + 1, 12 * 4**2, 3)
    train = load_trajectories(config, "train")
    assert not torch.allclose(galewsky[0, 0], train[0, 0])
    h = galewsky[0, 0, :, 0]
    assert 9_000 < h.mean() < 11_000  # mean depth 10 km, in metres
    assert not torch.equal(galewsky[0, 0], galewsky[0, 1])


def test_galewsky_scores_are_reported_and_persistence_equals_a_zero_model(tmp_path):
    task = prepare(tiny(tmp_path), num_levels=2)
    report = task.evaluate_extra(task.structure.wrap_model(Zero()), torch.device("cpu"))
    for name in ("h", "vorticity", "divergence"):
        for metric in ("rmse", "acc"):
            model = report[f"galewsky_model_{metric}_{name}"]
            persistence = report[f"galewsky_persistence_{metric}_{name}"]
            assert len(model) == 2
            torch.testing.assert_close(torch.tensor(model), torch.tensor(persistence))
            assert report[f"galewsky_model_{metric}_{name}"] != report[f"model_{metric}_{name}"]
    assert report["galewsky_persistence_rmse_h"][1] > report["galewsky_persistence_rmse_h"][0] > 0


def test_galewsky_test_can_be_switched_off(tmp_path):
    task = prepare(tiny(tmp_path, galewsky_test=False), num_levels=2)
    report = task.evaluate_extra(task.structure.wrap_model(Zero()), torch.device("cpu"))
    assert "model_rmse_h" in report and not any(key.startswith("galewsky_") for key in report)


def test_galewsky_uses_the_training_standardisation(tmp_path):
    """A model that sees the standardised state: its output must not depend on the Galewsky data's own stats."""
    config = tiny(tmp_path)
    task = prepare(config, num_levels=2)
    train = load_trajectories(config, "train")
    mean, std = train.mean(dim=(0, 1, 2)), train.std(dim=(0, 1, 2))
    seen = []

    class Recorder(Zero):
        def forward(self, x, hierarchy):
            seen.append(x)
            return super().forward(x, hierarchy)

    task.evaluate_extra(task.structure.wrap_model(Recorder()), torch.device("cpu"))
    galewsky = load_trajectories(config, "galewsky")
    torch.testing.assert_close(seen[-1], (galewsky[:, 0] - mean) / std)


@pytest.mark.parametrize("split", ["validation", "GALEWSKY"])
def test_unknown_split_is_rejected(tmp_path, split):
    with pytest.raises(ValueError, match="split must be one of"):
        load_trajectories(tiny(tmp_path), split)


def test_spectral_spaces_are_spherical_harmonic_bands(tmp_path):
    haar = structure(tiny(tmp_path), num_levels=3).hierarchy
    spectral = structure(tiny(tmp_path, hierarchy="spectral", sh_iterations=30), num_levels=3).hierarchy
    assert type(haar) is HealpixHaarHierarchy and type(spectral) is HealpixSHHierarchy
    assert spectral.lmax == [2, 4, 8] and spectral.iterations == 30
    assert [spectral.num_nodes(i) for i in range(3)] == [haar.num_nodes(i) for i in range(3)]
    # a degree-2 function (here a constant plus a dipole z) lies in the coarsest band: restrict keeps it
    z = pixel_vectors(tiny(tmp_path).nside)[:, 2:].double()  # [N, 1], NEST
    torch.testing.assert_close(spectral.prolong(spectral.restrict(1 + z, 2), 1), 1 + z, atol=1e-9, rtol=0)


@pytest.mark.parametrize(("key", "value", "message"), [("hierarchy", "wavelet", "task.hierarchy must be one of"),
                                                       ("sh_iterations", -1, "task.sh_iterations must be >= 0")])
def test_bad_sphere_space_settings_are_rejected(tmp_path, key, value, message):
    with pytest.raises(ValueError, match=message):
        tiny(tmp_path, **{key: value}).validate()


class Linear(nn.Module):
    """x -> x A: a one-step network whose k-step rollout has a closed form."""

    def __init__(self, channels: int):
        super().__init__()
        self.a = nn.Parameter(0.1 * torch.randn(channels, channels, generator=torch.Generator().manual_seed(0)))

    def forward(self, x, hierarchy):
        return x @ self.a


def test_multi_step_training_targets_are_the_changes_since_the_initial_state(tmp_path):
    config = tiny(tmp_path, train_rollout=2)
    task = prepare(config, num_levels=2)
    trajectories = load_trajectories(config, "train")  # [S, T, N, C]
    one_step = prepare(tiny(tmp_path), num_levels=2).train
    s, t, n, c = trajectories.shape
    assert len(task.train) == s * (t - 2) and len(task.test) == task.test.trajectories.shape[0] * (t - 1)
    # sample (trajectory 1, time 0): changes 0->1 and 0->2 = increments 0->1 plus 1->2, in units of σ_Δ
    index = 1 * (t - 2)
    batch, first, second = task.train.batch([index]), one_step.batch([1 * (t - 1)]), one_step.batch([1 * (t - 1) + 1])
    assert batch.targets.shape == (1, n, 2 * c) and first.targets.shape == (1, n, c)  # tests: one step ahead
    torch.testing.assert_close(batch.targets[..., :c], first.targets)
    torch.testing.assert_close(batch.targets[..., c:], first.targets + second.targets)
    torch.testing.assert_close(batch.inputs.state, trajectories[1:2, :1])  # physical: the model standardises
    increment_std = (trajectories[:, 1:] - trajectories[:, :-1]).std(dim=(0, 1, 2))
    torch.testing.assert_close(first.targets[0], (trajectories[1, 1] - trajectories[1, 0]) / increment_std)


def test_the_model_rolls_out_as_many_steps_as_the_batch_holds(tmp_path):
    config = tiny(tmp_path, train_rollout=3)
    task = prepare(config, num_levels=2)
    net = Linear(3)
    model = task.structure.wrap_model(net)
    ratio, mean, std = model.normalisation.ratio, model.normalisation.mean, model.normalisation.std
    batch = task.train.batch([0, 1])
    z0 = (batch.inputs.state[:, 0] - mean) / std  # [B, N, C]
    with torch.no_grad():
        changes, z = [], z0
        for _ in range(3):  # z_j = z_{j-1} + r (z_{j-1} A); outputs (z_j - z_0) / r
            z = z + ratio * (z @ net.a)
            changes.append((z - z0) / ratio)
        for mode in (model.train(), model.eval()):
            torch.testing.assert_close(mode(batch.inputs, batch.hierarchy), torch.cat(changes, dim=-1))
        one = task.test.batch([0, 1])  # one-step windows: the increment the network predicts
        z1 = (one.inputs.state[:, 0] - mean) / std
        torch.testing.assert_close(model(one.inputs, one.hierarchy), z1 @ net.a)
    assert not torch.allclose(ratio, torch.ones(3))  # the training statistics' σ_Δ / σ


def test_multi_step_training_runs_and_its_checkpoint_reloads(tmp_path):
    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model, run_experiment
    from geounet.tasks import task_structure
    from geounet.train.checkpoint import load_checkpoint

    task = {"name": "shallow_water_healpix", **dataclasses.asdict(tiny(tmp_path, train_rollout=2))}
    raw = {"task": task, "model": {"width": 4, "num_levels": 2, "channel_mult": [1, 1]},
           "train": {"steps": 3, "batch_size": 2, "eval_every": 3, "checkpoint_every": 3}}
    cfg = config_from_dict(raw)
    metrics = run_experiment(cfg, tmp_path / "run")
    assert metrics["test"]["rel_l2_mean"] > 0  # one-step error of the trained network
    model = build_model(cfg, task_structure(cfg.task, cfg.model.num_levels))
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"])
    assert not torch.allclose(model.normalisation.ratio, torch.ones(3))  # restored from the checkpoint


def test_train_rollout_longer_than_the_trajectories_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="task.train_rollout must lie in"):
        tiny(tmp_path, train_rollout=4).validate()


def test_a_denoiser_learns_the_standardised_states(tmp_path):
    """Diffusion on a forecasting task's data: the snapshots are the standardised input states."""
    from geounet.data.forecast_samples import Snapshots
    from geounet.experiment.diffusion import plain_fields, train_run

    config = tiny(tmp_path, variables=["vorticity"])
    task = prepare(config, num_levels=2)
    snapshots = plain_fields(task.train)
    assert isinstance(snapshots, Snapshots) and len(snapshots) == len(task.train)
    trajectories = load_trajectories(config, "train")  # [S, T, N, 1]
    x = snapshots.batch([1]).inputs  # the state at time 1 of trajectory 0
    torch.testing.assert_close(x[0], (trajectories[0, 1] - trajectories.mean()) / trajectories.std())
    raw = {"task": {"name": "shallow_water_healpix", **dataclasses.asdict(config)},
           "model": {"width": 4, "num_levels": 2, "channel_mult": [1, 1]},
           "diffusion": {"steps": 2, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2}}
    summary = train_run(raw, tmp_path / "diffusion", progress=False)
    assert summary["steps"] == 2 and math.isfinite(summary["test_loss"])
