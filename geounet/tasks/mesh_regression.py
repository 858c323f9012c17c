"""Signal regression on data sets of many meshes: train on some geometries, test on others.

The machinery shared by the mesh tasks (:mod:`geounet.tasks.darcy_mesh`,
:mod:`geounet.tasks.surface_poisson`). A *problem* supplies a mesh family
(:mod:`geounet.datagen.mesh_families`: hundreds of distinct random geometries, each with
finite-element samples) and the names of its input and target fields; this module turns
it into a :class:`~geounet.tasks.PreparedTask` of :class:`~geounet.data.mesh_dataset.MeshDataset` s:

- **Spaces**: ``hierarchy = "clusters"``: the area-weighted Haar hierarchy of nested face
  clusters (:class:`~geounet.hierarchy.ClusterHierarchy`; signals are face averages), or
  ``"spectral"``: Laplacian eigenbases (:class:`~geounet.hierarchy.MeshSpectralHierarchy`,
  band limits ``band_limits`` then vertex values; signals are vertex values). Every
  mesh gets its own hierarchy, built once and cached on disk (``cache_dir/hierarchies``),
  in ``workers`` processes when asked.
- **Splits by geometry**: the family's hash split (``test_fraction``) puts every mesh id on
  one side; ``train`` holds ``samples_per_mesh`` fields on each training mesh, ``test`` the
  same on each held-out mesh. Every training batch mixes meshes (a disjoint union).
- **Resolution transfer** (``resolution_transfer``): the first ``transfer_meshes`` held-out
  meshes remeshed 4x finer (``refined``) and 4x coarser (``coarsened``), the same domains and
  the same continuous random fields. With ``match_scales`` (clusters only) their hierarchies
  keep the training cell sizes on the coarser levels: the first coarsening of a 4x finer
  mesh takes 2 more matching passes (about 16x fewer cells instead of 4x), that of a 4x
  coarser mesh 2 fewer (0: the finest level repeats), so the trained decoders see cells of
  the physical sizes they were trained on. Spectral spaces need no such care: the first k
  eigenfunctions of a domain do not depend on its mesh, up to discretisation error.

Inputs and targets are divided by their training standard deviations (no offset, so zero
boundary values stay zero).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from torch import Tensor

from geounet.data.mesh_dataset import Clusters, Eigenbases, HierarchyRecipe, MeshDataset, MeshSample
from geounet.datagen.mesh_families import generate_family
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.models.constrained import ConstrainedUNet
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.meshes import plot_mesh_predictions
from geounet.tasks import PreparedTask, TaskStructure, TransferTest

HIERARCHIES = ("clusters", "spectral")


@dataclass(frozen=True)
class MeshRegressionConfig:
    """Fields every mesh-regression task config has (a task adds its family's own)."""

    hierarchy: str = "clusters"
    #: spectral hierarchy only: band limits of the coefficient levels (then vertex values)
    band_limits: list[int] = field(default_factory=lambda: [8, 32, 96])
    #: clusters only: matching passes per level (2 passes ~ 4x fewer cells)
    passes_per_level: int = 2
    #: clusters only: refined / coarsened meshes keep the training cell sizes on coarse levels
    match_scales: bool = True
    num_meshes: int = 300
    samples_per_mesh: int = 2
    #: fraction of the mesh ids held out for testing (split by geometry)
    test_fraction: float = 0.2
    #: also test on refined and coarsened versions of the first ``transfer_meshes`` held-out meshes
    resolution_transfer: bool = True
    transfer_meshes: int = 8
    #: processes that generate data and build hierarchies (0: this one)
    workers: int = 0
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        if self.hierarchy not in HIERARCHIES:
            raise GeounetError(f"task.hierarchy must be one of {HIERARCHIES}, got {self.hierarchy!r}")
        if self.match_scales and self.resolution_transfer and self.passes_per_level < 2:
            raise GeounetError(
                f"task.match_scales needs task.passes_per_level >= 2 (a 4x coarser mesh takes 2 passes fewer), got "
                f"{self.passes_per_level}; raise it or set task.match_scales = false"
            )
        for name in ("num_meshes", "samples_per_mesh", "transfer_meshes"):
            if getattr(self, name) < 1:
                raise GeounetError(f"task.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.test_fraction < 1:
            raise GeounetError(f"task.test_fraction must lie in (0, 1), got {self.test_fraction}")


@dataclass(frozen=True)
class Problem:
    """A mesh family and the fields of its samples that a task maps from and to.

    ``family`` has ``split()``, ``mesh(id, resolution)`` and ``load(cache_dir, id, resolution)``
    returning ``vertices``, ``faces`` and ``<field>_face`` / ``<field>_vertex`` arrays ``[S, N]``.
    """

    family: object
    input_field: str
    target_field: str
    input_name: str
    target_name: str
    #: applied to the raw input field (e.g. log of a permeability)
    input_map: Callable[[np.ndarray], np.ndarray] = np.asarray
    #: boundary condition of the spectral spaces, and whether outputs are constrained to it
    boundary: str = "neumann"
    constrained: bool = False


def recipe(config: MeshRegressionConfig, num_levels: int, problem: Problem, refinement: int = 0) -> HierarchyRecipe:
    """The hierarchy recipe of ``config`` for meshes 4^refinement times finer than the family's."""
    if config.hierarchy == "clusters":
        passes = [config.passes_per_level] * (num_levels - 1)
        if config.match_scales and num_levels > 1:
            passes[0] += 2 * refinement
        return Clusters(num_levels, tuple(passes), seed=config.seed)
    return eigenbases(config.band_limits, num_levels, problem.boundary)


def eigenbases(band_limits: Sequence[int], num_levels: int, boundary: str) -> Eigenbases:
    """The :class:`Eigenbases` recipe of ``task.band_limits`` (coefficient levels, then vertex values)."""
    if len(band_limits) + 1 != num_levels:
        raise GeounetError(
            f"task.band_limits {list(band_limits)} give {len(band_limits) + 1} levels (coefficient levels "
            f"+ vertex values) but model.num_levels is {num_levels}; make them agree"
        )
    return Eigenbases(tuple(band_limits), boundary=boundary)


def structure(config: MeshRegressionConfig, num_levels: int, problem: Problem) -> TaskStructure:
    """The kind and sizes of the task's spaces, from one training mesh (no data generated)."""
    train_ids, _ = problem.family.split()
    template = recipe(config, num_levels, problem).build(Mesh(*problem.family.mesh(int(train_ids[0]))))
    constrained = problem.constrained and config.hierarchy == "spectral"
    wrap = partial(ConstrainedUNet, zero_boundary=True) if constrained else None
    return TaskStructure(template, MessagePassingFactory(template), 1, 1, wrap_model=wrap)


def _samples(config: MeshRegressionConfig, problem: Problem, ids: Sequence[int], resolution: float = 1.0
             ) -> list[MeshSample]:
    """``samples_per_mesh`` raw samples on each mesh ``ids`` (generated or loaded from the cache)."""
    at = "face" if config.hierarchy == "clusters" else "vertex"
    arrays = generate_family(config.cache_dir, problem.family, ids, resolution, workers=max(1, config.workers))
    samples = []
    for data in arrays:
        mesh = Mesh(data["vertices"], data["faces"])
        inputs = problem.input_map(data[f"{problem.input_field}_{at}"])  # [S, N]
        targets = data[f"{problem.target_field}_{at}"]  # [S, N]
        for s in range(len(inputs)):
            samples.append(MeshSample(mesh, torch.from_numpy(inputs[s]).float()[:, None],
                                      torch.from_numpy(targets[s]).float()[:, None]))
    return samples


def _scaled(samples: Sequence[MeshSample], input_scale: float, target_scale: float) -> list[MeshSample]:
    return [MeshSample(s.mesh, s.inputs / input_scale, s.targets / target_scale) for s in samples]


def mesh_plot(dataset: MeshDataset, labels: tuple[str, str], physical_inputs: Callable[[Tensor], Tensor],
              physical_targets: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor, Tensor, str], None]:
    """A task plot for the first samples of ``dataset`` collated into one union batch (input,
    target, prediction, error per mesh; first channel) in physical units: ``physical_inputs`` /
    ``physical_targets`` map model units ``[N, C]`` to physical ones."""

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        meshes = [s.mesh for s in dataset.samples]
        sizes, taken, count = [], 0, 0
        for mesh in meshes:  # the samples the union [1, Σ N_j, C] holds
            n = mesh.num_faces if dataset.recipe.at == "face" else mesh.num_vertices
            if taken + n > inputs.shape[1]:
                break
            sizes.append(n)
            taken += n
            count += 1
        scaled = (physical_inputs(inputs[0, :taken]), physical_targets(targets[0, :taken]),
                  physical_targets(predictions[0, :taken]))
        parts = [t[:, 0].split(sizes) for t in scaled]
        fields = [tuple(p[j] for p in parts) for j in range(count)]
        names = [f"held-out mesh {j}" for j in range(count)]
        plot_mesh_predictions(meshes[:count], names, fields, labels, path)

    return plot


def prepare(config: MeshRegressionConfig, num_levels: int, problem: Problem) -> PreparedTask:
    train_ids, test_ids = problem.family.split()
    train_raw = _samples(config, problem, train_ids)
    input_scale = float(torch.cat([s.inputs for s in train_raw]).std())
    target_scale = float(torch.cat([s.targets for s in train_raw]).std())

    def dataset(samples: Sequence[MeshSample], refinement: int = 0) -> MeshDataset:
        data = MeshDataset(_scaled(samples, input_scale, target_scale), recipe(config, num_levels, problem, refinement),
                           cache_dir=config.cache_dir)
        return data.build_all(workers=config.workers)

    train = dataset(train_raw)
    test = dataset(_samples(config, problem, test_ids))
    transfer = {}
    if config.resolution_transfer:
        ids = test_ids[: config.transfer_meshes]
        for name, resolution, refinement in (("refined", 4.0, 1), ("coarsened", 0.25, -1)):
            transfer[name] = TransferTest(dataset(_samples(config, problem, ids, resolution), refinement))
    plot = mesh_plot(test, (problem.input_name, problem.target_name), lambda x: x * input_scale,
                     lambda y: y * target_scale)
    return PreparedTask(structure(config, num_levels, problem), train, test, plot, transfer=transfer)
