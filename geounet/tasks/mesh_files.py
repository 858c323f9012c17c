"""Regression on a user's folder of mesh files: named fields in, named fields out.

Every mesh file in ``task.folder`` that meshio reads (``.vtu``, ``.ply``, ``.obj`` with a
``.npz`` beside it, ...; see :mod:`geounet.data.mesh_fields`) is one sample: the arrays
``task.inputs`` are the model's input channels and ``task.targets`` its outputs, as
``point_data`` (``task.at = "vertex"``) or triangle ``cell_data`` (``task.at = "face"``).
A config::

    [task]
    name = "mesh_files"
    folder = "my_meshes"       # relative to this config file's folder
    inputs = ["k"]
    targets = ["u"]
    at = "face"                # "face": cell data; "vertex": point data
    recipe = "clusters"        # "clusters" takes face fields, "eigenbases" vertex fields

- **Spaces**: ``recipe = "clusters"``: nested face clusters
  (:class:`~geounet.data.mesh_dataset.Clusters`, ``model.num_levels`` levels,
  ``passes_per_level``); ``"eigenbases"``: Laplacian eigenbases with ``band_limits`` then
  vertex values (:class:`~geounet.data.mesh_dataset.Eigenbases`). Hierarchies are cached
  in ``cache_dir``.
- **Split by file**: a seeded shuffle of the sorted file names; ``test_fraction`` of them
  (at least one) are held out.
- **Units**: the model is trained in standard units, each channel shifted by its training
  mean and divided by its training standard deviation (1 for a constant channel); the
  statistics are buffers of the model (:class:`~geounet.models.standardised.Standardised`),
  so the checkpoint holds them and ``geounet predict`` works in the files' units.

A run is self-contained: its checkpoint records the channel counts, the target widths and
the coordinate dimension of the meshes (:func:`inference_state`), and the model is rebuilt
on a small built-in mesh of that dimension (:func:`template_mesh`; the weights of a mesh
model apply to any mesh of its kind), so :func:`geounet.inference.mesh_model.load_model`
needs neither the training folder nor any file of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import trimesh
from torch import Tensor

from geounet.data.mesh_dataset import RECIPE_AT, Clusters, HierarchyRecipe, MeshDataset, MeshSample
from geounet.data.mesh_fields import mesh_files, read_mesh_fields
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.models.standardised import Standardised
from geounet.nn.message_passing import MessagePassingFactory
from geounet.tasks import PreparedTask, TaskStructure
from geounet.tasks.mesh_regression import eigenbases, mesh_plot

#: recipe name -> where its fields live
RECIPES = {"clusters": "face", "eigenbases": "vertex"}


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "mesh_files"
    #: keys holding paths, resolved against the folder of the config file they are read from
    PATHS: ClassVar[tuple[str, ...]] = ("folder", "cache_dir")
    #: keys the checkpoint fixes (the model's channels and their order, its normalisation, its grid):
    #: ``geounet evaluate --set`` refuses to change them
    FIXED: ClassVar[tuple[str, ...]] = ("inputs", "targets", "at", "recipe")
    folder: str = ""
    inputs: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    at: str = "face"
    recipe: str = "clusters"
    #: clusters only: matching passes per level (2 passes ~ 4x fewer cells)
    passes_per_level: int = 2
    #: eigenbases only: band limits of the coefficient levels (then vertex values)
    band_limits: list[int] = field(default_factory=lambda: [8, 32, 96])
    #: eigenbases only: "neumann" or "dirichlet"
    boundary: str = "neumann"
    test_fraction: float = 0.2
    #: processes that build hierarchies (0: this one)
    workers: int = 0
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        if not self.folder:
            raise GeounetError("task.folder must name the folder of mesh files")
        if not self.inputs or not self.targets:
            raise GeounetError("task.inputs and task.targets must name the point or cell data arrays the model maps "
                               f"from and to, got {self.inputs} and {self.targets}")
        if self.at not in ("vertex", "face"):
            raise GeounetError(f"task.at must be 'vertex' (point data) or 'face' (cell data), got {self.at!r}")
        if self.recipe not in RECIPES:
            raise GeounetError(f"task.recipe must be one of {sorted(RECIPES)}, got {self.recipe!r}")
        if RECIPES[self.recipe] != self.at:
            other = next(name for name, at in RECIPES.items() if at == self.at)
            raise GeounetError(
                f"task.recipe = {self.recipe!r} ({RECIPE_AT[RECIPES[self.recipe]]}) takes {RECIPES[self.recipe]} "
                f"fields but task.at = {self.at!r}; set task.recipe = {other!r} ({RECIPE_AT[self.at]}), or "
                f"task.at = {RECIPES[self.recipe]!r} for fields stored at the {RECIPES[self.recipe]}s")
        if not 0 < self.test_fraction < 1:
            raise GeounetError(f"task.test_fraction must lie in (0, 1), got {self.test_fraction}")


def recipe(config: Config, num_levels: int) -> HierarchyRecipe:
    """The hierarchy recipe of ``config`` with ``num_levels`` levels."""
    if config.recipe == "clusters":
        return Clusters(num_levels, config.passes_per_level, seed=config.seed)
    return eigenbases(config.band_limits, num_levels, config.boundary)


def read_sample(config: Config, path: str | Path) -> MeshSample:
    """The sample of one mesh file in physical units: ``inputs [N, C_in]``, ``targets [N, C_out]``."""
    mesh, fields = read_mesh_fields(path, [*config.inputs, *config.targets], config.at)
    inputs = np.concatenate([fields[name] for name in config.inputs], axis=1)
    targets = np.concatenate([fields[name] for name in config.targets], axis=1)
    return MeshSample(mesh, torch.from_numpy(inputs).float(), torch.from_numpy(targets).float())


def inference_state(config: Config, path: str | Path) -> dict:
    """What rebuilding the model needs, read off one training file: ``input_channels``,
    ``target_widths`` (channels of each of ``config.targets``) and the meshes' ``mesh_dim``."""
    mesh, fields = read_mesh_fields(path, [*config.inputs, *config.targets], config.at)
    return {"input_channels": sum(fields[name].shape[1] for name in config.inputs),
            "target_widths": [fields[name].shape[1] for name in config.targets], "mesh_dim": mesh.dim}


