"""Climate-style forecasting on the sphere: rotating shallow water on HEALPix.

Trajectories come from torch-harmonics' spectral shallow-water solver
(:mod:`geounet.datagen.shallow_water`) on an equiangular lat-lon grid, regridded to
HEALPix NEST at ``nside`` (:func:`geounet.functional.regrid.latlon_to_healpix`). Every
window of one state and ``train_rollout`` = k steps after it is a training sample.

The model is the forecasting stack's :class:`~geounet.models.autoregressive.Autoregressive`
with one state in and one out, no forcings, and the constant fields ``constants`` names
(none by default): it sees the state standardised per variable, (x_t - μ) / σ, next to the
constants K, and predicts the increment in units of its standard deviation σ_Δ,
x_{t+1} = x_t + σ_Δ · net([(x_t - μ) / σ, K]), fed back k times. The loss is the squared
error of the k forecast states in units of σ_Δ, |x̂_{t+j} - x_{t+j}|² / σ_Δ², the
gradient flowing through the rollout. For k = 1 that is the error of the increment, and
the one-step relative L2 error (test data are one-step windows) is measured on increments:
below 1 means better than persistence. (Before the one forecasting stack, k > 1 compared
the k increments of the rollout with the true ones instead of the states.)

The spaces are ``hierarchy = "haar"`` (nested HEALPix pixels; restrict is the mean of
the 4 children) or ``"spectral"`` (:class:`~geounet.hierarchy.HealpixSHHierarchy`:
band-limited functions, degree L_i = 2 nside_i, on the same grids; restrict is the
least-squares band-limited fit with ``sh_iterations`` Jacobi refinements of each
analysis: 0 is plain pixel quadrature, more iterations shrink the aliasing error
geometrically (the trade-off is in :class:`~geounet.hierarchy.HealpixSHHierarchy`); the
iterations are folded into one precomputed operator, so they cost a one-off build, not
time per step. The default 3 keeps earlier runs reproducible; 10-20 reach float64 round-off).

``node_order`` is the order of the pixels the model sees: ``"nest"`` (default) or ``"face"``,
the Haar spaces laid out as DLWP-HEALPix's face images
(:class:`~geounet.hierarchy.healpix_face.HealpixFaceHierarchy`: the same spaces, nodes
permuted), where ``model.operator = "conv3x3"`` runs as ``conv2d`` on padded faces (the fast
path) and message passing keeps its NEST parameters. Only the model's side is permuted: the
trajectories are read and regridded in NEST, moved to the face order once for training and
rollouts (:func:`model_nodes`), and every output goes back to NEST before it is scored or
drawn (:func:`nest_nodes`), so scores, plots and the data a user reads are the NEST ones.

**Constants.** The flow rotates: the Coriolis parameter f = 2Ω sin φ varies with latitude φ.
Message passing sees it through its edge features (3-D displacements, whose direction
against the rotation axis changes with latitude), but a dense 3 x 3 convolution on face
images applies the same weights at every pixel of every face and cannot tell the pole from
the equator. ``constants = ["sin_latitude"]`` gives the model f / 2Ω as an input field
(:data:`CONSTANTS`, each standardised over the sphere like the ``forecast`` task's constants).

Besides the one-step error the task reports, in physical units, the RMSE, bias and
uncentred anomaly correlation (climatology = training mean state) per lead time of an
autoregressive rollout from every test trajectory's first state, and the same numbers for
persistence (the forecast "nothing changes"), the baseline any forecast must beat. The
scores are :mod:`geounet.functional.scores`'s, on HEALPix (equal-area pixels); the RMSE
is WeatherBench 2's, the square root of the area-weighted MSE averaged over the test
trajectories. (Before the one forecasting stack it was the mean over trajectories of
their RMSEs, smaller or equal by Jensen's inequality.)

With ``galewsky_test = true`` (the default: it costs about 2 s) the same scores are also
reported, under ``galewsky_model_*`` and ``galewsky_persistence_*``, for a rollout from
the Galewsky et al. (2004) barotropically unstable jet: out of distribution (a single
80 m/s mid-latitude jet plus a localised height bump, against the training set's
isotropic random vorticity with RMS wind 0.1 sqrt(gH) ≈ 31 m/s). It comes from the same
solver, grid and regridding, starts at the analytic initial state (no spin-up) and is
standardised with the *training* statistics; the ACC climatology is still the training mean state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.climate_dataset import standardised_constants
from geounet.data.forecast_samples import TrajectorySamples
from geounet.datagen.shallow_water import VARIABLES, load_or_generate_shallow_water
from geounet.errors import GeounetError
from geounet.functional.regrid import latlon_to_healpix
from geounet.functional.scores import equal_area_weights, score_report
from geounet.geometry.healpix import npix, pixel_vectors
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.healpix_face import HealpixFaceHierarchy, face_nodes_from_nest, nest_from_face_nodes
from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
from geounet.models.autoregressive import Autoregressive, ForecastInputs, Normalisation
from geounet.models.unet import operator_factory
from geounet.plot.fields import plot_healpix_predictions
from geounet.tasks import PreparedTask, TaskStructure, data_splits
from geounet.tasks.rollouts import roll_out

HIERARCHIES = ("haar", "spectral")
#: the constant input fields, as functions of the unit vectors ``[N, 3]`` of the pixel centres
CONSTANTS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin_latitude": lambda xyz: xyz[:, 2],  # f / 2Ω, the Coriolis parameter in units of twice the rotation rate
    "cos_latitude": lambda xyz: xyz[:, :2].norm(dim=1),
}
#: the pixel orders a model can see: NEST, or the face images of :class:`HealpixFaceHierarchy` (Haar only)
NODE_ORDERS = ("nest", "face")


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "shallow_water_healpix"
    #: keys the checkpoint fixes (the model's channels and their order, its normalisation, its grid):
    #: ``geounet evaluate --set`` refuses to change them
    FIXED: ClassVar[tuple[str, ...]] = ("variables", "nside", "hierarchy", "node_order", "constants")
    nside: int = 32
    #: "haar" (nested pixels) or "spectral" (spherical-harmonic bands)
    hierarchy: str = "haar"
    #: the pixel order the model sees: "nest", or "face" (Haar only: HealpixFaceHierarchy, face images)
    node_order: str = "nest"
    #: spectral only: Jacobi refinements of every spherical-harmonic analysis
    sh_iterations: int = 3
    variables: list[str] = field(default_factory=lambda: ["h", "vorticity", "divergence"])
    #: constant input fields, names of :data:`CONSTANTS` (e.g. ["sin_latitude"], the Coriolis parameter)
    constants: list[str] = field(default_factory=list)
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
        if self.node_order not in NODE_ORDERS:
            raise GeounetError(f"task.node_order must be one of {NODE_ORDERS}, got {self.node_order!r}")
        if self.node_order == "face" and self.hierarchy != "haar":
            raise GeounetError(f"task.node_order = 'face' lays out the Haar pixel spaces as face images; the "
                               f"{self.hierarchy!r} hierarchy has no face form: use task.hierarchy = 'haar' or "
                               "task.node_order = 'nest'")
        if self.sh_iterations < 0:
            raise GeounetError(f"task.sh_iterations must be >= 0, got {self.sh_iterations}")
        unknown = sorted(set(self.variables) - set(VARIABLES))
        if unknown or not self.variables:
            raise GeounetError(f"task.variables must be a non-empty subset of {VARIABLES}, got {self.variables}")
        unknown = sorted(set(self.constants) - set(CONSTANTS))
        if unknown or len(set(self.constants)) != len(self.constants):
            raise GeounetError(f"task.constants must name distinct fields of {tuple(CONSTANTS)}, got {self.constants}")
        data_splits(self)
        if not 1 <= self.rollout_steps <= self.steps:
            raise GeounetError(f"task.rollout_steps must lie in [1, steps={self.steps}], got {self.rollout_steps}")
        if not 1 <= self.train_rollout <= self.steps:
            raise GeounetError(f"task.train_rollout must lie in [1, steps={self.steps}], got {self.train_rollout}")


def sphere_hierarchy(config, num_levels: int, node_order: str = "nest") -> Hierarchy:
    """The spaces of ``config.hierarchy`` on HEALPix, finest nside ``config.nside``, nodes in
    ``node_order`` (``"face"``: the Haar spaces as face images)."""
    if config.hierarchy == "haar":
        levels = HealpixFaceHierarchy if node_order == "face" else HealpixHaarHierarchy
        return levels(config.nside, num_levels)
    return HealpixSHHierarchy(config.nside, num_levels, iterations=config.sh_iterations)


def model_nodes(config: Config, x: Tensor) -> Tensor:  # [..., N, C] NEST
    """NEST fields ``x`` in the pixel order the model sees (``config.node_order``); NEST: ``x`` itself."""
    return face_nodes_from_nest(x) if config.node_order == "face" else x


def nest_nodes(config: Config, x: Tensor) -> Tensor:  # [..., N, C] in the model's order
    """The inverse of :func:`model_nodes`: fields in the model's pixel order back in NEST."""
    return nest_from_face_nodes(x) if config.node_order == "face" else x


