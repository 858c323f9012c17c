"""Darcy flow on hundreds of random planar domains with holes: log k ↦ u.

-∇·(k ∇u) = 1 on a planar domain, u = 0 on every boundary (outer and holes), with a
log-normal permeability k = exp(σ g), g a unit-variance Gaussian random field of length
scale ℓ; P1 finite-element ground truth. The domains are
:class:`~geounet.datagen.mesh_families.DarcyFamily` meshes: random polygonal outlines with
0-3 random holes, meshed by Triangle at a resolution drawn per domain (about 300-1500
faces); train and test are split by geometry (see :mod:`geounet.tasks.mesh_regression`).
The model maps log k to u (face averages for the cluster hierarchy, vertex values for
the spectral one). With ``hierarchy = "spectral"`` and ``constrained = true`` the spaces
are Dirichlet eigenbases and the output is projected onto functions vanishing on the
boundary, so the boundary condition holds exactly on every geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from geounet.datagen.mesh_families import DarcyFamily
from geounet.errors import GeounetError
from geounet.tasks import PreparedTask, TaskStructure, mesh_regression
from geounet.tasks.mesh_regression import MeshRegressionConfig, Problem


@dataclass(frozen=True)
class Config(MeshRegressionConfig):
    name: ClassVar[str] = "darcy_mesh"
    num_meshes: int = 300
    length_scale: float = 0.2
    log_std: float = 1.0
    #: spectral hierarchy only: Dirichlet eigenbases + exact zero-boundary projection
    constrained: bool = True

    def validate(self) -> None:
        super().validate()
        if not (self.length_scale > 0 and self.log_std > 0):
            raise GeounetError(f"task.length_scale and task.log_std must be positive, got {self.length_scale}, "
                             f"{self.log_std}")


def problem(config: Config) -> Problem:
    family = DarcyFamily(seed=config.seed, num_meshes=config.num_meshes, samples_per_mesh=config.samples_per_mesh,
                         test_fraction=config.test_fraction, length_scale=config.length_scale, log_std=config.log_std)
    return Problem(family, "k", "u", input_name="log k", target_name="u", input_map=np.log,
                   boundary="dirichlet" if config.constrained else "neumann", constrained=config.constrained)


def structure(config: Config, num_levels: int) -> TaskStructure:
    return mesh_regression.structure(config, num_levels, problem(config))


def prepare(config: Config, num_levels: int) -> PreparedTask:
    return mesh_regression.prepare(config, num_levels, problem(config))
