"""Make the small mesh assets in this folder (deterministic; run from the repo root).

    .venv/bin/python meshes/make_meshes.py

Writes, each a few hundred KB at most:

- ``icosphere_{1,2,3}.obj``: unit icospheres (midpoint subdivision + projection);
- ``torus.ply``: a torus (major radius 1, minor 0.3);
- ``capsule.stl``: a capsule (radius 0.5, height 1);
- ``annulus.vtu``: the planar annulus 0.3 <= r <= 1 (a domain with a hole);
- ``plate_with_holes.msh`` (Gmsh 2.2): the unit square minus two square holes;
- ``l_shape.off``: the L-shaped domain [0, 1]^2 minus [1/2, 1]^2;
- ``perturbed_sphere_{0..4}.obj``: spheres with radius ``1 + 0.15 Σ a_lm Y_lm``-like
  random low-frequency bumps (real Fourier terms in the angles), one per seed.

Planar domains are stored with z = 0.
"""

from __future__ import annotations

from pathlib import Path

import meshio
import numpy as np
import trimesh

HERE = Path(__file__).resolve().parent


def grid(n: int, x0=0.0, x1=1.0, y0=0.0, y1=1.0) -> tuple[np.ndarray, np.ndarray]:
    """An ``n x n`` quad grid split into triangles: vertices ``[(n+1)^2, 3]``, faces ``[2n^2, 3]``."""
    x, y = np.meshgrid(np.linspace(x0, x1, n + 1), np.linspace(y0, y1, n + 1), indexing="ij")
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a = (i * (n + 1) + j).ravel()
    b, c, d = a + n + 1, a + n + 2, a + 1
    return vertices, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def keep_faces(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sub-mesh of the kept faces, unused vertices dropped."""
    faces = faces[keep]
    used, inverse = np.unique(faces, return_inverse=True)
    return vertices[used], inverse.reshape(-1, 3)


def annulus(rings: int = 12, sectors: int = 64, inner: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    radius, angle = np.meshgrid(
        np.linspace(inner, 1, rings + 1), np.arange(sectors) * 2 * np.pi / sectors, indexing="ij"
    )
    vertices = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros_like(radius)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(rings), np.arange(sectors), indexing="ij")
    a, b = i * sectors + j, i * sectors + (j + 1) % sectors
    c, d = a + sectors, b + sectors
    faces = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return vertices, faces


def perturbed_sphere(seed: int, subdivisions: int = 3, amplitude: float = 0.15) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    x, y, z = sphere.vertices.T
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    bump = sum(
        rng.normal() * np.cos(degree * theta) * np.cos(m * phi + rng.uniform(0, 2 * np.pi)) / (1 + degree + m)
        for degree in range(1, 4)
        for m in range(0, 4)
    )
    return trimesh.Trimesh(sphere.vertices * (1 + amplitude * bump)[:, None], sphere.faces, process=False)


def main() -> None:
    for subdivisions in (1, 2, 3):
        trimesh.creation.icosphere(subdivisions=subdivisions).export(HERE / f"icosphere_{subdivisions}.obj")
    trimesh.creation.torus(1.0, 0.3, major_sections=48, minor_sections=16).export(HERE / "torus.ply")
    trimesh.creation.capsule(height=1.0, radius=0.5, count=[24, 24]).export(HERE / "capsule.stl")
    vertices, faces = annulus()
    meshio.write(HERE / "annulus.vtu", meshio.Mesh(vertices, [("triangle", faces)]))
    vertices, faces = grid(32)
    centroids = vertices[faces].mean(1)
    hole = lambda c, x, y, h: (np.abs(c[:, 0] - x) < h) & (np.abs(c[:, 1] - y) < h)  # noqa: E731
    keep = ~hole(centroids, 0.3, 0.3, 0.1) & ~hole(centroids, 0.7, 0.6, 0.15)
    vertices, faces = keep_faces(vertices, faces, keep)
    tags = {"gmsh:physical": [np.ones(len(faces), int)], "gmsh:geometrical": [np.ones(len(faces), int)]}
    plate = meshio.Mesh(vertices, [("triangle", faces)], cell_data=tags)
    meshio.write(HERE / "plate_with_holes.msh", plate, file_format="gmsh22", binary=False)
    vertices, faces = grid(16)
    centroids = vertices[faces].mean(1)
    vertices, faces = keep_faces(vertices, faces, ~((centroids[:, 0] > 0.5) & (centroids[:, 1] > 0.5)))
    trimesh.Trimesh(vertices, faces, process=False).export(HERE / "l_shape.off")
    for seed in range(5):
        perturbed_sphere(seed).export(HERE / f"perturbed_sphere_{seed}.obj")


if __name__ == "__main__":
    main()