def template_mesh(dim: int) -> Mesh:
    """A small built-in mesh with coordinates in R^dim: a 24 x 24 triangulated unit square
    (dim 2, 1152 faces, 625 vertices) or an icosphere of 1280 faces (dim 3)."""
    if dim == 3:
        sphere = trimesh.creation.icosphere(subdivisions=3)
        return Mesh(sphere.vertices, sphere.faces)
    n = 24
    grid = np.stack(np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1), indexing="ij"), -1)
    corner = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]).ravel()  # lower-left vertex of each cell
    faces = np.concatenate([np.stack([corner, corner + n + 1, corner + 1], 1),
                            np.stack([corner + 1, corner + n + 1, corner + n + 2], 1)])
    return Mesh(grid.reshape(-1, 2), faces)


def structure(config: Config, num_levels: int, statistics: tuple[Tensor, ...] | None = None,
              state: dict | None = None) -> TaskStructure:
    """Kind and channels from ``state`` (:func:`inference_state`; default: read off the first
    file of ``config.folder``), the hierarchy on the :func:`template_mesh` of the meshes'
    dimension; ``statistics`` (means and stds of inputs and targets) go into the model's buffers."""
    state = state or inference_state(config, mesh_files(config.folder)[0])
    template = recipe(config, num_levels).build(template_mesh(state["mesh_dim"]))
    channels = state["input_channels"], sum(state["target_widths"])

    def wrap(net: torch.nn.Module) -> Standardised:
        model = Standardised(net, *channels)
        return model if statistics is None else model.set_statistics(*statistics)

    return TaskStructure(template, MessagePassingFactory(template), *channels, wrap_model=wrap)


def split(config: Config) -> tuple[list[Path], list[Path]]:
    """``(train files, test files)``: a seeded shuffle, ``test_fraction`` held out (at least one each)."""
    files = mesh_files(config.folder)
    if len(files) < 2:
        raise GeounetError(f"{config.folder} holds {len(files)} mesh file; training and testing need at least 2")
    order = np.random.default_rng(config.seed).permutation(len(files))
    held_out = min(max(1, round(config.test_fraction * len(files))), len(files) - 1)
    return [files[i] for i in sorted(order[held_out:])], [files[i] for i in sorted(order[:held_out])]


def statistics(samples: list[MeshSample]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-channel ``(input mean, input std, target mean, target std)`` over every training node
    (a constant channel gets std 1)."""
    stats = []
    for name in ("inputs", "targets"):
        values = torch.cat([getattr(s, name) for s in samples]).double()  # [Σ N, C]
        std = values.std(dim=0)
        stats += [values.mean(dim=0).float(), torch.where(std > 0, std, torch.ones_like(std)).float()]
    return tuple(stats)


def prepare(config: Config, num_levels: int) -> PreparedTask:
    train_files, test_files = split(config)
    train_raw = [read_sample(config, path) for path in train_files]
    stats = statistics(train_raw)
    in_mean, in_std, out_mean, out_std = stats

    def dataset(samples: list[MeshSample]) -> MeshDataset:
        standard = [MeshSample(s.mesh, (s.inputs - in_mean) / in_std, (s.targets - out_mean) / out_std)
                    for s in samples]
        return MeshDataset(standard, recipe(config, num_levels), cache_dir=config.cache_dir).build_all(config.workers)

    train = dataset(train_raw)
    test = dataset([read_sample(config, path) for path in test_files])
    plot = mesh_plot(test, (config.inputs[0], config.targets[0]), lambda x: x * in_std + in_mean,
                     lambda y: y * out_std + out_mean)
    state = inference_state(config, train_files[0])
    return PreparedTask(structure(config, num_levels, stats, state), train, test, plot, checkpoint_state=state)
