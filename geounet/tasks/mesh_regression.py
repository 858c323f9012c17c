"""Signal regression on families of meshes: train on some geometries, test on others.

The machinery shared by the mesh tasks (:mod:`geounet.tasks.darcy_mesh`,
:mod:`geounet.tasks.surface_poisson`). A *problem* supplies named geometries (JSON-able
specs), how to mesh a spec and how to generate finite-element samples on it; this module
turns them into a :class:`~geounet.tasks.PreparedTask`:

- **Spaces**: ``hierarchy = "clusters"``: the area-weighted Haar hierarchy of nested face
  clusters (:class:`~geounet.hierarchy.ClusterHierarchy`; signals are face averages), or
  ``"spectral"``: Laplacian eigenbases (:class:`~geounet.hierarchy.MeshSpectralHierarchy`,
  band limits ``band_limits`` then vertex values; signals are vertex values).
- **Training on several geometries at once**: a sample is one (input, target) pair on
  *every* training geometry; the signals live on the disjoint union of the meshes
  (:func:`~geounet.hierarchy.batch_hierarchies`), so a batch of B samples is
  ``[B, Σ_j N_j, C]`` and the loss is the mass-weighted MSE over all of them.
- **Tests**: ``test`` holds new samples on the training geometries; the transfer tests
  (:class:`~geounet.tasks.TransferTest`) apply the trained model, unchanged, to

  * ``heldout/<name>``: each held-out geometry, at its native resolution;
  * ``single/<name>``: each training geometry on its own (its share of ``test``: group
    norms and edge-feature scales are per geometry, so a mesh's output does not depend
    on the other meshes of the union);
  * ``refined/<name>`` and ``coarsened/<name>``: each training geometry meshed 4x finer
    and about 4x coarser (resolution transfer: the same domain, a different mesh). With
    ``match_scales`` (clusters only) their hierarchies keep the training cell sizes on
    the coarser levels: the first coarsening of a 4x finer mesh takes 2 more matching
    passes (about 16x fewer cells instead of 4x), that of a 4x coarser mesh 2 fewer (0:
    the finest level repeats), so the trained decoders see cells of the physical sizes
    they were trained on. Spectral spaces need no such care: the first k eigenfunctions
    of a domain do not depend on its mesh, up to discretisation error.

Inputs and targets are divided by their training standard deviations (no offset, so zero
boundary values stay zero). Every geometry draws its samples from its own seed,
``seed + crc32(name) mod 1000`` (+ :data:`~geounet.tasks.TEST_SEED_OFFSET` for tests), so
geometries never share random fields and test fields never repeat training ones. The
``single``, ``refined`` and ``coarsened`` tests of a training geometry use its name, so
they see the same continuous random fields as its part of ``test``: paired comparisons.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.batching import BatchedHierarchy, batch_hierarchies
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.nn.constrained import ConstrainedUNet
from geounet.nn.message_passing import MessagePassingFactory
from geounet.tasks import PreparedTask, TaskStructure, TransferTest, data_splits
from geounet.train.loop import Dataset
from geounet.train.mesh_plots import plot_mesh_predictions

HIERARCHIES = ("clusters", "spectral")


@dataclass(frozen=True)
class MeshRegressionConfig:
    """Fields every mesh-regression task config has (a task adds its problem's own)."""

    hierarchy: str = "clusters"
    #: spectral hierarchy only: band limits of the coefficient levels (then vertex values)
    band_limits: list[int] = field(default_factory=lambda: [16, 64, 256])
    #: clusters only: matching passes per level (2 passes ~ 4x fewer cells)
    passes_per_level: int = 2
    #: clusters only: refined / coarsened meshes keep the training cell sizes on coarse levels
    match_scales: bool = True
    num_train: int = 128
    num_test: int = 32
    #: also test on refined and coarsened meshes of the training geometries
    resolution_transfer: bool = True
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        if self.hierarchy not in HIERARCHIES:
            raise ValueError(f"task.hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        if self.match_scales and self.resolution_transfer and self.passes_per_level < 2:
            raise ValueError(
                f"task.match_scales needs task.passes_per_level >= 2 (a 4x coarser mesh takes 2 passes fewer), got "
                f"{self.passes_per_level}; raise it or set task.match_scales = false"
            )
        data_splits(self)


@dataclass(frozen=True)
class Problem:
    """A family of geometries and the finite-element data on them.

    ``load(spec, num_samples, seed)`` returns ``vertices``, ``faces`` and the fields
    ``input_face``, ``input_vertex``, ``target_face``, ``target_vertex`` (``[S, F]`` /
    ``[S, V]``); ``resize(spec, factor)`` is the spec of the same domain meshed with
    about ``factor`` times as many faces (4 or 1/4).
    """

    train: Mapping[str, Mapping]
    heldout: Mapping[str, Mapping]
    mesh: Callable[[Mapping], Mesh]
    load: Callable[[Mapping, int, int], dict[str, np.ndarray]]
    resize: Callable[[Mapping, float], dict]
    input_name: str
    target_name: str
    #: boundary condition of the spectral spaces, and whether outputs are constrained to it
    boundary: str = "neumann"
    constrained: bool = False


def geometry_seed(seed: int, name: str) -> int:
    """The data seed of geometry ``name`` (stable across runs and Python versions)."""
    return seed + zlib.crc32(name.encode()) % 1000


def mesh_hierarchy(mesh: Mesh, config: MeshRegressionConfig, num_levels: int, boundary: str,
                   refinement: int = 0) -> Hierarchy:
    """The spaces of ``config.hierarchy`` on one mesh, with ``num_levels`` levels.

    ``refinement`` r says the mesh has 4^r times the faces of the training mesh of its
    domain; with ``config.match_scales`` a cluster hierarchy then takes 2r extra matching
    passes in its first coarsening (see the module docstring).
    """
    if config.hierarchy == "clusters":
        passes = [config.passes_per_level] * (num_levels - 1)
        if config.match_scales and num_levels > 1:
            passes[0] += 2 * refinement
        return ClusterHierarchy(mesh, num_levels, passes_per_level=passes)
    hierarchy = MeshSpectralHierarchy(mesh, config.band_limits, boundary=boundary)
    if hierarchy.num_levels != num_levels:
        raise ValueError(
            f"task.band_limits {config.band_limits} give {hierarchy.num_levels} levels (coefficient levels "
            f"+ vertex values) but model.num_levels is {num_levels}; make them agree"
        )
    return hierarchy


def geometry_structure(
    meshes: Sequence[Mesh], config: MeshRegressionConfig, num_levels: int, problem: Problem, refinement: int = 0
) -> TaskStructure:
    """The union of ``meshes`` as one geometry, with message-passing operators (and the
    boundary constraint when the problem asks for one)."""
    hierarchy = batch_hierarchies(
        [mesh_hierarchy(m, config, num_levels, problem.boundary, refinement) for m in meshes]
    )
    constrained = problem.constrained and config.hierarchy == "spectral"
    wrap = partial(ConstrainedUNet, zero_boundary=True) if constrained else None
    return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), 1, 1, wrap_model=wrap)


