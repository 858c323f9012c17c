"""Families of many distinct meshes with finite-element solutions, one pure function per mesh.

A family is a frozen, picklable description of a random geometry generator and a PDE;
mesh ``i`` of it is a deterministic function of ``(family, i, resolution)``, so samples
can be generated in any order, in worker processes (:func:`generate_family`, or
``family.load`` from a ``DataLoader`` worker), and cached on disk one file per mesh.

* :class:`DarcyFamily`: -∇·(k ∇u) = 1, u = 0 on every boundary, on random planar
  domains with 0-3 holes (:mod:`geounet.datagen.planar_domains`), each meshed by Triangle
  with its own area bound (about 300-1500 faces); k = exp(σ g), g a Gaussian random
  field (:func:`geounet.datagen.fem.darcy_samples`).
* :class:`SurfaceFamily`: -Δ_S u + u = f on random smooth closed surfaces of genus 0,
  1 and 2 (:mod:`geounet.datagen.closed_surfaces`), f a smooth random field
  (:func:`geounet.datagen.fem.generate_surface_poisson_dataset`).

Randomness: the geometry of mesh ``i`` comes from the stream ``(seed, i, 0)`` and its
fields from ``(seed, i, 1)`` (numpy ``SeedSequence`` entropy), so changing
``samples_per_mesh`` or ``resolution`` never changes the geometry, and the fields are
functions of the ambient coordinates: mesh ``i`` at ``resolution = 4`` carries the same
continuous k (or f) on the same domain (or surface) with 4 times as many faces.

Train / test split by geometry: ``split()`` assigns each mesh id to the test set when a
hash of ``(seed, id)`` falls below ``test_fraction``; the two id sets are disjoint, and
growing ``num_meshes`` keeps every existing id on its side.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from geounet.data.cache import cached
from geounet.datagen import fem
from geounet.datagen.closed_surfaces import random_closed_surface
from geounet.datagen.planar_domains import (
    MEAN_AREA_FRACTION,
    PlanarDomain,
    random_planar_domain,
    triangulate_domain,
)
from geounet.errors import GeounetError

#: 2: the domains' outlines and areas no longer go through BLAS (the same meshes on every CPU);
#: 3: the domains' coordinates lie on a dyadic grid (planar_domains.GRID_BITS: np.sin / np.cos /
#: np.exp differ in the last bit between CPUs)
FAMILY_VERSION = 3
_GEOMETRY_STREAM, _FIELD_STREAM = 0, 1


def split_by_geometry(num_meshes: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted mesh ids ``(train [N_train], test [N_test])`` covering ``0 .. num_meshes - 1``.

    Id i is a test id when the first 8 bytes of SHA-256(``"{seed}:{i}"``), read as a
    fraction of 2^64, are below ``test_fraction``.
    """
    if not 0 < test_fraction < 1:
        raise GeounetError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    ids = np.arange(num_meshes)
    draw = np.array([int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8], "big") for i in ids])
    test = draw < test_fraction * 2.0**64
    if test.all() or not test.any():
        raise GeounetError(f"splitting {num_meshes} meshes with test_fraction={test_fraction} left one side empty; "
                         "use more meshes")
    return ids[~test], ids[test]


