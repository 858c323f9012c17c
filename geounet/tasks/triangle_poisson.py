"""Poisson with a zero Dirichlet boundary on the reference triangle: encoding a constraint.

-Δu = f on T = {x, y ≥ 0, x + y ≤ 1}, u = 0 on ∂T, ground truth by P1 finite elements on
the level-``mesh_level`` uniform subdivision (:mod:`geounet.datagen.fem`); the model maps
the vertex values of f to those of u. The spaces (``hierarchy``):

- ``"spectral"``: Laplacian eigenbases of the mesh
  (:class:`~geounet.hierarchy.MeshSpectralHierarchy`, coefficient levels with the band
  limits given, then vertex values), and

  * ``constrained = true``: Dirichlet eigenfunctions, and the output is projected onto
    the functions vanishing on the boundary (:class:`~geounet.models.ConstrainedUNet`),
    so it satisfies u = 0 on ∂T exactly, for any weights;
  * ``constrained = false``: Neumann eigenfunctions and no projection;

- ``"haar"``: the paper's triangle hierarchy (:class:`~geounet.hierarchy.TriangleHierarchy`,
  piecewise constants on the 4-way subdivision, finest cells = the FEM mesh's faces).
  Signals are cell averages, which for a P1 function are the means of its three vertex
  values; they do not vanish on boundary cells, so this space cannot encode the
  boundary condition (``constrained`` must be false). Its error is the relative L2
  error of the cell averages (area weights), against the lumped-mass vertex norm of the
  spectral spaces: the same quantity up to the O(h²) difference of the two quadratures.

Vertex spaces also report the boundary violation max |u_pred| on ∂T. Inputs and targets
are divided by their training standard deviations (no offset, so zero boundary values
stay zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.samples import Dataset
from geounet.datagen.fem import load_or_generate_triangle_poisson, reference_triangle_mesh
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.triangle import TriangleHierarchy
from geounet.models.constrained import ConstrainedUNet
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.fields import plot_triangle_predictions
from geounet.tasks import PreparedTask, TaskStructure, data_splits

HIERARCHIES = ("spectral", "haar")


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "triangle_poisson"
    mesh_level: int = 5
    #: "spectral" (Laplacian eigenbases, vertex values) or "haar" (4-way subdivision, cell averages)
    hierarchy: str = "spectral"
    band_limits: list[int] = field(default_factory=lambda: [16, 64, 256])
    constrained: bool = True
    num_train: int = 512
    num_test: int = 128
    length_scale: float = 0.25
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        if not 2 <= self.mesh_level <= 7:
            raise GeounetError(f"task.mesh_level must lie in [2, 7], got {self.mesh_level}")
        if self.hierarchy not in HIERARCHIES:
            raise GeounetError(f"task.hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        if self.hierarchy == "haar" and self.constrained:
            raise GeounetError(
                "task.constrained = true needs task.hierarchy = 'spectral': Haar cells hold face averages, "
                "which do not vanish on the boundary; set task.constrained = false"
            )
        data_splits(self)


def triangle_mesh(level: int) -> Mesh:
    """The uniform level-``level`` mesh of the reference triangle, embedded in z = 0."""
    vertices, faces = reference_triangle_mesh(level)
    return Mesh(np.c_[vertices, np.zeros(len(vertices))], faces)


def haar_hierarchy(config: Config, num_levels: int) -> TriangleHierarchy:
    """The subdivision hierarchy whose finest cells are the faces of the level-``mesh_level`` mesh."""
    coarsest_depth = config.mesh_level - (num_levels - 1)
    if coarsest_depth < 0:
        raise GeounetError(
            f"model.num_levels = {num_levels} needs task.mesh_level >= {num_levels - 1} with task.hierarchy = 'haar' "
            f"(one subdivision per level), got {config.mesh_level}"
        )
    return TriangleHierarchy(num_levels, coarsest_depth=coarsest_depth)


def fem_face_of_cell(hierarchy: TriangleHierarchy, level: int) -> np.ndarray:
    """For every finest cell of ``hierarchy`` (address order), the index of the same triangle
    among the faces of :func:`reference_triangle_mesh` ``(level)``, matched by centroid."""
    vertices, faces = reference_triangle_mesh(level)
    scale = 3 * 2**level  # centroids are integer multiples of 1 / (3 2^level)
    cells = hierarchy.mesh.vertices[hierarchy.mesh.faces][..., :2].mean(axis=1)  # [F, 2]
    keys = {tuple(k): f for f, k in enumerate(np.rint(vertices[faces].mean(axis=1) * scale).astype(np.int64))}
    match = [keys.get(tuple(k)) for k in np.rint(cells * scale).astype(np.int64)]
    if None in match or len(set(match)) != len(faces):
        raise AssertionError("the subdivision cells and the FEM faces are not the same triangles")
    return np.asarray(match)


def structure(config: Config, num_levels: int) -> TaskStructure:
    if config.hierarchy == "haar":
        hierarchy: Hierarchy = haar_hierarchy(config, num_levels)
        return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), 1, 1)
    boundary = "dirichlet" if config.constrained else "neumann"
    hierarchy = MeshSpectralHierarchy(triangle_mesh(config.mesh_level), config.band_limits, boundary=boundary)
    if hierarchy.num_levels != num_levels:
        raise GeounetError(
            f"task.band_limits {config.band_limits} give {hierarchy.num_levels} levels (coefficient levels "
            f"+ vertex values) but model.num_levels is {num_levels}; make them agree"
        )
    wrap = partial(ConstrainedUNet, zero_boundary=True) if config.constrained else None
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
    vertices, faces = reference_triangle_mesh(config.mesh_level)
    if config.hierarchy == "haar":
        faces = faces[fem_face_of_cell(hierarchy, config.mesh_level)]  # [F, 3], the cells in address order

        def node_values(vertex_values: np.ndarray) -> np.ndarray:  # [S, V] -> [S, F] cell averages
            return vertex_values[:, faces].mean(axis=-1)
    else:
        def node_values(vertex_values: np.ndarray) -> np.ndarray:
            return vertex_values

    f_scale = float(np.std(node_values(splits["train"]["f_vertex"])))
    u_scale = float(np.std(node_values(splits["train"]["u_vertex"])))
    def dataset(arrays: dict) -> Dataset:
        f = torch.from_numpy(node_values(arrays["f_vertex"]) / f_scale).float()[..., None]  # [S, N, 1]
        u = torch.from_numpy(node_values(arrays["u_vertex"]) / u_scale).float()[..., None]  # [S, N, 1]
        return Dataset(f, u, hierarchy)

    train, test = dataset(splits["train"]), dataset(splits["test"])

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        fields = [inputs[..., 0] * f_scale, targets[..., 0] * u_scale, predictions[..., 0] * u_scale]
        plot_triangle_predictions(vertices, faces, *fields, path)

    if config.hierarchy == "haar":
        return PreparedTask(geometry, train, test, plot)
    on_boundary = hierarchy.boundary_mask(hierarchy.finest_level)  # [V] bool

    @torch.no_grad()
    def boundary_violation(model: nn.Module, device: torch.device) -> dict[str, float]:
        prediction = model(test.inputs.to(device), hierarchy.to(device)).cpu() * u_scale  # [S, V, 1]
        return {"boundary_violation_max": prediction[:, on_boundary].abs().max().item()}

    return PreparedTask(geometry, train, test, plot, evaluate_extra=boundary_violation)
