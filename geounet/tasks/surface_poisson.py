"""Screened Poisson on curved closed surfaces: f ↦ u, trained on spheres, tested on others.

-Δ_S u + u = f on a closed surface S (Δ_S the Laplace–Beltrami operator), f a smooth
random field of the ambient coordinates, P1 finite-element ground truth with the
cotangent Laplacian (:mod:`geounet.data.fem`). The model maps f to u on the mesh (face
averages for the cluster hierarchy, vertex values for the spectral one; see
:mod:`geounet.tasks.mesh_regression`).

Training surfaces: the unit icosphere and a bumpy sphere; held out: another bumpy sphere
and a torus (genus 1, regions of negative curvature never seen in training).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from geounet.data.fem import SURFACE_TEST, SURFACE_TRAIN, load_or_generate_surface_poisson, surface_mesh
from geounet.geometry.mesh import Mesh
from geounet.tasks import PreparedTask, TaskStructure, mesh_regression
from geounet.tasks.mesh_regression import MeshRegressionConfig, Problem

TRAIN_SURFACES = dict(zip(("icosphere", "bumpy_sphere_a"), SURFACE_TRAIN, strict=True))
HELDOUT_SURFACES = dict(zip(("bumpy_sphere_b", "torus"), SURFACE_TEST, strict=True))


@dataclass(frozen=True)
class Config(MeshRegressionConfig):
    name: ClassVar[str] = "surface_poisson"
    length_scale: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not self.length_scale > 0:
            raise ValueError(f"task.length_scale must be positive, got {self.length_scale}")


def resize(spec: Mapping, factor: float) -> dict:
    """The same surface with ``factor`` (4 or 1/4) times as many faces."""
    spec = dict(spec)
    if factor not in (4, 1 / 4):
        raise ValueError(f"resize factor must be 4 or 1/4, got {factor}")
    if spec["kind"] == "torus":
        scale = 2 if factor == 4 else 0.5
        for key in ("major_sections", "minor_sections"):
            spec[key] = int(spec[key] * scale)
    else:
        spec["subdivisions"] = int(spec["subdivisions"]) + (1 if factor == 4 else -1)
    return spec


def problem(config: Config) -> Problem:
    def load(spec: Mapping, count: int, seed: int) -> dict[str, np.ndarray]:
        data = load_or_generate_surface_poisson(config.cache_dir, count, spec, seed, length_scale=config.length_scale)
        return {"vertices": data["vertices"], "faces": data["faces"],
                "input_face": data["f_face"], "input_vertex": data["f_vertex"],
                "target_face": data["u_face"], "target_vertex": data["u_vertex"]}

    return Problem(TRAIN_SURFACES, HELDOUT_SURFACES, lambda spec: Mesh(*surface_mesh(spec)), load, resize,
                   input_name="f", target_name="u")


def structure(config: Config, num_levels: int) -> TaskStructure:
    return mesh_regression.structure(config, num_levels, problem(config))


def prepare(config: Config, num_levels: int) -> PreparedTask:
    return mesh_regression.prepare(config, num_levels, problem(config))