@dataclass(frozen=True)
class _MeshFamily(abc.ABC):
    """Fields and caching shared by every family (see the module docstring)."""

    name: ClassVar[str]
    #: fields that select or split meshes but do not change mesh i's data (not in cache keys)
    _not_generation: ClassVar[tuple[str, ...]] = ("num_meshes", "test_fraction")

    seed: int = 0
    num_meshes: int = 100
    samples_per_mesh: int = 1
    test_fraction: float = 0.2

    def __post_init__(self) -> None:
        for field in ("num_meshes", "samples_per_mesh"):
            value = getattr(self, field)
            if not (isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1):
                raise GeounetError(f"{field} must be a positive integer, got {value!r}")
        if not 0 < self.test_fraction < 1:
            raise GeounetError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")

    def _check_id(self, mesh_id: int) -> int:
        if not (isinstance(mesh_id, int | np.integer) and 0 <= mesh_id < self.num_meshes):
            raise GeounetError(f"mesh_id must be an integer in [0, {self.num_meshes}), got {mesh_id!r}")
        return int(mesh_id)

    def _rng(self, mesh_id: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._check_id(mesh_id), stream])

    def _field_seed(self, mesh_id: int) -> int:
        """An int seed drawn from mesh ``mesh_id``'s field stream (fem generators take int seeds)."""
        return int(self._rng(mesh_id, _FIELD_STREAM).integers(2**63))

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_ids, test_ids)``: :func:`split_by_geometry` of this family's meshes."""
        return split_by_geometry(self.num_meshes, self.test_fraction, self.seed)

    @abc.abstractmethod
    def sample(self, mesh_id: int, resolution: float = 1.0) -> dict[str, np.ndarray]:
        """Geometry and fields of mesh ``mesh_id`` (computed, not cached)."""

    def cache_params(self, mesh_id: int, resolution: float = 1.0) -> dict:
        """The JSON-able generation parameters of one sample (its cache key)."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in self._not_generation}
        return {"generator": self.name, "version": FAMILY_VERSION, "fem_version": fem.GENERATOR_VERSION, **fields,
                "mesh_id": int(mesh_id), "resolution": float(resolution)}

    def load(self, cache_dir: str | os.PathLike, mesh_id: int, resolution: float = 1.0) -> dict[str, np.ndarray]:
        """:meth:`sample` through the npz cache ``cache_dir / name / name-<hash>.npz``."""
        self._check_id(mesh_id)
        return cached(Path(cache_dir) / self.name, self.name, self.cache_params(mesh_id, resolution),
                      lambda: self.sample(mesh_id, resolution), fmt="npz")


@dataclass(frozen=True)
class DarcyFamily(_MeshFamily):
    """Darcy flow on random planar domains with holes (Triangle meshes of varying resolution).

    Attributes:
        num_meshes: number of distinct domains (ids 0 .. num_meshes - 1).
        samples_per_mesh: permeability draws per domain (the S of the sample arrays).
        faces: range of the target face count at resolution 1, drawn log-uniformly per domain.
        holes: range of the number of holes per domain.
        length_scale, log_std: the log-permeability field's length scale ℓ and σ.
    """

    name: ClassVar[str] = "darcy_family"

    num_meshes: int = 300
    faces: tuple[int, int] = (300, 1500)
    holes: tuple[int, int] = (0, 3)
    length_scale: float = 0.2
    log_std: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (len(self.faces) == 2 and 0 < self.faces[0] <= self.faces[1]):
            raise GeounetError(f"faces must be a range (min, max) of positive counts, got {self.faces!r}")
        if not (self.length_scale > 0 and self.log_std > 0):
            raise GeounetError(f"length_scale and log_std must be positive, got {self.length_scale}, {self.log_std}")

    def _domain_and_area_bound(self, mesh_id: int) -> tuple[PlanarDomain, float]:
        rng = self._rng(mesh_id, _GEOMETRY_STREAM)
        domain = random_planar_domain(rng, holes=tuple(self.holes))
        target_faces = np.exp(rng.uniform(*np.log(self.faces)))
        return domain, domain.area / (MEAN_AREA_FRACTION * target_faces)

    def domain(self, mesh_id: int) -> PlanarDomain:
        """The polygonal domain of mesh ``mesh_id`` (independent of the resolution)."""
        return self._domain_and_area_bound(mesh_id)[0]

    def mesh(self, mesh_id: int, resolution: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``vertices [V, 2]``, ``faces [F, 3]`` of the domain with about ``resolution`` times its
        resolution-1 face count (the Triangle area bound divided by ``resolution``)."""
        if not resolution > 0:
            raise GeounetError(f"resolution must be positive, got {resolution}")
        domain, max_area = self._domain_and_area_bound(mesh_id)
        return triangulate_domain(domain, max_area / resolution)

    def sample(self, mesh_id: int, resolution: float = 1.0) -> dict[str, np.ndarray]:
        """:func:`geounet.datagen.fem.darcy_samples` on :meth:`mesh`: ``vertices [V, 2]``,
        ``faces [F, 3]``, ``boundary [V]``, ``k_vertex``, ``u_vertex [S, V]``, ``k_face``,
        ``u_face [S, F]``, plus the scalars ``mesh_id`` and ``num_holes``."""
        vertices, faces = self.mesh(mesh_id, resolution)
        data = fem.darcy_samples(vertices, faces, self.samples_per_mesh, self._field_seed(mesh_id),
                                 self.length_scale, self.log_std)
        return {**data, "mesh_id": np.int64(mesh_id), "num_holes": np.int64(self.domain(mesh_id).num_holes)}


