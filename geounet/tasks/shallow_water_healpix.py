"""Climate-style forecasting on the sphere: rotating shallow water on HEALPix.

Trajectories come from torch-harmonics' spectral shallow-water solver
(:mod:`geounet.datagen.shallow_water`) on an equiangular lat-lon grid, regridded to
HEALPix NEST at ``nside`` (:func:`geounet.functional.regrid.latlon_to_healpix`). Every
consecutive pair (x_t, x_{t+1}) of a trajectory is a sample. The model sees the state
standardised per variable, (x_t - μ) / σ, and predicts the standardised increment
(x_{t+1} - x_t) / σ_Δ; the forecast is x_t + σ_Δ · model((x_t - μ) / σ). The one-step
relative L2 error is therefore measured on increments: below 1 means better than
persistence.

With ``train_rollout = k > 1`` the network is trained on k-step rollouts: the model is
wrapped in :class:`Unrolled`, which in training mode applies it k times in normalised
units, x ← x + (σ_Δ / σ) · net(x), and returns the k increments, and the training targets
are the k true increments (x_{t+j} - x_{t+j-1}) / σ_Δ, j = 1..k, so the loss is the mean
over the k steps and the gradient flows through the rollout. Evaluation (one-step error,
rollouts) uses the same network one step at a time, so the scores are those of k = 1.

The spaces are ``hierarchy = "haar"`` (nested HEALPix pixels; restrict is the mean of
the 4 children) or ``"spectral"`` (:class:`~geounet.hierarchy.HealpixSHHierarchy`:
band-limited functions, degree L_i = 2 nside_i, on the same grids; restrict is the
least-squares band-limited fit with ``sh_iterations`` Jacobi refinements of each
analysis: 0 is plain pixel quadrature, 20 reaches float64 round-off but costs about 15x
more per transform).

Besides the one-step error the task reports, in physical units, the area-weighted RMSE
and the uncentred anomaly correlation (climatology = training mean state) of an
autoregressive rollout from every test trajectory's first state, and the same numbers
for persistence (the forecast "nothing changes"), the baseline any forecast must beat.

With ``galewsky_test = true`` (the default: it costs about 2 s) the same scores are also
reported, under ``galewsky_model_*`` and ``galewsky_persistence_*``, for a rollout from
the Galewsky et al. (2004) barotropically unstable jet: out of distribution (a single
80 m/s mid-latitude jet plus a localised height bump, against the training set's
isotropic random vorticity with RMS wind 0.1 sqrt(gH) ≈ 31 m/s). It comes from the same
solver, grid and regridding, starts at the analytic initial state (no spin-up) and is
standardised with the *training* statistics; the ACC climatology is still the training mean state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from geounet.data.samples import Dataset
from geounet.datagen.shallow_water import VARIABLES, load_or_generate_shallow_water
from geounet.errors import GeounetError
from geounet.functional.metrics import acc, rmse
from geounet.functional.regrid import latlon_to_healpix
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
from geounet.models.sizing import parameter_counts
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.fields import plot_healpix_predictions
from geounet.tasks import PreparedTask, TaskStructure, data_splits

HIERARCHIES = ("haar", "spectral")


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "shallow_water_healpix"
    nside: int = 32
    #: "haar" (nested pixels) or "spectral" (spherical-harmonic bands)
    hierarchy: str = "haar"
    #: spectral only: Jacobi refinements of every spherical-harmonic analysis
    sh_iterations: int = 3
    variables: list[str] = field(default_factory=lambda: ["h", "vorticity", "divergence"])
    num_train: int = 32
    num_test: int = 4
    steps: int = 24
    dt_hours: float = 1.0
    spinup_hours: float = 6.0
    mach: float = 0.1
    nlat: int = 64
    nlon: int = 128
    regrid: str = "bilinear"
    rollout_steps: int = 24
    #: autoregressive steps in the training loss (1: one-step training)
    train_rollout: int = 1
    seed: int = 0
    cache_dir: str = "data"
    galewsky_test: bool = True

    def validate(self) -> None:
        if self.hierarchy not in HIERARCHIES:
            raise GeounetError(f"task.hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        if self.sh_iterations < 0:
            raise GeounetError(f"task.sh_iterations must be >= 0, got {self.sh_iterations}")
        unknown = sorted(set(self.variables) - set(VARIABLES))
        if unknown or not self.variables:
            raise GeounetError(f"task.variables must be a non-empty subset of {VARIABLES}, got {self.variables}")
        data_splits(self)
        if not 1 <= self.rollout_steps <= self.steps:
            raise GeounetError(f"task.rollout_steps must lie in [1, steps={self.steps}], got {self.rollout_steps}")
        if not 1 <= self.train_rollout <= self.steps:
            raise GeounetError(f"task.train_rollout must lie in [1, steps={self.steps}], got {self.train_rollout}")


def sphere_hierarchy(config: Config, num_levels: int) -> Hierarchy:
    """The spaces of ``config.hierarchy`` on HEALPix, finest nside ``config.nside``."""
    if config.hierarchy == "haar":
        return HealpixHaarHierarchy(config.nside, num_levels)
    return HealpixSHHierarchy(config.nside, num_levels, iterations=config.sh_iterations)


class Unrolled(nn.Module):
    """A one-step network trained on ``steps``-step rollouts (see the module docstring).

    Training mode: ``x [B, N, C] -> [B, N, steps C]``, the increments of the rollout
    x_{j} = x_{j-1} + r · net(x_{j-1}) in normalised units, r = σ_Δ / σ the buffer
    ``increment_scale [C]`` (training statistics). Evaluation mode: one step, ``[B, N, C]``.
    """

    def __init__(self, net: nn.Module, channels: int, steps: int) -> None:
        super().__init__()
        self.net, self.steps = net, steps
        self.register_buffer("increment_scale", torch.ones(channels))

    def parameter_counts(self) -> dict[str, int]:
        """The wrapped network's per-part counts (the wrapper itself has no parameters)."""
        return parameter_counts(self.net)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        increments = []
        for _ in range(self.steps if self.training else 1):
            increment = self.net(x, hierarchy)
            increments.append(increment)
            x = x + self.increment_scale * increment
        return torch.cat(increments, dim=-1)


