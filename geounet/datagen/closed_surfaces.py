"""Random smooth closed surfaces of genus 0, 1 and g >= 2, as triangle meshes in R^3.

:func:`random_closed_surface` draws one surface of a given genus from a numpy
``Generator`` and meshes it at a chosen resolution. Every construction is an injective
map of a reference surface, so the result is embedded (no self-intersections) by
construction, not by luck:

* genus 0: the unit sphere, radially displaced, x ↦ x (1 + a tanh g(x)) with a < 1;
* genus 1: the torus with core circle c(φ) of radius 1 and tube radius r, displaced
  along the tube normal n: c + r n ↦ c + r (1 + a tanh g) n with a < 1, so the tube
  stays inside the half-planes through the axis (which only meet on the axis);
* genus g >= 2: a "pillow" over a random planar domain D (smooth outline) with g holes
  (:mod:`geounet.datagen.planar_domains`): the two graphs z = w(x) ± h(x) over D joined
  along ∂D by a low vertical wall (one row of quads), with h = h_0 + t sqrt(ρ / max ρ)
  (1 + a tanh g(x)), ρ the torsion function (-Δρ = 1 in D, ρ = 0 on ∂D, so the sheets
  turn vertical towards the rim) and w a smooth bend. Its Euler characteristic is
  2 χ(D) + χ(walls) = 2 (1 - g) + 0.

g is a random Fourier field (:func:`geounet.datagen.fem.random_fourier_field`) of the
reference coordinates, so the same draw gives the same continuous surface at every
resolution; finally each axis is scaled by a random factor (a linear map keeps the
embedding). ``resolution = 4^k`` multiplies the face count by 4^k: k more (fewer)
icosphere subdivisions, 2^k times the torus sections, a 4^k times smaller area bound
for the pillow's planar mesh (whose torsion function is then re-solved on the new mesh:
the pillow converges to, rather than stays exactly on, one continuous surface).
"""

from __future__ import annotations

import numpy as np
import trimesh

from geounet.datagen.fem import random_fourier_field, solve_darcy
from geounet.datagen.planar_domains import MEAN_AREA_FRACTION, random_planar_domain, triangulate_domain
from geounet.errors import GeounetError
from geounet.geometry.mesh import mesh_problems


def _resolution_exponent(resolution: float) -> int:
    """k with resolution = 4^k, or a ValueError."""
    k = int(round(np.log(resolution) / np.log(4))) if resolution > 0 else 0
    if not (resolution > 0 and np.isclose(4.0**k, resolution)):
        raise GeounetError(f"surface resolution must be a power of 4 (1/16, 1/4, 1, 4, ...), got {resolution}")
    return k


def _bump(rng: np.random.Generator, points: np.ndarray, length_scale: float) -> np.ndarray:
    """tanh of one random Fourier field draw at ``points [P, D]``: a smooth field in (-1, 1), ``[P]``."""
    return np.tanh(random_fourier_field(points, 1, length_scale, rng)[0])


