"""The square task that separates models: forced 2-D turbulence one time unit ahead.

Inputs are two channels on the periodic 64 x 64 grid, the vorticity ω(t0) drawn from the
statistically steady state and the sample's own steady forcing f (a random band-limited
field, :func:`~geounet.datagen.navier_stokes.random_forcing`); the target is ω(t0 + horizon).
Vorticity and forcing are divided by their training standard deviations (both have zero
mean on the torus, so relative errors are unchanged by the scaling).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import Tensor

from geounet.data.samples import Dataset
from geounet.datagen.navier_stokes import ForcedNavierStokesConfig, load_or_generate_forced_navier_stokes
from geounet.hierarchy.square import SquareHaarHierarchy
from geounet.nn.square import SquareConvFactory
from geounet.plot.fields import plot_square_predictions
from geounet.tasks import PreparedTask, TaskStructure, data_splits


@dataclass(frozen=True)
class Config:
    """The ``[task]`` table of ``navier_stokes_forced``: grid side, the solver's parameters
    (viscosity, drag, the forcing's amplitude and wavenumber band, spin-up and horizon), the
    number of train / test trajectories, the seed and the data cache folder."""

    name: ClassVar[str] = "navier_stokes_forced"
    resolution: int = 64
    viscosity: float = 1e-3
    drag: float = 0.1
    forcing_amplitude: float = 1.0
    forcing_band_min: float = 2.0
    forcing_band_max: float = 4.0
    dt: float = 5e-3
    spinup_time: float = 10.0
    horizon: float = 1.0
    num_train: int = 256
    num_test: int = 64
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        data_splits(self)

    def solver_config(self, split: str) -> ForcedNavierStokesConfig:
        """The solver's parameters are this config's fields of the same names."""
        count, seed = data_splits(self)[split]
        shared = {f.name: getattr(self, f.name) for f in fields(ForcedNavierStokesConfig) if hasattr(self, f.name)}
        return ForcedNavierStokesConfig(**{**shared, "num_samples": count, "seed": seed})


def structure(config: Config, num_levels: int) -> TaskStructure:
    """The periodic square's Haar hierarchy with ``num_levels`` levels and square convolutions;
    vorticity and forcing in (two channels), vorticity out."""
    hierarchy = SquareHaarHierarchy(config.resolution, num_levels, periodic=True)
    return TaskStructure(hierarchy, SquareConvFactory(), in_channels=2, out_channels=1)


def prepare(config: Config, num_levels: int) -> PreparedTask:
    """Generate (or load from the cache) the train and test trajectories and return the task:
    inputs are the vorticity and the sample's forcing, targets the vorticity one horizon later,
    each divided by its train-split standard deviation, as ``[S, n*n, C]`` node fields."""
    geometry = structure(config, num_levels)
    hierarchy = geometry.hierarchy
    splits = {split: load_or_generate_forced_navier_stokes(config.cache_dir, config.solver_config(split))
              for split in ("train", "test")}
    vorticity_scale, forcing_scale = splits["train"]["inputs"].std(), splits["train"]["forcings"].std()

    def as_nodes(field: Tensor, scale: Tensor) -> Tensor:  # [S, n, n] -> [S, n*n, 1]
        return (field / scale).reshape(len(field), -1, 1)

    def dataset(data: dict[str, Tensor]) -> Dataset:
        inputs = torch.cat([as_nodes(data["inputs"], vorticity_scale), as_nodes(data["forcings"], forcing_scale)],
                           dim=-1)  # [S, n*n, 2]
        return Dataset(inputs, as_nodes(data["targets"], vorticity_scale), hierarchy)

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        side = config.resolution
        images = [t[..., 0].reshape(-1, side, side) * vorticity_scale for t in (inputs, targets, predictions)]
        plot_square_predictions(*images, path, title="vorticity ω")

    return PreparedTask(geometry, dataset(splits["train"]), dataset(splits["test"]), plot)


__all__ = ["Config", "prepare", "structure"]
