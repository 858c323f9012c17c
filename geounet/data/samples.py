"""Training data as (fields, geometry): the batch protocol the training loop consumes.

A data set is anything with ``len(data)``, ``data.batch(indices) -> Batch`` and
``data.to(device)`` (which moves its geometry once, so that memoised per-level data is
built once per device). Two kinds ship with geounet:

- :class:`Dataset`: samples on one shared geometry (a grid, a mesh, or a fixed union of
  meshes): a batch is ``[B, N, C]`` with that one hierarchy, the fixed-degree fast path
  with no per-sample copies;
- :class:`geounet.data.mesh_dataset.MeshDataset`: one geometry per sample; a batch is the
  disjoint union of its samples' meshes, ``[1, Σ_j N_j, C]`` on a
  :class:`~geounet.hierarchy.BatchedHierarchy` (as PyTorch Geometric's ``Batch``).

Losses and errors weight nodes by :func:`node_weights`: each geometry's quadrature
weights normalised to sum to one, so every mesh of a batch counts alike whatever its area.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy


@dataclass
class Batch:
    """Model inputs and targets with the geometry they live on."""

    inputs: Tensor  # [B, N, C_in]
    targets: Tensor  # [B, N, C_out]
    hierarchy: Hierarchy


def node_weights(hierarchy: Hierarchy) -> Tensor:
    """``[N]`` finest-level weights: each part's (mesh's) masses divided by its measure and by
    the number of parts, so they sum to 1 over every part and to 1 in all (memoised on the
    hierarchy: a shared grid computes them once; a union of meshes joins its meshes' memoised
    weights)."""
    level = hierarchy.finest_level

    def build() -> Tensor:
        meshes = hierarchy.parts()
        if len(meshes) > 1:  # each mesh's own weights (summing to 1) over the number of meshes
            return torch.cat([node_weights(mesh) for mesh in meshes]) / len(meshes)
        mass, part = hierarchy.mass(level), hierarchy.batch(level)  # [N], [N]
        parts = len(hierarchy.components(level))
        totals = torch.zeros(parts, dtype=mass.dtype, device=mass.device).index_add_(0, part, mass)
        return mass / totals[part] / parts

    return hierarchy.cached("node_weights", level, build)


def check_finite(values: Tensor, what: str) -> None:
    """Refuse NaN / Inf in ``values [S, N, C]``, naming the first sample, node and channel."""
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        samples = int((~finite).reshape(len(values), -1).any(dim=1).sum())
        sample, node, channel = bad[0].tolist()
        raise GeounetError(f"{what} contain NaN or Inf in {samples} sample(s) (first: sample {sample}, node {node}, "
                         f"channel {channel}); clean or drop them before training")


@dataclass
class Dataset:
    """Paired node signals on one geometry: the finest level of ``hierarchy`` (a grid, a
    mesh or a fixed union of meshes), which every batch is passed to the model with."""

    inputs: Tensor  # [S, N, C_in]
    targets: Tensor  # [S, N, C_out]
    hierarchy: Hierarchy

    def __post_init__(self) -> None:
        if self.inputs.shape[:2] != self.targets.shape[:2]:
            raise GeounetError(
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)} must share [samples, nodes]"
            )
        nodes = self.hierarchy.num_nodes(self.hierarchy.finest_level)
        if self.inputs.shape[1] != nodes:
            raise GeounetError(f"the samples have {self.inputs.shape[1]} nodes but the hierarchy's finest level has "
                             f"{nodes}; pass the hierarchy the data live on")
        check_finite(self.inputs, "inputs")
        check_finite(self.targets, "targets")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def mass(self) -> Tensor:
        """``[N]`` quadrature weights of the finest level, summing to the domain's measure."""
        return self.hierarchy.mass(self.hierarchy.finest_level)

    def to(self, device: torch.device | str) -> Dataset:
        """The same samples (kept where they are; batches move) on the geometry moved to ``device``
        (``self`` when it is there already)."""
        moved = self.hierarchy.to(device)
        return self if moved is self.hierarchy else dataclasses.replace(self, hierarchy=moved)

    def batch(self, indices: Tensor) -> Batch:
        """Samples ``indices`` as ``[B, N, C]`` on the shared hierarchy."""
        return Batch(self.inputs[indices], self.targets[indices], self.hierarchy)