@dataclass(frozen=True)
class SurfaceFamily(_MeshFamily):
    """Screened Poisson on random closed surfaces; mesh i has genus ``genera[i % len(genera)]``.

    Attributes:
        num_meshes: number of distinct surfaces (ids 0 .. num_meshes - 1).
        samples_per_mesh: forcing draws per surface (the S of the sample arrays).
        genera: genera to cycle through (0 sphere, 1 torus, g >= 2 pillow with g holes).
        length_scale: the forcing field's length scale.
    """

    name: ClassVar[str] = "surface_family"

    num_meshes: int = 100
    genera: tuple[int, ...] = (0, 1, 2)
    length_scale: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (len(self.genera) and all(isinstance(g, int | np.integer) and g >= 0 for g in self.genera)):
            raise GeounetError(f"genera must be a non-empty sequence of non-negative integers, got {self.genera!r}")
        if not self.length_scale > 0:
            raise GeounetError(f"length_scale must be positive, got {self.length_scale}")

    def genus(self, mesh_id: int) -> int:
        return int(self.genera[int(mesh_id) % len(self.genera)])

    def mesh(self, mesh_id: int, resolution: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``vertices [V, 3]``, ``faces [F, 3]``; ``resolution`` a power of 4 (face count factor)."""
        return random_closed_surface(self._rng(mesh_id, _GEOMETRY_STREAM), self.genus(mesh_id), resolution)

    def sample(self, mesh_id: int, resolution: float = 1.0) -> dict[str, np.ndarray]:
        """:func:`geounet.datagen.fem.generate_surface_poisson_dataset` on :meth:`mesh`:
        ``vertices [V, 3]``, ``faces [F, 3]``, ``f_vertex``, ``u_vertex [S, V]``, ``f_face``,
        ``u_face [S, F]``, plus the scalars ``mesh_id`` and ``genus``."""
        data = fem.generate_surface_poisson_dataset(self.samples_per_mesh, *self.mesh(mesh_id, resolution),
                                                    self._field_seed(mesh_id), self.length_scale)
        return {**data, "mesh_id": np.int64(mesh_id), "genus": np.int64(self.genus(mesh_id))}


def generate_family(cache_dir: str | os.PathLike, family: _MeshFamily, mesh_ids: Sequence[int] | None = None,
                    resolution: float = 1.0, workers: int = 1) -> list[dict[str, np.ndarray]]:
    """``family.load(cache_dir, i, resolution)`` for every id (all by default), in id order,
    over ``workers`` processes (each mesh is independent; files are written atomically)."""
    mesh_ids = range(family.num_meshes) if mesh_ids is None else [int(i) for i in mesh_ids]
    if workers == 1:
        return [family.load(cache_dir, i, resolution) for i in mesh_ids]
    if not (isinstance(workers, int) and workers > 1):
        raise GeounetError(f"workers must be a positive integer, got {workers!r}")
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(family.load, [cache_dir] * len(mesh_ids), mesh_ids, [resolution] * len(mesh_ids)))
