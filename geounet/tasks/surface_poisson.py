"""Screened Poisson on a hundred random closed surfaces of genus 0, 1 and 2: f ↦ u.

-Δ_S u + u = f on a closed surface S (Δ_S the Laplace–Beltrami operator), f a smooth
random field of the ambient coordinates, P1 finite-element ground truth with the
cotangent Laplacian. The surfaces are
:class:`~geounet.datagen.mesh_families.SurfaceFamily` meshes: random smooth deformations of
spheres, tori and two-holed "pillows", so the genus varies; train and test are split by
geometry (see :mod:`geounet.tasks.mesh_regression`). The model maps f to u (face averages
for the cluster hierarchy, vertex values for the spectral one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from geounet.datagen.mesh_families import SurfaceFamily
from geounet.errors import GeounetError
from geounet.tasks import PreparedTask, TaskStructure, mesh_regression
from geounet.tasks.mesh_regression import MeshRegressionConfig, Problem


@dataclass(frozen=True)
class Config(MeshRegressionConfig):
    name: ClassVar[str] = "surface_poisson"
    num_meshes: int = 100
    length_scale: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not self.length_scale > 0:
            raise GeounetError(f"task.length_scale must be positive, got {self.length_scale}")


def problem(config: Config) -> Problem:
    family = SurfaceFamily(seed=config.seed, num_meshes=config.num_meshes, samples_per_mesh=config.samples_per_mesh,
                           test_fraction=config.test_fraction, length_scale=config.length_scale)
    return Problem(family, "f", "u", input_name="f", target_name="u")


def structure(config: Config, num_levels: int) -> TaskStructure:
    return mesh_regression.structure(config, num_levels, problem(config))


def prepare(config: Config, num_levels: int) -> PreparedTask:
    return mesh_regression.prepare(config, num_levels, problem(config))
