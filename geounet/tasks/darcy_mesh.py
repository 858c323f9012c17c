"""Darcy flow on planar domains with holes: k ↦ u, trained on some domains, tested on others.

-∇·(k ∇u) = 1 on a planar domain, u = 0 on every boundary (outer and holes), with a
log-normal permeability k = exp(σ g), g a unit-variance Gaussian random field of length
scale ℓ; P1 finite-element ground truth (:mod:`geounet.data.fem`). The model maps log k
to u on the mesh (face averages for the cluster hierarchy, vertex values for the
spectral one; see :mod:`geounet.tasks.mesh_regression`).

Training domains: the unit square with one hole and two different pairs of holes; held
out: three holes, an L-shape and an annulus (a curved, non-simply-connected boundary).
With ``hierarchy = "spectral"`` and ``constrained = true`` the spaces are Dirichlet
eigenbases and the output is projected onto functions vanishing on the boundary, so
the boundary condition holds exactly on every geometry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from geounet.data.fem import DARCY_TEST_DOMAINS, DARCY_TRAIN_DOMAINS, load_or_generate_darcy, make_planar_domain
from geounet.geometry.mesh import Mesh
from geounet.tasks import PreparedTask, TaskStructure, mesh_regression
from geounet.tasks.mesh_regression import MeshRegressionConfig, Problem

TRAIN_DOMAINS = dict(zip(("one_hole", "two_holes_a", "two_holes_b"), DARCY_TRAIN_DOMAINS, strict=True))
HELDOUT_DOMAINS = dict(zip(("three_holes", "l_shape", "annulus"), DARCY_TEST_DOMAINS, strict=True))


@dataclass(frozen=True)
class Config(MeshRegressionConfig):
    name: ClassVar[str] = "darcy_mesh"
    length_scale: float = 0.2
    log_std: float = 1.0
    #: spectral hierarchy only: Dirichlet eigenbases + exact zero-boundary projection
    constrained: bool = True

    def validate(self) -> None:
        super().validate()
        if not (self.length_scale > 0 and self.log_std > 0):
            raise ValueError(f"task.length_scale and task.log_std must be positive, got {self.length_scale}, "
                             f"{self.log_std}")


def resize(spec: Mapping, factor: float) -> dict:
    """The same domain with ``factor`` (4 or 1/4) times as many faces: one more 4-way
    subdivision, or half the grid resolution."""
    spec = dict(spec)
    if factor == 4:
        spec["refine"] = int(spec.get("refine", 0)) + 1
        return spec
    if factor != 1 / 4:
        raise ValueError(f"resize factor must be 4 or 1/4, got {factor}")
    if spec.get("refine", 0):
        spec["refine"] -= 1
    elif spec["kind"] == "annulus":
        spec.update(n_radial=max(1, spec["n_radial"] // 2), n_angular=max(3, spec["n_angular"] // 2))
    else:
        spec["n"] = max(2, int(spec["n"]) // 2)
    return spec


def problem(config: Config) -> Problem:
    def load(spec: Mapping, count: int, seed: int) -> dict[str, np.ndarray]:
        data = load_or_generate_darcy(config.cache_dir, count, spec, seed, length_scale=config.length_scale,
                                      log_std=config.log_std)
        return {"vertices": data["vertices"], "faces": data["faces"],
                "input_face": np.log(data["k_face"]), "input_vertex": np.log(data["k_vertex"]),
                "target_face": data["u_face"], "target_vertex": data["u_vertex"]}

    return Problem(TRAIN_DOMAINS, HELDOUT_DOMAINS, lambda spec: Mesh(*make_planar_domain(spec)), load, resize,
                   input_name="log k", target_name="u", boundary="dirichlet" if config.constrained else "neumann",
                   constrained=config.constrained)


def structure(config: Config, num_levels: int) -> TaskStructure:
    return mesh_regression.structure(config, num_levels, problem(config))


def prepare(config: Config, num_levels: int) -> PreparedTask:
    return mesh_regression.prepare(config, num_levels, problem(config))
