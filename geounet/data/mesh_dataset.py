"""Data sets of many meshes: one geometry per sample, hierarchies built once per mesh.

A :class:`MeshSample` is a mesh with node fields on it (face values for face-cell
hierarchies, vertex values for eigenbases). A :class:`MeshDataset` holds samples and a
*recipe* (:class:`Clusters`, :class:`Eigenbases`) that says how to build each mesh's
hierarchy. Hierarchies are

- built once per distinct mesh (samples that share a mesh share its hierarchy),
- cached on disk by content hash (``sha256`` of the mesh bytes and the recipe), so a
  second run, another process or a DataLoader worker loads instead of rebuilding,
- built in worker processes when asked (:meth:`MeshDataset.build_all` with ``workers``).

Batches are disjoint unions, as PyTorch Geometric's ``Batch``: ``dataset[i]`` is a
one-sample :class:`~geounet.data.samples.Batch` and :func:`collate` joins samples into
``[1, Σ_j N_j, C]`` on a :class:`~geounet.hierarchy.BatchedHierarchy`, or, when every
sample lives on the same geometry (a grid), stacks them into ``[B, N, C]`` on that one
hierarchy with no per-sample copies. ``torch.utils.data.DataLoader(dataset,
collate_fn=collate, num_workers=k)`` therefore works as it does for PyG data sets.

PyTorch Geometric's ``Data`` / ``Batch`` and ``DataLoader`` connect through
:mod:`geounet.data.pyg` (:meth:`MeshDataset.from_pyg`, :class:`~geounet.data.pyg.PygBatches`).

Cache files hold the pickled hierarchy behind a header with its SHA-256 and length, which
is verified before unpickling; they are written atomically and only by geounet into the
cache directory the user chose (``cache_dir``; None keeps hierarchies in memory only).
"""

from __future__ import annotations

import concurrent.futures
import copy
import hashlib
import multiprocessing
import os
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from geounet.data.cache import HashHeaderError, atomic_write, hash_headed, read_hash_headed
from geounet.data.samples import Batch, check_finite
from geounet.errors import GeounetError, optional_cache_write
from geounet.geometry.cache_files import CacheRebuiltWarning
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.batching import batch_hierarchies
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy

_CACHE_VERSION = 2  # 2: canonical eigenvectors in spectral hierarchies
_MAGIC = b"geounet-hierarchy"


class HierarchyRecipe(Protocol):
    """How to build a hierarchy on a mesh: picklable, and its ``repr`` is its cache key."""

    #: where the fields live: ``"face"`` (cell averages) or ``"vertex"`` (vertex values)
    at: str

    def build(self, mesh: Mesh) -> Hierarchy: ...


#: the recipe class that takes fields at each place, named in errors about fields at the other
RECIPE_AT = {"face": "Clusters", "vertex": "Eigenbases"}


@dataclass(frozen=True)
class Clusters:
    """:class:`~geounet.hierarchy.ClusterHierarchy` on each mesh (face fields)."""

    num_levels: int
    passes_per_level: int | tuple[int, ...] = 2
    seed: int = 0
    at = "face"

    def build(self, mesh: Mesh) -> Hierarchy:
        passes = self.passes_per_level if isinstance(self.passes_per_level, int) else list(self.passes_per_level)
        return ClusterHierarchy(mesh, self.num_levels, passes_per_level=passes, seed=self.seed)


@dataclass(frozen=True)
class Eigenbases:
    """:class:`~geounet.hierarchy.MeshSpectralHierarchy` on each mesh (vertex fields)."""

    band_limits: tuple[int, ...]
    boundary: str = "neumann"
    laplacian: str = "auto"
    normalize: bool = False
    at = "vertex"

    def build(self, mesh: Mesh) -> Hierarchy:
        return MeshSpectralHierarchy(mesh, list(self.band_limits), boundary=self.boundary, laplacian=self.laplacian,
                                     normalize=self.normalize)