def _sphere(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    subdivisions = int(rng.integers(2, 4)) + k  # 320 or 1280 faces at resolution 1
    amplitude, length_scale = rng.uniform(0.1, 0.35), rng.uniform(0.5, 1.0)
    if subdivisions < 0:
        raise GeounetError(f"resolution 4^{k} is coarser than the icosahedron for this sphere")
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    x = np.asarray(sphere.vertices, dtype=np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # [V, 3] on the unit sphere
    return x * (1 + amplitude * _bump(rng, x, length_scale))[:, None], np.asarray(sphere.faces, dtype=np.int64)


def _torus(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    minor = rng.uniform(0.3, 0.45)
    minor_sections = 2 * int(rng.integers(5, 9))  # 10 .. 16 around the tube
    major_sections = 2 * int(round(minor_sections / (2 * minor)))  # near-equilateral cells
    amplitude, length_scale = rng.uniform(0.1, 0.35), rng.uniform(0.5, 1.0)
    scale = 2.0**k
    if minor_sections * scale % 1 or major_sections * scale % 1:
        raise GeounetError(f"resolution 4^{k} does not divide this torus' {major_sections} x {minor_sections} sections")
    torus = trimesh.creation.torus(1.0, minor, major_sections=int(major_sections * scale),
                                   minor_sections=int(minor_sections * scale))
    x = np.asarray(torus.vertices, dtype=np.float64)  # [V, 3]
    core = x * np.array([1.0, 1.0, 0.0])
    core /= np.linalg.norm(core, axis=1, keepdims=True)  # c(φ), [V, 3]
    normal = (x - core) / minor  # unit tube normal n, [V, 3]
    displaced = core + minor * (1 + amplitude * _bump(rng, x, length_scale))[:, None] * normal
    return displaced, np.asarray(torus.faces, dtype=np.int64)


def _boundary_half_edges(faces: np.ndarray) -> np.ndarray:
    """Half-edges ``[B, 2]`` (in face orientation) whose edge belongs to one face only."""
    half = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)  # [3F, 2]
    _, inverse, counts = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True, return_counts=True)
    return half[counts[inverse.ravel()] == 1]


def _pillow(rng: np.random.Generator, genus: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    while (domain := random_planar_domain(rng, holes=(genus, genus), margin=0.06, outline="smooth")).num_holes != genus:
        pass  # a hole found no place: draw another domain (same rng stream, so still deterministic)
    target_faces = rng.uniform(150, 700) * 4.0**k  # per sheet
    thickness, amplitude, bend = rng.uniform(0.1, 0.2), rng.uniform(0.1, 0.4), rng.uniform(0.0, 0.2)
    length_scale = rng.uniform(0.3, 0.6)
    xy, faces = triangulate_domain(domain, domain.area / (MEAN_AREA_FRACTION * target_faces))
    torsion = solve_darcy(xy, faces, np.ones((1, len(faces))))[0]  # ρ >= 0, zero on ∂D
    rim = _boundary_half_edges(faces)  # [B, 2]
    half_wall = 0.25 * np.linalg.norm(xy[rim[:, 0]] - xy[rim[:, 1]], axis=1).mean()
    height = half_wall + thickness * np.sqrt(np.clip(torsion, 0, None) / torsion.max()) * (
        1 + amplitude * _bump(rng, xy, length_scale))  # [V]
    shift = bend * _bump(rng, xy, length_scale)  # [V]
    n = len(xy)
    vertices = np.concatenate([np.column_stack([xy, shift + height]), np.column_stack([xy, shift - height])])
    a, b = rim.T  # top sheet half-edge a -> b; the wall runs it backwards, the bottom sheet forwards
    wall = np.concatenate([np.stack([b, a, a + n], 1), np.stack([b, a + n, b + n], 1)])
    return vertices, np.concatenate([faces, n + faces[:, ::-1], wall])


def random_closed_surface(rng: np.random.Generator, genus: int, resolution: float = 1.0) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """A random smooth closed surface of ``genus`` (see the module docstring).

    Returns ``vertices [V, 3]`` float64 and ``faces [F, 3]`` int64, oriented with outward
    normals; about 300-1800 faces at ``resolution = 1`` and ``resolution`` times as many
    otherwise (a power of 4). The same ``rng`` state gives the same surface at every
    resolution.

    Raises:
        ValueError: ``genus`` is negative or ``resolution`` is not a power of 4.
    """
    if not (isinstance(genus, int | np.integer) and genus >= 0):
        raise GeounetError(f"genus must be a non-negative integer, got {genus!r}")
    k = _resolution_exponent(resolution)
    if genus == 0:
        vertices, faces = _sphere(rng, k)
    elif genus == 1:
        vertices, faces = _torus(rng, k)
    else:
        vertices, faces = _pillow(rng, int(genus), k)
    vertices = vertices * np.exp(rng.uniform(-0.25, 0.25, 3))  # random axis scales
    problems = mesh_problems(vertices, faces)
    if problems:  # cannot happen for the injective maps above; guard the invariant anyway
        raise RuntimeError(f"generated genus-{genus} surface is invalid: {'; '.join(problems)}")
    return vertices, faces