def constant_fields(config: Config) -> Tensor:  # [N, K] NEST
    """The ``config.constants`` fields at the NEST pixel centres, each standardised over the sphere."""
    xyz = pixel_vectors(config.nside)  # [N, 3]
    fields = [CONSTANTS[name](xyz) for name in config.constants]
    return standardised_constants(torch.stack(fields, dim=1).numpy() if fields else np.zeros((len(xyz), 0)))


def structure(config: Config, num_levels: int, normalisation: Normalisation | None = None) -> TaskStructure:
    """Hierarchy, channels and the :class:`~geounet.models.autoregressive.Autoregressive` wrapper
    (one state in, one out, no forcings, the ``config.constants`` fields), with the units
    ``normalisation`` when given (else those of the checkpoint it is loaded from)."""
    hierarchy = sphere_hierarchy(config, num_levels, config.node_order)
    channels = len(config.variables)

    def wrap(net: nn.Module) -> Autoregressive:
        units = Normalisation.identity(channels, npix(config.nside))
        if normalisation is not None:
            units.load_state_dict(normalisation.state_dict())
        return Autoregressive(net, units, input_steps=1, output_steps=1, train_rollout=config.train_rollout)

    return TaskStructure(hierarchy, operator_factory(hierarchy), channels + len(config.constants), channels,
                         wrap_model=wrap)


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


