"""Poisson with a zero Dirichlet boundary on the reference triangle: encoding a constraint.

-Δu = f on T = {x, y ≥ 0, x + y ≤ 1}, u = 0 on ∂T, ground truth by P1 finite elements on
the level-``mesh_level`` uniform subdivision (:mod:`geounet.data.fem`); the model maps
the vertex values of f to those of u. The spaces are Laplacian eigenbases of the mesh
(:class:`~geounet.hierarchy.MeshSpectralHierarchy`, coefficient levels with the band
limits given, then vertex values):

- ``constrained = true``: Dirichlet eigenfunctions, and the output is projected onto the
  functions vanishing on the boundary (:class:`~geounet.hierarchy.ConstrainedUNet`), so
  it satisfies u = 0 on ∂T exactly, for any weights;
- ``constrained = false``: Neumann eigenfunctions and no projection.

Besides the error, the task reports the boundary violation max |u_pred| on ∂T. Inputs
and targets are divided by their training standard deviations (no offset, so zero
boundary values stay zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.fem import load_or_generate_triangle_poisson, reference_triangle_mesh
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.constraints import ConstrainedUNet, FunctionConstraint, boundary_mask
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.nn.message_passing import MessagePassingFactory
from geounet.tasks import PreparedTask, TaskStructure, data_splits
from geounet.train.loop import Dataset
from geounet.train.plots import plot_triangle_predictions


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "triangle_poisson"
    mesh_level: int = 5
    band_limits: list[int] = field(default_factory=lambda: [16, 64, 256])
    constrained: bool = True
    num_train: int = 512
    num_test: int = 128
    length_scale: float = 0.25
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        if not 2 <= self.mesh_level <= 7:
            raise ValueError(f"task.mesh_level must lie in [2, 7], got {self.mesh_level}")
        data_splits(self)


def triangle_mesh(level: int) -> Mesh:
    """The uniform level-``level`` mesh of the reference triangle, embedded in z = 0."""
    vertices, faces = reference_triangle_mesh(level)
    return Mesh(np.c_[vertices, np.zeros(len(vertices))], faces)


def structure(config: Config, num_levels: int) -> TaskStructure:
    boundary = "dirichlet" if config.constrained else "neumann"
    hierarchy = MeshSpectralHierarchy(triangle_mesh(config.mesh_level), config.band_limits, boundary=boundary)
    if hierarchy.num_levels != num_levels:
        raise ValueError(
            f"task.band_limits {config.band_limits} give {hierarchy.num_levels} levels (coefficient levels "
            f"+ vertex values) but model.num_levels is {num_levels}; make them agree"
        )
    wrap = None
    if config.constrained:
        constraint = FunctionConstraint(hierarchy, zero_boundary=True)

        def wrap(unet: nn.Module) -> nn.Module:
            return ConstrainedUNet(unet, constraint)

    return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), 1, 1, wrap_model=wrap)


def prepare(config: Config, num_levels: int) -> PreparedTask:
    geometry = structure(config, num_levels)
    hierarchy = geometry.hierarchy
    splits = {
        split: load_or_generate_triangle_poisson(
            config.cache_dir, count, seed, level=config.mesh_level, length_scale=config.length_scale
        )
        for split, (count, seed) in data_splits(config).items()
    }
    f_scale = float(np.std(splits["train"]["f_vertex"]))
    u_scale = float(np.std(splits["train"]["u_vertex"]))
    mass = hierarchy.mass(hierarchy.finest_level)

    def dataset(arrays: dict) -> Dataset:
        f = torch.from_numpy(arrays["f_vertex"] / f_scale).float()[..., None]  # [S, V, 1]
        u = torch.from_numpy(arrays["u_vertex"] / u_scale).float()[..., None]  # [S, V, 1]
        return Dataset(f, u, mass)

    train, test = dataset(splits["train"]), dataset(splits["test"])
    on_boundary = boundary_mask(hierarchy, hierarchy.finest_level)  # [V] bool

    @torch.no_grad()
    def boundary_violation(model: nn.Module, device: torch.device) -> dict[str, float]:
        prediction = model(test.inputs.to(device)).cpu() * u_scale  # [S, V, 1]
        return {"boundary_violation_max": prediction[:, on_boundary].abs().max().item()}

    vertices, faces = reference_triangle_mesh(config.mesh_level)

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        fields = [inputs[..., 0] * f_scale, targets[..., 0] * u_scale, predictions[..., 0] * u_scale]
        plot_triangle_predictions(vertices, faces, *fields, path)

    return PreparedTask(geometry, train, test, plot, evaluate_extra=boundary_violation)