def structure(config: MeshRegressionConfig, num_levels: int, problem: Problem) -> TaskStructure:
    """The training geometries' structure (no data)."""
    return geometry_structure([problem.mesh(spec) for spec in problem.train.values()], config, num_levels, problem)


def transfer_specs(config: MeshRegressionConfig, problem: Problem) -> dict[str, tuple[Mapping, int]]:
    """Named test geometries besides the training ones (see the module docstring), each with
    its refinement r (4^r times the faces of the training mesh of its domain)."""
    specs = {f"heldout/{name}": (spec, 0) for name, spec in problem.heldout.items()}
    specs |= {f"single/{name}": (spec, 0) for name, spec in problem.train.items()}
    if config.resolution_transfer:
        for name, spec in problem.train.items():
            specs[f"refined/{name}"] = (problem.resize(spec, 4), 1)
            specs[f"coarsened/{name}"] = (problem.resize(spec, 1 / 4), -1)
    return specs


def geometry_plot(meshes: Sequence[Mesh], names: Sequence[str], hierarchy: BatchedHierarchy, problem: Problem,
                  input_scale: float, target_scale: float) -> Callable[[Tensor, Tensor, Tensor, str], None]:
    """A task plot for signals on the union of ``meshes``: the first sample on every mesh
    (input, target, prediction, error) in physical units."""

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        level = hierarchy.finest_level
        scaled = (inputs * input_scale, targets * target_scale, predictions * target_scale)
        parts = [hierarchy.split(t[:1], level) for t in scaled]  # 3 x per-mesh [1, N_j, 1]
        fields = [tuple(p[j][0, :, 0] for p in parts) for j in range(len(meshes))]
        plot_mesh_predictions(meshes, names, fields, (problem.input_name, problem.target_name), path)

    return plot


def prepare(config: MeshRegressionConfig, num_levels: int, problem: Problem) -> PreparedTask:
    at = "face" if config.hierarchy == "clusters" else "vertex"
    (num_train, train_seed), (num_test, test_seed) = data_splits(config).values()

    def load(specs: Mapping[str, Mapping], count: int, seed: int) -> tuple[list[Mesh], Tensor, Tensor]:
        """Meshes, inputs ``[S, Σ N_j, 1]`` and targets of the union of ``specs``."""
        arrays = [problem.load(spec, count, geometry_seed(seed, name.split("/")[-1]))  # "refined/x" -> x's seed
                  for name, spec in specs.items()]
        meshes = [Mesh(a["vertices"], a["faces"]) for a in arrays]
        inputs = np.concatenate([a[f"input_{at}"] for a in arrays], axis=1)  # [S, Σ N_j]
        targets = np.concatenate([a[f"target_{at}"] for a in arrays], axis=1)  # [S, Σ N_j]
        return meshes, torch.from_numpy(inputs)[..., None], torch.from_numpy(targets)[..., None]

    meshes, train_inputs, train_targets = load(problem.train, num_train, train_seed)
    geometry = geometry_structure(meshes, config, num_levels, problem)
    input_scale, target_scale = float(train_inputs.std()), float(train_targets.std())

    def dataset(inputs: Tensor, targets: Tensor, hierarchy: Hierarchy) -> Dataset:
        return Dataset((inputs / input_scale).float(), (targets / target_scale).float(), hierarchy)

    _, test_inputs, test_targets = load(problem.train, num_test, test_seed)
    transfer = {}
    for name, (spec, refinement) in transfer_specs(config, problem).items():
        meshes_j, inputs_j, targets_j = load({name: spec}, num_test, test_seed)
        structure_j = geometry_structure(meshes_j, config, num_levels, problem, refinement)
        hierarchy_j = structure_j.hierarchy
        plot_j = None
        if name.startswith("heldout/"):
            plot_j = geometry_plot(meshes_j, [name], hierarchy_j, problem, input_scale, target_scale)
        transfer[name] = TransferTest(dataset(inputs_j, targets_j, hierarchy_j), plot_j)

    plot = geometry_plot(meshes, list(problem.train), geometry.hierarchy, problem, input_scale, target_scale)
    hierarchy = geometry.hierarchy
    return PreparedTask(geometry, dataset(train_inputs, train_targets, hierarchy),
                        dataset(test_inputs, test_targets, hierarchy),
                        plot, transfer=transfer)