def training_normalisation(trajectories: Tensor) -> Normalisation:  # [S, T, N, C] physical
    """Per-variable mean and standard deviation of the states and of the one-step increments
    of the training trajectories; every pixel holds data."""
    increments = trajectories[:, 1:] - trajectories[:, :-1]
    dims = (0, 1, 2)
    valid = torch.ones(trajectories.shape[2:], dtype=torch.bool)  # [N, C]
    return Normalisation(trajectories.mean(dim=dims), trajectories.std(dim=dims), increments.std(dim=dims), valid)


def rollout_scores(model: Autoregressive, samples: TrajectorySamples, climatology: Tensor, variables: list[str],
                   device: torch.device, to_nest: Callable[[Tensor], Tensor] | None = None) -> dict[str, list[float]]:
    """RMSE, bias and ACC per lead (:mod:`geounet.functional.scores`) of the model's and
    persistence's rollouts from the first state of each trajectory of ``samples`` (one window
    per trajectory), on NEST pixels: ``to_nest`` takes fields ``[..., N, C]`` there from the
    samples' pixel order (None: they are NEST); ``climatology [N, C]`` NEST, physical units."""
    rolled = roll_out(model, samples, np.arange(len(samples)), device)  # each [S, L, N, C]
    forecast, truth, persistence = (fields if to_nest is None else to_nest(fields)
                                    for fields in (rolled.forecast, rolled.truth, rolled.persistence))
    weights = equal_area_weights(climatology.shape[0])  # HEALPix pixels
    return score_report({"model": forecast, "persistence": persistence}, truth, climatology, weights, variables)


def prepare(config: Config, num_levels: int) -> PreparedTask:
    nest = {split: load_trajectories(config, split) for split in ("train", "test")}  # [S, T, N, C] physical
    # statistics from the NEST data, so both pixel orders get the same numbers to the last bit
    normalisation = training_normalisation(nest["train"])
    climatology = nest["train"].mean(dim=(0, 1))  # [N, C] NEST, physical units
    trajectories = {split: model_nodes(config, data) for split, data in nest.items()}  # in the model's pixel order
    constants = model_nodes(config, constant_fields(config))  # [N, K]
    geometry = structure(config, num_levels, normalisation)
    hierarchy = geometry.hierarchy
    train = TrajectorySamples(trajectories["train"], hierarchy, normalisation, steps=config.train_rollout,
                              constants=constants)
    test = TrajectorySamples(trajectories["test"], hierarchy, normalisation, constants=constants)  # one step ahead

    def scores(split_trajectories: Tensor, model: Autoregressive, device: torch.device) -> dict[str, list[float]]:
        """Rollout scores from each trajectory's first state (model's pixel order), on NEST pixels."""
        return rollout_scores(model, first_windows(split_trajectories), climatology, config.variables, device,
                              functools.partial(nest_nodes, config))

    def first_windows(split_trajectories: Tensor) -> TrajectorySamples:
        """One rollout of ``rollout_steps`` steps from each trajectory's first state."""
        return TrajectorySamples(split_trajectories[:, : config.rollout_steps + 1], hierarchy, normalisation,
                                 steps=config.rollout_steps, constants=constants)

    def evaluate_rollout(model: Autoregressive, device: torch.device) -> dict[str, object]:
        steps = config.rollout_steps
        report: dict[str, object] = {"lead_hours": [config.dt_hours * (k + 1) for k in range(steps)],
                                     "score_grids": {"": f"HEALPix NEST nside {config.nside}, equal-area pixels"}}
        report.update(scores(trajectories["test"], model, device))
        if config.galewsky_test:
            galewsky = scores(model_nodes(config, load_trajectories(config, "galewsky")), model, device)
            report.update({f"galewsky_{key}": value for key, value in galewsky.items()})
        return report

    def plot(inputs: ForecastInputs, targets: Tensor, predictions: Tensor, path: str) -> None:
        state = inputs.state[:, -1]  # [S, N, C] physical, model's pixel order
        scale = normalisation.increment_std
        maps = (nest_nodes(config, fields) for fields in (state, state + targets * scale, state + predictions * scale))
        plot_healpix_predictions(*maps, config.variables, path)  # NEST maps

    return PreparedTask(geometry, train, test, plot, evaluate_extra=evaluate_rollout)