def structure(config: Config, num_levels: int, stats: Standardisation | None = None) -> TaskStructure:
    """Hierarchy, channels and (for ``train_rollout > 1``) the :class:`Unrolled` wrapper, whose
    scale comes from ``stats`` when given (else from the checkpoint it is loaded from)."""
    hierarchy = sphere_hierarchy(config, num_levels)
    channels = len(config.variables)

    def wrap(net: nn.Module) -> Unrolled:
        model = Unrolled(net, channels, config.train_rollout)
        if stats is not None:
            model.increment_scale.copy_(stats.increment_std / stats.std)
        return model

    return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), channels, channels,
                         wrap_model=wrap if config.train_rollout > 1 else None)


def load_trajectories(config: Config, split: str) -> Tensor:
    """Trajectories of ``split`` on HEALPix NEST, ``[samples, time, pixels, variables]`` float32.

    ``split`` is "train", "test" or "galewsky" (one trajectory of ``rollout_steps`` steps
    from the Galewsky initial state, no spin-up).
    """
    splits = data_splits(config)
    if split == "galewsky":
        count, seed, steps, spinup, initial = 1, 0, config.rollout_steps, 0.0, "galewsky"
    elif split in splits:
        (count, seed), steps, spinup, initial = splits[split], config.steps, config.spinup_hours, "random"
    else:
        raise GeounetError(f"split must be one of {(*splits, 'galewsky')}, got {split!r}")
    ds = load_or_generate_shallow_water(
        config.cache_dir,
        num_trajectories=count,
        steps=steps,
        dt_hours=config.dt_hours,
        nlat=config.nlat,
        nlon=config.nlon,
        seed=seed,
        initial_condition=initial,
        mach=config.mach,
        spinup_hours=spinup,
    )
    lat, lon = ds["lat"].values, ds["lon"].values
    fields = [
        latlon_to_healpix(torch.from_numpy(ds[name].values).double(), lat, lon, config.nside, method=config.regrid)
        for name in config.variables
    ]  # each [S, T, N]
    return torch.stack(fields, dim=-1).float()  # [S, T, N, C]


