"""Forecast samples as structured batches: the data side of :mod:`geounet.models.autoregressive`.

A sample starting at time t is the window of ``T_in`` input states and ``S`` steps of
``T_out`` output states after them. Its batch is a :class:`~geounet.data.samples.Batch`
whose ``inputs`` are :class:`~geounet.models.autoregressive.ForecastInputs` (the input
states in physical units, the forcings, the constants: separate fields) and whose
``targets [B, N, S T_out C]`` are the model's outputs' units, the changes since the last
input state in units of σ_Δ (:meth:`~geounet.models.autoregressive.Normalisation.changes`).
The units are the model's: a data set is given the :class:`Normalisation` the model is
built with and only converts targets with it.

:class:`TrajectorySamples` holds trajectories in memory (the shallow-water task); the
``forecast`` task reads its windows from a cache on disk
(:class:`geounet.data.climate_dataset.ForecastSamples`). Both implement the batch protocol
of :mod:`geounet.data.samples` and ``states(indices)``, the physical states of samples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geounet.data.samples import Batch, check_finite
from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.models.autoregressive import ForecastInputs, Normalisation


def forecast_batch(states: Tensor, forcings: Tensor, constants: Tensor, input_steps: int,
                   normalisation: Normalisation, hierarchy: Hierarchy) -> Batch:
    """The batch of physical ``states [B, T_in + S T_out, N, C]`` (inputs, then outputs) with
    ``forcings [B, S, T_out, N, F]`` and ``constants [N, K]``."""
    b, _, n, _ = states.shape
    inputs = ForecastInputs(states[:, :input_steps], forcings, constants)
    changes = normalisation.changes(states[:, input_steps:], states[:, input_steps - 1 : input_steps])
    return Batch(inputs, changes.permute(0, 2, 1, 3).reshape(b, n, -1), hierarchy)  # targets [B, N, S T_out C]


@dataclass
class TrajectorySamples:
    """Every window of ``input_steps`` states and ``steps`` steps of ``output_steps`` states in
    ``trajectories [R, T, N, C]`` (physical units, consecutive states one step apart), no
    forcings, and the ``constants`` fields of every sample (none by default). Sample ``r W + t``
    starts at time t of trajectory r, W windows each."""

    trajectories: Tensor  # [R, T, N, C]
    hierarchy: Hierarchy
    normalisation: Normalisation
    input_steps: int = 1
    output_steps: int = 1
    steps: int = 1
    constants: Tensor | None = None  # [N, K] standardised, in the trajectories' node order; None: K = 0

    def __post_init__(self) -> None:
        if self.windows < 1:
            raise GeounetError(f"trajectories of {self.trajectories.shape[1]} states hold no window of "
                               f"{self.length} states; use longer trajectories or fewer steps")
        nodes = self.hierarchy.num_nodes(self.hierarchy.finest_level)
        if self.trajectories.shape[2] != nodes:
            raise GeounetError(f"the trajectories have {self.trajectories.shape[2]} nodes but the hierarchy's finest "
                               f"level has {nodes}; pass the hierarchy the data live on")
        if self.constants is not None and (self.constants.dim() != 2 or self.constants.shape[0] != nodes):
            raise GeounetError(f"constants must be [N, K] with N = {nodes} nodes, got {tuple(self.constants.shape)}")
        check_finite(self.trajectories.flatten(0, 1), "trajectories")

    @property
    def length(self) -> int:
        """States per sample, ``T_in + S T_out``."""
        return self.input_steps + self.steps * self.output_steps

    @property
    def windows(self) -> int:
        """Samples per trajectory."""
        return self.trajectories.shape[1] - self.length + 1

    def __len__(self) -> int:
        return self.trajectories.shape[0] * self.windows

    def to(self, device: torch.device | str) -> TrajectorySamples:
        moved = self.hierarchy.to(device)
        return self if moved is self.hierarchy else dataclasses.replace(self, hierarchy=moved)

    def states(self, indices: Tensor | np.ndarray) -> Tensor:
        """Physical states of samples ``indices``, ``[B, T_in + S T_out, N, C]``."""
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
        trajectory, start = indices // self.windows, indices % self.windows
        times = start[:, None] + torch.arange(self.length)  # [B, T]
        return self.trajectories[trajectory[:, None], times]

    def batch(self, indices: Tensor | np.ndarray) -> Batch:
        states = self.states(indices)  # [B, T, N, C]
        b, _, n, _ = states.shape
        forcings = states.new_zeros(b, self.steps, self.output_steps, n, 0)
        constants = states.new_zeros(n, 0) if self.constants is None else self.constants
        return forecast_batch(states, forcings, constants, self.input_steps, self.normalisation, self.hierarchy)


@dataclass
class Snapshots:
    """The states of forecast samples as plain fields, for models of one field (a denoiser):
    a batch's ``inputs [B, N, C]`` are each sample's last input state standardised in the
    units of ``samples.normalisation`` (0 where no data), its ``targets`` the samples' targets."""

    samples: TrajectorySamples  # or any forecast data set with ``normalisation``

    def __len__(self) -> int:
        return len(self.samples)

    def to(self, device: torch.device | str) -> Snapshots:
        return Snapshots(self.samples.to(device))

    def batch(self, indices: Tensor | np.ndarray) -> Batch:
        batch = self.samples.batch(indices)
        state = self.samples.normalisation.standardise(batch.inputs.state[:, -1])  # [B, N, C]
        return Batch(state, batch.targets, batch.hierarchy)