def hierarchy_key(mesh: Mesh, recipe: HierarchyRecipe) -> str:
    """The content hash naming ``recipe``'s hierarchy on ``mesh``."""
    text = f"{_CACHE_VERSION}|{mesh.content_hash}|{recipe!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached_hierarchy(mesh: Mesh, recipe: HierarchyRecipe, cache_dir: str | os.PathLike | None = None) -> Hierarchy:
    """``recipe.build(mesh)``, loaded from or saved to ``cache_dir`` (None: no disk cache).

    The hierarchy is materialised (every level graph built) before it is saved, so a load
    gives the complete data. A cache file that fails its SHA-256 header is never unpickled:
    it is rebuilt with one :class:`~geounet.geometry.cache_files.CacheRebuiltWarning` naming it.
    """
    key = hierarchy_key(mesh, recipe)
    if cache_dir is None:
        hierarchy = recipe.build(mesh).materialize()
    else:
        path = Path(cache_dir) / "hierarchies" / f"{key}.pkl"
        hierarchy = _load_hierarchy(path) if path.is_file() else None
        if hierarchy is None:
            hierarchy = recipe.build(mesh).materialize()
            payload = pickle.dumps(hierarchy, protocol=pickle.HIGHEST_PROTOCOL)
            with optional_cache_write(path, "the hierarchy cache"):
                atomic_write(path, lambda tmp: tmp.write_bytes(hash_headed(_MAGIC, payload)))
    hierarchy.content_key = key
    return hierarchy


def _load_hierarchy(path: Path) -> Hierarchy | None:
    """The hierarchy cached at ``path``; None (after a warning naming it) when the file is damaged."""
    try:
        payload = read_hash_headed(path, _MAGIC)
    except HashHeaderError as error:
        warnings.warn(f"hierarchy cache file {path} is damaged ({error.explain()}); rebuilding it", CacheRebuiltWarning,
                      stacklevel=3)
        return None
    return pickle.loads(payload)  # our own file, hash-checked


@dataclass
class MeshSample:
    """Fields on one mesh: ``inputs [N, C_in]`` and ``targets [N, C_out]`` at the faces or vertices."""

    mesh: Mesh
    inputs: Tensor  # [N, C_in]
    targets: Tensor  # [N, C_out]


class MeshDataset:
    """Samples on many meshes, with their hierarchies (see the module docstring).

    Args:
        samples: the samples; their fields live where ``recipe.at`` says.
        recipe: how to build each mesh's hierarchy.
        cache_dir: on-disk hierarchy cache (None: build in memory only).
    """

    def __init__(self, samples: Sequence[MeshSample], recipe: HierarchyRecipe,
                 cache_dir: str | os.PathLike | None = None):
        if not samples:
            raise GeounetError("a MeshDataset needs at least one sample")
        self.samples = list(samples)
        self.recipe = recipe
        self.cache_dir = cache_dir
        self._meshes: dict[str, Mesh] = {}
        self._mesh_of: list[str] = []
        for index, sample in enumerate(self.samples):
            check_sample(sample, recipe, f"sample {index}", self.samples[0])
            key = sample.mesh.content_hash
            self._meshes.setdefault(key, sample.mesh)
            self._mesh_of.append(key)
        self._hierarchies: dict[str, Hierarchy] = {}
        self.device = torch.device("cpu")

    @classmethod
    def from_pyg(cls, data_list, recipe: HierarchyRecipe, cache_dir: str | os.PathLike | None = None) -> MeshDataset:
        """The data set of PyG ``Data(pos, face, x, y)`` graphs (or ``Batch`` es of them), fields
        where ``recipe.at`` says (see :func:`geounet.data.pyg.from_pyg`)."""
        from geounet.data.pyg import from_pyg

        samples = []
        for data in data_list:
            converted = from_pyg(data, at=recipe.at)
            samples.extend(converted if isinstance(converted, list) else [converted])
        return cls(samples, recipe, cache_dir)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_meshes(self) -> int:
        return len(self._meshes)

    def hierarchy(self, index: int) -> Hierarchy:
        """The hierarchy of sample ``index``'s mesh (built or loaded once)."""
        key = self._mesh_of[index]
        if key not in self._hierarchies:
            built = cached_hierarchy(self._meshes[key], self.recipe, self.cache_dir)
            self._hierarchies[key] = built.to(self.device)
        return self._hierarchies[key]

    def build_all(self, workers: int = 0) -> MeshDataset:
        """Build (or load) every mesh's hierarchy now, in ``workers`` processes (0: here)."""
        missing = [key for key in self._meshes if key not in self._hierarchies]
        if workers > 0 and len(missing) > 1:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded torch process
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                jobs = [pool.submit(cached_hierarchy, self._meshes[key], self.recipe, self.cache_dir)
                        for key in missing]
                for key, job in zip(missing, jobs, strict=True):
                    self._hierarchies[key] = job.result().to(self.device)
        for index in range(len(self)):
            self.hierarchy(index)
        return self

    def to(self, device: torch.device | str) -> MeshDataset:
        """The data set with every hierarchy on ``device`` (built first; ``self`` when they are there
        already); samples move batch by batch."""
        self.build_all()
        device = torch.device(device)
        if device == self.device:
            return self
        moved = copy.copy(self)
        moved.device = device
        moved._hierarchies = {key: h.to(device) for key, h in self._hierarchies.items()}
        return moved

    def __getitem__(self, index: int) -> Batch:
        sample = self.samples[index]
        return Batch(sample.inputs[None], sample.targets[None], self.hierarchy(index))

    def batch(self, indices: Tensor | Sequence[int]) -> Batch:
        """Samples ``indices`` collated into one batch (:func:`collate`)."""
        return collate([self[int(i)] for i in indices])