@dataclass(frozen=True)
class Standardisation:
    """Per-variable statistics of the training split, ``[C]`` each, physical units."""

    mean: Tensor
    std: Tensor
    increment_std: Tensor

    @classmethod
    def of(cls, trajectories: Tensor) -> Standardisation:  # [S, T, N, C]
        increments = trajectories[:, 1:] - trajectories[:, :-1]
        dims = (0, 1, 2)
        return cls(trajectories.mean(dim=dims), trajectories.std(dim=dims), increments.std(dim=dims))

    def samples(self, trajectories: Tensor, hierarchy: Hierarchy, steps: int = 1) -> Dataset:
        """Inputs (x_t - μ)/σ ``[S (T-k), N, C]`` and targets, the next k increments
        (x_{t+j} - x_{t+j-1})/σ_Δ for j = 1..k side by side, ``[S (T-k), N, k C]``."""
        s, t, n, c = trajectories.shape
        increments = (trajectories[:, 1:] - trajectories[:, :-1]) / self.increment_std  # [S, T-1, N, C]
        windows = torch.cat([increments[:, j : t - steps + j] for j in range(steps)], dim=-1)  # [S, T-k, N, k C]
        now = trajectories[:, : t - steps]
        return Dataset(((now - self.mean) / self.std).reshape(-1, n, c), windows.reshape(-1, n, steps * c), hierarchy)

    def step(self, model: nn.Module, hierarchy: Hierarchy, state: Tensor) -> Tensor:
        """One forecast step in physical units, ``[B, N, C] -> [B, N, C]``."""
        mean, std, increment_std = (t.to(state.device) for t in (self.mean, self.std, self.increment_std))
        return state + increment_std * model((state - mean) / std, hierarchy)


@torch.no_grad()
def rollout(model: nn.Module, hierarchy: Hierarchy, stats: Standardisation, initial: Tensor, steps: int) -> Tensor:
    """Autoregressive forecast ``[B, N, C] -> [B, steps, N, C]`` in physical units."""
    hierarchy = hierarchy.to(initial.device)
    states, state = [], initial
    for _ in range(steps):
        state = stats.step(model, hierarchy, state)
        states.append(state)
    return torch.stack(states, dim=1)


def rollout_scores(model: nn.Module, hierarchy: Hierarchy, stats: Standardisation, trajectories: Tensor,
                   climatology: Tensor, steps: int, variables: list[str],
                   device: torch.device) -> dict[str, list[float]]:
    """RMSE and ACC per lead of the model's and persistence's rollouts from each first state.

    ``trajectories [S, T, N, C]`` (physical units, T > steps), ``climatology [N, C]``;
    returns ``{"model_rmse_h": [steps], ..., "persistence_acc_<var>": [steps]}``, each the
    mean over the S trajectories of the per-trajectory area-weighted score.
    """
    truth = trajectories[:, 1 : steps + 1]  # [S, steps, N, C]
    forecast = rollout(model, hierarchy, stats, trajectories[:, 0].to(device), steps).cpu()
    persistence = trajectories[:, :1].expand_as(truth)
    weights = torch.ones(truth.shape[-2], 1)  # equal-area pixels
    scores: dict[str, list[float]] = {}
    for label, prediction in (("model", forecast), ("persistence", persistence)):
        for c, name in enumerate(variables):
            p, o = prediction[..., c : c + 1], truth[..., c : c + 1]  # [S, steps, N, 1]
            clim = climatology[:, c : c + 1]
            scores[f"{label}_rmse_{name}"] = rmse(p, o, weights, dims=(-2, -1)).mean(0).tolist()
            scores[f"{label}_acc_{name}"] = acc(p, o, clim, weights, dims=(-2, -1)).mean(0).tolist()
    return scores


def prepare(config: Config, num_levels: int) -> PreparedTask:
    trajectories = {split: load_trajectories(config, split) for split in ("train", "test")}
    stats = Standardisation.of(trajectories["train"])
    geometry = structure(config, num_levels, stats)
    hierarchy = geometry.hierarchy
    train = stats.samples(trajectories["train"], hierarchy, config.train_rollout)
    test = stats.samples(trajectories["test"], hierarchy)  # scored one step ahead
    climatology = trajectories["train"].mean(dim=(0, 1))  # [N, C], physical units

    def evaluate_rollout(model: nn.Module, device: torch.device) -> dict[str, object]:
        steps = config.rollout_steps
        report: dict[str, object] = {"lead_hours": [config.dt_hours * (k + 1) for k in range(steps)]}
        report.update(rollout_scores(model, hierarchy, stats, trajectories["test"], climatology, steps,
                                     config.variables, device))
        if config.galewsky_test:
            galewsky = rollout_scores(model, hierarchy, stats, load_trajectories(config, "galewsky"), climatology,
                                      steps, config.variables, device)
            report.update({f"galewsky_{key}": value for key, value in galewsky.items()})
        return report

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        state = inputs * stats.std + stats.mean
        physical = [state, state + targets * stats.increment_std, state + predictions * stats.increment_std]
        plot_healpix_predictions(*physical, config.variables, path)

    return PreparedTask(geometry, train, test, plot, evaluate_extra=evaluate_rollout)
