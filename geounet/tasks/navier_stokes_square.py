"""FNO's single-forcing vorticity task on the square: 2-D Navier-Stokes, one time unit ahead.

One fixed forcing and a start one time unit after random initial data: the forced modes
±(1, 1) dominate targets and errors, so models tie on it; the task that separates models is
:mod:`geounet.tasks.navier_stokes_forced`.

Inputs ω(t0) and targets ω(t0 + horizon) on the periodic 64 x 64 grid, both divided by
the training inputs' standard deviation (vorticity has zero mean on the torus, so
relative errors are unchanged by the scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from geounet.data.samples import Dataset
from geounet.datagen.navier_stokes import NavierStokesConfig, load_or_generate_navier_stokes
from geounet.hierarchy.square import SquareHaarHierarchy
from geounet.nn.square import SquareConvFactory
from geounet.plot.fields import plot_square_predictions
from geounet.tasks import PreparedTask, TaskStructure, data_splits


@dataclass(frozen=True)
class Config:
    """The ``[task]`` table of ``navier_stokes_square``: grid side, the solver's parameters, the
    number of train / test trajectories, the seed and the data cache folder."""

    name: ClassVar[str] = "navier_stokes_square"
    resolution: int = 64
    viscosity: float = 1e-3
    dt: float = 5e-3
    spinup_time: float = 1.0
    horizon: float = 1.0
    num_train: int = 256
    num_test: int = 64
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        data_splits(self)

    def solver_config(self, split: str) -> NavierStokesConfig:
        count, seed = data_splits(self)[split]
        return NavierStokesConfig(
            resolution=self.resolution,
            viscosity=self.viscosity,
            dt=self.dt,
            spinup_time=self.spinup_time,
            horizon=self.horizon,
            num_samples=count,
            seed=seed,
        )


def structure(config: Config, num_levels: int) -> TaskStructure:
    """The periodic square's Haar hierarchy with ``num_levels`` levels and square convolutions;
    vorticity in, vorticity out (one channel each)."""
    hierarchy = SquareHaarHierarchy(config.resolution, num_levels, periodic=True)
    return TaskStructure(hierarchy, SquareConvFactory(), in_channels=1, out_channels=1)


def prepare(config: Config, num_levels: int) -> PreparedTask:
    """Generate (or load from the cache) the train and test trajectories and return the task:
    the vorticity at the start and the end of the horizon, divided by the train split's
    standard deviation, as ``[S, n*n, 1]`` node fields."""
    geometry = structure(config, num_levels)
    hierarchy = geometry.hierarchy
    splits = {
        split: load_or_generate_navier_stokes(config.cache_dir, config.solver_config(split))
        for split in ("train", "test")
    }
    scale = splits["train"][0].std()
    def as_nodes(field: Tensor) -> Tensor:  # [S, n, n] -> [S, n*n, 1]
        return (field / scale).reshape(len(field), -1, 1)

    train, test = (Dataset(as_nodes(x), as_nodes(y), hierarchy) for x, y in (splits["train"], splits["test"]))

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        side = config.resolution
        images = [t[..., 0].reshape(-1, side, side) * scale for t in (inputs, targets, predictions)]
        plot_square_predictions(*images, path, title="vorticity ω")

    return PreparedTask(geometry, train, test, plot)


__all__ = ["Config", "prepare", "structure"]