def check_sample(sample: MeshSample, recipe: HierarchyRecipe, what: str, first: MeshSample | None = None) -> None:
    """Refuse a sample whose fields are not ``[N, C]`` at ``recipe.at`` of its mesh (naming the
    recipe and the transfer that take the other kind), hold NaN / Inf, or have other channel
    counts than ``first``."""
    at = recipe.at
    other = "vertex" if at == "face" else "face"
    counts = {"face": sample.mesh.num_faces, "vertex": sample.mesh.num_vertices}
    for name in ("inputs", "targets"):
        values = getattr(sample, name)
        if values.dim() != 2 or values.shape[0] != counts[at]:
            hint = ""
            if values.dim() == 2 and values.shape[0] == counts[other]:
                hint = (f"; these are {other} values: {RECIPE_AT[other]} takes those, or convert them with "
                        f"Mesh.{other}_to_{at}")
            raise GeounetError(f"{what}: {name} must be [{counts[at]}, channels] ({at} values of its mesh, as "
                               f"{type(recipe).__name__} takes), got {tuple(values.shape)}{hint}")
        check_finite(values[None], f"{what}'s {name}")
        if first is not None and values.shape[1] != getattr(first, name).shape[1]:
            raise GeounetError(f"{what} has {values.shape[1]} {name} channels, the first sample has "
                               f"{getattr(first, name).shape[1]}")


def collate(items: Sequence[Batch]) -> Batch:
    """Join one-geometry batches: stacked ``[B, N, C]`` when all share one geometry (same object
    or same ``content_key``), else their disjoint union ``[1, Σ N_j, C]``."""
    if not items:
        raise GeounetError("collate needs at least one item")
    first = items[0].hierarchy
    shared = all(item.hierarchy is first or _same_content(item.hierarchy, first) for item in items)
    if shared:
        return Batch(torch.cat([i.inputs for i in items]), torch.cat([i.targets for i in items]), first)
    parts, inputs, targets = [], [], []
    for item in items:
        for b in range(len(item.inputs)):  # a union takes one sample per part
            parts.append(item.hierarchy)
            inputs.append(item.inputs[b : b + 1])
            targets.append(item.targets[b : b + 1])
    return Batch(torch.cat(inputs, dim=1), torch.cat(targets, dim=1), batch_hierarchies(parts))


def _same_content(a: Hierarchy, b: Hierarchy) -> bool:
    key = getattr(a, "content_key", None)
    return key is not None and key == getattr(b, "content_key", None)
