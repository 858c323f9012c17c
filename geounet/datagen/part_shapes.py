"""Procedural part shapes for mesh segmentation: a body with legs and a head, randomly posed.

Shape ``i`` of a :class:`PartShapeFamily` is built on trimesh's icosphere (``subdivisions``
Loop levels; 20 · 4^s faces) by moving every vertex along its direction d from the centre,
r(d) = ρ(d) + Σ_j L_j s(α_j(d) / θ_j), with

- the **body** ρ(d) = exp(0.15 g(d)) on an ellipsoid of random semi-axes (1, a, b),
  a, b ∈ [0.6, 1], g a smooth random function (a sum of 4 random plane waves
  cos(k e·d + ψ) with k ∈ [1, 3]): a random deformation;
- ``2 .. 4`` **legs**: caps around random axes a_j of angular radius θ ∈ [0.22, 0.3] pushed
  out by L ∈ [0.8, 1.3] (long and thin), and one **head**: a cap of angular radius
  θ ∈ [0.45, 0.6] pushed out by L ∈ [0.3, 0.5] (short and wide); the axes are at least
  θ_j + θ_k + 0.15 apart, so parts never touch;
- the profile s(t) = 1 for t ≤ 0.6, falling as a smoothstep to 0 at t = 1 (a flat-topped
  protrusion with a steep side), α_j(d) = arccos(d · a_j);
- a random rotation (the **pose**) and a random scale in [0.7, 1.4].

Every face is labelled by the part whose cap holds its centroid direction on the sphere
(0 body, 1 leg, 2 head; :data:`PART_CLASSES`). The surface is star-shaped (one radius per
direction), hence a closed embedded genus-0 manifold whatever the draw.

Inputs are face features that do not change under the pose (a rotation and a scale of the
shape): the distance of the face centroid from the shape's area centroid in units of its
RMS distance, and the cosine between the face normal and that radial direction. Legs and
head are told apart by their length and width, i.e. by the shape around a face, not by the
face itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from geounet.datagen.mesh_families import _MeshFamily
from geounet.errors import GeounetError

#: label of each part
PART_CLASSES = ("body", "leg", "head")
#: the inputs' channels (:func:`pose_invariant_features`)
PART_FEATURES = ("radial distance", "normal . radial")


def _smoothstep_profile(t: np.ndarray) -> np.ndarray:
    """1 on [0, 0.6], a smoothstep down to 0 on [0.6, 1], 0 beyond."""
    x = np.clip((1.0 - t) / 0.4, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _random_axes(rng: np.random.Generator, radii: np.ndarray) -> np.ndarray:
    """Unit axes ``[P, 3]``, pairwise at least radius_j + radius_k + 0.15 apart (rejection sampling)."""
    for _ in range(1000):
        axes = rng.normal(size=(len(radii), 3))
        axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        angles = np.arccos(np.clip(axes @ axes.T, -1, 1))
        needed = radii[:, None] + radii[None, :] + 0.15
        np.fill_diagonal(needed, 0.0)
        if (angles >= needed).all():
            return axes
    raise GeounetError("could not place the parts apart; this draw of part sizes leaves no room")


def pose_invariant_features(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``[F, 2]``: distance of each face centroid from the area centroid over its RMS, and the
    cosine between the face normal and the radial direction (module docstring)."""
    corners = vertices[faces]  # [F, 3, 3]
    centroids = corners.mean(axis=1)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    areas = np.linalg.norm(normals, axis=1)
    centre = (areas[:, None] * centroids).sum(0) / areas.sum()
    radial = centroids - centre
    distance = np.linalg.norm(radial, axis=1)
    rms = np.sqrt((areas * distance**2).sum() / areas.sum())
    cosine = (normals * radial).sum(1) / (areas * distance)
    return np.stack([distance / rms, cosine], axis=1)


@dataclass(frozen=True)
class PartShapeFamily(_MeshFamily):
    """Random bodies with legs and a head (module docstring); mesh ``i`` is a pure function of ``(seed, i)``."""

    name: ClassVar[str] = "part_shapes"
    subdivisions: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.subdivisions <= 5:
            raise GeounetError(f"subdivisions must lie in [1, 5], got {self.subdivisions}")

    def sample(self, mesh_id: int, resolution: float = 1.0) -> dict[str, np.ndarray]:
        """``vertices [V, 3]``, ``faces [F, 3]``, ``labels_face [F]`` (int64, :data:`PART_CLASSES`)
        and ``inputs_face [F, 2]`` (:data:`PART_FEATURES`) of shape ``mesh_id``."""
        import trimesh
        from scipy.spatial.transform import Rotation

        if resolution != 1.0:
            raise GeounetError("part shapes come at one resolution (set subdivisions instead)")
        rng = self._rng(mesh_id, 0)
        sphere = trimesh.creation.icosphere(subdivisions=self.subdivisions)
        directions, faces = np.asarray(sphere.vertices, dtype=np.float64), np.asarray(sphere.faces, dtype=np.int64)
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)

        legs = int(rng.integers(2, 5))
        kinds = np.array([1] * legs + [2])
        radii = np.where(kinds == 1, rng.uniform(0.22, 0.3, len(kinds)), rng.uniform(0.45, 0.6, len(kinds)))
        lengths = np.where(kinds == 1, rng.uniform(0.8, 1.3, len(kinds)), rng.uniform(0.3, 0.5, len(kinds)))
        axes = _random_axes(rng, radii)
        semi_axes = np.array([1.0, *rng.uniform(0.6, 1.0, 2)])
        waves = rng.normal(size=(4, 3))
        waves /= np.linalg.norm(waves, axis=1, keepdims=True)
        numbers, phases = rng.uniform(1, 3, 4), rng.uniform(0, 2 * np.pi, 4)

        def part_angles(points: np.ndarray) -> np.ndarray:  # [M, P] angle / cap radius
            return np.arccos(np.clip(points @ axes.T, -1, 1)) / radii

        deformation = np.exp(0.15 * np.cos(numbers * (directions @ waves.T) + phases).sum(1) / 2)  # [V]
        body = deformation / np.linalg.norm(directions / semi_axes, axis=1)  # ellipsoid radius along d
        radius = body + (lengths * _smoothstep_profile(part_angles(directions))).sum(1)  # [V]
        vertices = directions * radius[:, None]
        vertices = Rotation.random(random_state=rng).apply(vertices) * rng.uniform(0.7, 1.4)

        centres = directions[faces].mean(axis=1)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        inside = part_angles(centres) < 1  # [F, P]
        labels = np.where(inside.any(1), kinds[inside.argmax(1)], 0)
        return {"vertices": vertices, "faces": faces, "labels_face": labels.astype(np.int64),
                "inputs_face": pose_invariant_features(vertices, faces), "mesh_id": np.int64(mesh_id)}
