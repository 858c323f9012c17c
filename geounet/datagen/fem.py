"""P1 finite-element ground truth on triangle meshes: Darcy flow, surface Poisson, triangle Poisson.

Assembly (:func:`p1_matrices`) works for planar meshes (vertices ``[V, 2]``) and surface
meshes in R^3 (``[V, 3]``) alike. On a triangle T with area A and edge vectors
e_i = x_{i+2} - x_{i+1} opposite vertex i, the P1 hat gradients satisfy
∇φ_i · ∇φ_j = (e_i · e_j) / (4 A²), so

    K^T_ij = c_T (e_i · e_j) / (4 A)      (the cotangent Laplacian: -½(cot α + cot β) off the diagonal)
    M^T_ij = A (1 + δ_ij) / 12            (consistent mass)

with an optional per-face coefficient c_T (Darcy permeability, constant per face). Tested
against scikit-fem's assembly on planar meshes and against manufactured solutions.

Problems (all with P1 vertex values as ground truth; face values are exact face averages
of the P1 solution, the mean of its three vertex values):

* Darcy: -∇·(k ∇u) = 1 on a planar domain, u = 0 on every boundary (outer and holes),
  k = exp(σ g) with g a unit-variance Gaussian random field (random Fourier features of a
  squared-exponential kernel with length scale ℓ), taken at face centroids for assembly.
* Surface Poisson: -Δ_S u + u = f on a closed surface, f a smooth random field of the
  ambient coordinates restricted to the surface (the same continuous f on every mesh of
  the same surface, so resolutions can be compared).
* Triangle Poisson: -Δu = f on {x, y ≥ 0, x + y ≤ 1}, u = 0 on the boundary, solved on the
  uniform level-L 4-way subdivision; :func:`triangle_face_averages` integrates the P1
  solution over any caller-given triangles (e.g. a hierarchy's level-J cells).

Dataset generators are cached through :mod:`geounet.data.cache` as ``.npz`` files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from geounet.data.cache import cached
from geounet.errors import GeounetError

GENERATOR_VERSION = 1


# ----------------------------------------------------------------------------- meshes


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] not in (2, 3):
        raise GeounetError(f"vertices must be [V, 2] or [V, 3], got shape {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise GeounetError(f"faces must be an integer array [F, 3], got {faces.dtype} {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise GeounetError(f"faces index vertices outside [0, {len(vertices)})")
    return vertices, faces.astype(np.int64)


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Triangle areas ``[F]`` (planar or in R^3)."""
    vertices, faces = _check_mesh(vertices, faces)
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    if vertices.shape[1] == 2:
        cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
        return 0.5 * np.abs(cross)
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def boundary_vertices(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Boolean mask ``[V]`` of vertices on an edge that belongs to exactly one face."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    mask = np.zeros(num_vertices, dtype=bool)
    mask[unique[counts == 1].ravel()] = True
    return mask


def refine(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4-way midpoint subdivision; child faces of face t are rows 4t .. 4t+3.

    Children of (a, b, c) with midpoints ab, bc, ca: (a, ab, ca), (ab, b, bc), (ca, bc, c),
    (bc, ca, ab). New vertices (one per edge) follow the old ones.
    """
    vertices, faces = _check_mesh(vertices, faces)
    edges = np.sort(np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=1), axis=2)
    unique, inverse = np.unique(edges.reshape(-1, 2), axis=0, return_inverse=True)
    mid = len(vertices) + inverse.reshape(-1, 3)  # [F, 3]: ab, bc, ca
    new_vertices = np.concatenate([vertices, 0.5 * (vertices[unique[:, 0]] + vertices[unique[:, 1]])])
    a, b, c = faces.T
    ab, bc, ca = mid.T
    children = np.stack(
        [np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1), np.stack([ca, bc, c], 1), np.stack([bc, ca, ab], 1)],
        axis=1,
    )  # [F, 4, 3]
    return new_vertices, children.reshape(-1, 3)


def structured_square(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit square split into n x n cells, each cut into two triangles along its diagonal."""
    if n < 1:
        raise GeounetError(f"n must be >= 1, got {n}")
    x, y = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1), indexing="ij")
    vertices = np.stack([x.ravel(), y.ravel()], axis=1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    v00, v10, v01, v11 = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    return vertices, faces


def _drop_unused_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


def make_planar_domain(spec: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Planar mesh from a JSON-able spec (the form stored in dataset cache keys).

    * ``{"kind": "square_holes", "n": 32, "holes": [[cx, cy, r], ...]}``: the unit square on
      an n x n grid with the triangles whose centroid lies in a hole removed (a conforming
      sub-mesh; hole boundaries are grid-aligned staircases).
    * ``{"kind": "l_shape", "n": 32}``: the unit square minus [0.5, 1]^2.
    * ``{"kind": "annulus", "n_radial": 8, "n_angular": 48, "inner_radius": 0.4}``: the
      ring inner_radius <= |x - (0.5, 0.5)| <= 0.5 (polygonal boundaries).
    * Any spec may add ``"refine": k`` for k 4-way subdivisions (same domain, finer mesh).
    """
    kind = spec.get("kind")
    if kind in ("square_holes", "l_shape"):
        vertices, faces = structured_square(int(spec["n"]))
        centroid = vertices[faces].mean(axis=1)  # [F, 2]
        if kind == "l_shape":
            keep = ~((centroid[:, 0] > 0.5) & (centroid[:, 1] > 0.5))
        else:
            keep = np.ones(len(faces), dtype=bool)
            for cx, cy, r in spec.get("holes", []):
                keep &= np.hypot(centroid[:, 0] - cx, centroid[:, 1] - cy) > r
        vertices, faces = _drop_unused_vertices(vertices, faces[keep])
    elif kind == "annulus":
        n_r, n_t, r0 = int(spec["n_radial"]), int(spec["n_angular"]), float(spec["inner_radius"])
        if not (0 < r0 < 0.5 and n_r >= 1 and n_t >= 3):
            raise GeounetError(f"annulus needs 0 < inner_radius < 0.5, n_radial >= 1, n_angular >= 3; got {spec}")
        radius, theta = np.meshgrid(np.linspace(r0, 0.5, n_r + 1), np.arange(n_t) * 2 * np.pi / n_t, indexing="ij")
        vertices = 0.5 + np.stack([radius * np.cos(theta), radius * np.sin(theta)], -1).reshape(-1, 2)
        idx = np.arange((n_r + 1) * n_t).reshape(n_r + 1, n_t)
        nxt = np.roll(idx, -1, axis=1)
        v00, v10, v01, v11 = idx[:-1].ravel(), idx[1:].ravel(), nxt[:-1].ravel(), nxt[1:].ravel()
        faces = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    else:
        raise GeounetError(f"domain kind must be 'square_holes', 'l_shape' or 'annulus', got {kind!r}")
    for _ in range(int(spec.get("refine", 0))):
        vertices, faces = refine(vertices, faces)
    return vertices, faces


# -------------------------------------------------------------------------- assembly


def p1_matrices(
    vertices: np.ndarray, faces: np.ndarray, coefficient: np.ndarray | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """P1 stiffness K (cotangent Laplacian, optionally weighted by a per-face coefficient) and mass M.

    Returns sparse ``[V, V]`` float64 matrices: u^T K u = ∫ c |∇u|², u^T M u = ∫ u².
    """
    vertices, faces = _check_mesh(vertices, faces)
    area = face_areas(vertices, faces)  # [F]
    if (area <= 0).any():
        raise GeounetError(f"{int((area <= 0).sum())} faces have zero area; the mesh is degenerate")
    coefficient = np.ones(len(faces)) if coefficient is None else np.asarray(coefficient, dtype=np.float64)
    if coefficient.shape != (len(faces),):
        raise GeounetError(f"coefficient must be per face [F={len(faces)}], got {coefficient.shape}")
    x = vertices[faces]  # [F, 3, D]
    edges = np.roll(x, -2, axis=1) - np.roll(x, -1, axis=1)  # e_i = x_{i+2} - x_{i+1}, [F, 3, D]
    local_k = np.einsum("fid,fjd->fij", edges, edges) * (coefficient / (4 * area))[:, None, None]
    local_m = (np.ones((3, 3)) + np.eye(3))[None] * (area / 12)[:, None, None]
    rows = np.repeat(faces, 3, axis=1).ravel()
    cols = np.tile(faces, (1, 3)).ravel()
    n = len(vertices)
    stiffness = sp.coo_matrix((local_k.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    mass = sp.coo_matrix((local_m.ravel(), (rows, cols)), shape=(n, n)).tocsr()
    return stiffness, mass


def solve_dirichlet(matrix: sp.spmatrix, rhs: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Solve ``matrix u = rhs`` on the free vertices with u = 0 on ``fixed`` (mask ``[V]``).

    ``rhs`` may be ``[V]`` or ``[V, S]`` (S right-hand sides, one factorisation).
    """
    free = ~fixed
    if not free.any():
        raise GeounetError("every vertex is fixed by the boundary condition; refine the mesh")
    u = np.zeros(rhs.shape)
    u[free] = spla.splu(matrix[free][:, free].tocsc()).solve(np.ascontiguousarray(rhs[free]))
    return u


def face_average(values: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Exact face averages ``[..., F]`` of a P1 field with vertex values ``[..., V]``."""
    return values[..., faces].mean(axis=-1)


def face_gradients(vertices: np.ndarray, faces: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The surface gradient ``[..., F, 3]`` of a P1 field with vertex values ``[..., V]``, constant
    on each face and in its plane, in world coordinates (it rotates with the mesh).

    On face (a, b, c) with unit normal n = (b - a) × (c - a) / 2A, the hat function of a has
    gradient ∇φ_a = n × (c - b) / 2A (pointing from the opposite edge to a, length 1 / height),
    and cyclically; ∇u = Σ_i u_i ∇φ_i.
    """
    corners = vertices[faces]  # [F, 3 corners, 3]
    doubled_normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # [F, 3] = 2A n
    opposite = np.roll(corners, -2, axis=1) - np.roll(corners, -1, axis=1)  # [F, 3, 3]: c - b, a - c, b - a
    hat_gradients = np.cross(doubled_normal[:, None, :], opposite) / np.square(doubled_normal).sum(-1)[:, None, None]
    return np.einsum("...fk,fkd->...fd", values[..., faces], hat_gradients)


# ----------------------------------------------------------------------- random fields


def random_fourier_field(
    points: np.ndarray, num: int, length_scale: float, rng: np.random.Generator, num_features: int = 256
) -> np.ndarray:
    """``num`` samples ``[num, P]`` of a unit-variance Gaussian-like random field at ``points [P, D]``.

    g(x) = sqrt(2 / N) Σ_j cos(ω_j · x + b_j) with ω_j ~ N(0, I / ℓ²), b_j ~ U[0, 2π):
    its covariance tends to the squared-exponential kernel exp(-|x - y|² / (2 ℓ²)) as N grows.
    The field is a function of the ambient coordinates, so the same draw can be evaluated
    on any mesh of the same domain (resolution transfer).
    """
    if not length_scale > 0:
        raise GeounetError(f"length_scale must be positive, got {length_scale}")
    dim = points.shape[1]
    omega = rng.standard_normal((num, num_features, dim)) / length_scale  # [S, N, D]
    phase = rng.uniform(0, 2 * np.pi, (num, num_features, 1))  # [S, N, 1]
    # One sample at a time: the features [N, P] of all samples at once can be gigabytes.
    fields = [np.cos(omega[s] @ points.T + phase[s]).sum(axis=0) for s in range(num)]  # each [P]
    return np.sqrt(2.0 / num_features) * np.stack(fields)


# --------------------------------------------------------------------------- problems


def solve_darcy(vertices: np.ndarray, faces: np.ndarray, permeability_face: np.ndarray) -> np.ndarray:
    """P1 solution ``[S, V]`` of -∇·(k ∇u) = 1, u = 0 on the boundary, for k ``[S, F]``."""
    boundary = boundary_vertices(faces, len(vertices))
    u = []
    for k in np.atleast_2d(permeability_face):
        stiffness, mass = p1_matrices(vertices, faces, k)
        u.append(solve_dirichlet(stiffness, mass @ np.ones(len(vertices)), boundary))
    return np.stack(u)


def solve_surface_poisson(vertices: np.ndarray, faces: np.ndarray, forcing: np.ndarray) -> np.ndarray:
    """P1 solution ``[..., V]`` of -Δ_S u + u = f on a closed surface, f at vertices ``[..., V]``.

    Galerkin system (K + M) u = M f (f interpolated in P1, consistent mass).
    """
    stiffness, mass = p1_matrices(vertices, faces)
    forcing = np.asarray(forcing, dtype=np.float64)
    rhs = mass @ np.atleast_2d(forcing).T  # [V, S]
    return spla.splu((stiffness + mass).tocsc()).solve(rhs).T.reshape(forcing.shape)


def reference_triangle_mesh(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform level-``level`` 4-way subdivision of {x, y ≥ 0, x + y ≤ 1} as a structured mesh.

    Vertices (i h, j h), i + j ≤ n = 2^level, numbered row by row in i; faces are the
    'lower' cells (i,j),(i+1,j),(i,j+1) then the 'upper' cells (i+1,j),(i+1,j+1),(i,j+1).
    As a set of triangles this equals ``level`` midpoint subdivisions of the triangle.
    """
    if level < 0:
        raise GeounetError(f"level must be >= 0, got {level}")
    n = 2**level
    i, j = (a.ravel() for a in np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij"))
    inside = i + j <= n
    index = np.full((n + 2, n + 2), -1, dtype=np.int64)
    index[i[inside], j[inside]] = np.arange(inside.sum())
    vertices = np.stack([i[inside], j[inside]], axis=1) / n
    lower = (i + j <= n - 1)
    upper = (i + j <= n - 2)
    li, lj, ui, uj = i[lower], j[lower], i[upper], j[upper]
    faces = np.concatenate([
        np.stack([index[li, lj], index[li + 1, lj], index[li, lj + 1]], 1),
        np.stack([index[ui + 1, uj], index[ui + 1, uj + 1], index[ui, uj + 1]], 1),
    ])
    return vertices, faces


def evaluate_on_reference_triangle(values: np.ndarray, level: int, points: np.ndarray) -> np.ndarray:
    """P1 interpolant ``[..., P]`` at ``points [P, 2]`` of vertex values ``[..., V]`` on the level mesh."""
    n = 2**level
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise GeounetError(f"points must be [P, 2], got {points.shape}")
    tol = 1e-12
    if (points < -tol).any() or (points.sum(axis=1) > 1 + tol).any():
        raise GeounetError("points must lie in the reference triangle x, y >= 0, x + y <= 1")
    vertices, _ = reference_triangle_mesh(level)
    grid = np.full((n + 2, n + 2), -1, dtype=np.int64)
    ij = np.rint(vertices * n).astype(np.int64)
    grid[ij[:, 0], ij[:, 1]] = np.arange(len(vertices))
    scaled = np.clip(points, 0.0, 1.0) * n
    cell = np.minimum(np.floor(scaled).astype(np.int64), n - 1)
    # Keep the cell inside the triangle: i + j <= n - 1.
    over = cell.sum(axis=1) - (n - 1)
    cell[:, 0] -= np.clip(over, 0, None)
    s, t = (scaled - cell).T
    i, j = cell.T
    upper = (s + t > 1) & (i + j <= n - 2)
    v00, v10, v01 = grid[i, j], grid[i + 1, j], grid[i, j + 1]
    v11 = grid[i + 1, np.minimum(j + 1, n)]
    lower_val = values[..., v00] + s * (values[..., v10] - values[..., v00]) + t * (values[..., v01] - values[..., v00])
    v11 = np.where(upper, v11, v00)
    upper_val = (values[..., v11] + (1 - s) * (values[..., v01] - values[..., v11])
                 + (1 - t) * (values[..., v10] - values[..., v11]))
    return np.where(upper, upper_val, lower_val)


def subdivide_triangles(triangles: np.ndarray, times: int) -> np.ndarray:
    """``[F, 3, D]`` -> ``[F, 4**times, 3, D]``: midpoint subdivision of each triangle."""
    tri = np.asarray(triangles, dtype=np.float64)[:, None]  # [F, 1, 3, D]
    for _ in range(times):
        a, b, c = tri[:, :, 0], tri[:, :, 1], tri[:, :, 2]
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        tri = np.stack(
            [np.stack(t, axis=2) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (bc, ca, ab))], axis=2
        ).reshape(tri.shape[0], -1, 3, tri.shape[-1])
    return tri


def triangle_face_averages(values: np.ndarray, level: int, triangles: np.ndarray) -> np.ndarray:
    """Averages ``[..., F]`` over ``triangles [F, 3, 2]`` of a P1 field on the level mesh.

    Each query triangle is midpoint-subdivided until its pieces are no larger than the mesh
    cells, and the P1 field is averaged at the pieces' centroids (equal areas). When the
    query triangles are cells of a coarser uniform subdivision of the reference triangle,
    in any child ordering, the pieces are exactly mesh cells and the result is exact.
    """
    triangles = np.asarray(triangles, dtype=np.float64)
    if triangles.ndim != 3 or triangles.shape[1:] != (3, 2):
        raise GeounetError(f"triangles must be [F, 3, 2], got {triangles.shape}")
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])  # [F]
    cell_area = 0.5 / 4**level
    times = int(np.ceil(np.log(max(area.max() / cell_area, 1.0)) / np.log(4) - 1e-9))
    pieces = subdivide_triangles(triangles, times)  # [F, P, 3, 2]
    centroids = pieces.mean(axis=2).reshape(-1, 2)  # [F * P, 2]
    at = evaluate_on_reference_triangle(values, level, centroids)  # [..., F * P]
    return at.reshape(*at.shape[:-1], len(triangles), -1).mean(axis=-1)


# --------------------------------------------------------------------------- datasets


def _params(problem: str, **kwargs) -> dict:
    return {"generator": f"fem_{problem}", "version": GENERATOR_VERSION, **kwargs}


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise GeounetError(f"{name} must be a positive integer, got {value!r}")


def generate_darcy_dataset(
    num_samples: int, domain: Mapping, seed: int, length_scale: float = 0.2, log_std: float = 1.0
) -> dict[str, np.ndarray]:
    """Darcy samples on one planar domain (see :func:`make_planar_domain` for ``domain``);
    :func:`darcy_samples` on its mesh."""
    return darcy_samples(*make_planar_domain(domain), num_samples, seed, length_scale, log_std)


def darcy_samples(vertices: np.ndarray, faces: np.ndarray, num_samples: int, seed: int, length_scale: float = 0.2,
                  log_std: float = 1.0) -> dict[str, np.ndarray]:
    """Darcy samples on a planar mesh (``vertices [V, 2]``, ``faces [F, 3]``).

    Returns arrays: ``vertices [V, 2]``, ``faces [F, 3]``, ``boundary [V]`` (bool),
    ``k_vertex [S, V]`` and ``k_face [S, F]`` (permeability at vertices / face centroids;
    assembly uses ``k_face``), ``u_vertex [S, V]`` (P1 solution) and ``u_face [S, F]``
    (its exact face averages). k = exp(log_std * g), g a unit-variance random field with
    ``length_scale``, seeded by ``seed`` (independent of the mesh: the same k on a refined
    domain).
    """
    _check_count("num_samples", num_samples)
    vertices, faces = _check_mesh(vertices, faces)
    if vertices.shape[1] != 2:
        raise GeounetError(f"Darcy meshes are planar: vertices must be [V, 2], got {vertices.shape}")
    rng = np.random.default_rng(seed)
    points = np.concatenate([vertices, vertices[faces].mean(axis=1)])  # vertices then centroids
    log_k = log_std * random_fourier_field(points, num_samples, length_scale, rng)  # [S, V + F]
    k_vertex, k_face = np.exp(log_k[:, : len(vertices)]), np.exp(log_k[:, len(vertices) :])
    u_vertex = solve_darcy(vertices, faces, k_face)
    return {
        "vertices": vertices,
        "faces": faces,
        "boundary": boundary_vertices(faces, len(vertices)),
        "k_vertex": k_vertex,
        "k_face": k_face,
        "u_vertex": u_vertex,
        "u_face": face_average(u_vertex, faces),
    }


def generate_surface_poisson_dataset(
    num_samples: int, vertices: np.ndarray, faces: np.ndarray, seed: int, length_scale: float = 0.5
) -> dict[str, np.ndarray]:
    """-Δ_S u + u = f samples on a closed surface mesh (any ``vertices [V, 3]``, ``faces [F, 3]``).

    Returns ``vertices``, ``faces``, ``f_vertex [S, V]``, ``u_vertex [S, V]``, ``f_face``
    and ``u_face [S, F]`` (exact face averages of the P1 fields).
    """
    _check_count("num_samples", num_samples)
    vertices, faces = _check_mesh(vertices, faces)
    if vertices.shape[1] != 3:
        raise GeounetError(f"surface vertices must be [V, 3], got {vertices.shape}")
    if boundary_vertices(faces, len(vertices)).any():
        raise GeounetError("the surface mesh has boundary edges; -Δu + u = f here needs a closed surface")
    forcing = random_fourier_field(vertices, num_samples, length_scale, np.random.default_rng(seed))
    u_vertex = solve_surface_poisson(vertices, faces, forcing)
    return {
        "vertices": vertices,
        "faces": faces,
        "f_vertex": forcing,
        "u_vertex": u_vertex,
        "f_face": face_average(forcing, faces),
        "u_face": face_average(u_vertex, faces),
    }


def generate_triangle_poisson_dataset(
    num_samples: int, seed: int, level: int = 6, length_scale: float = 0.25
) -> dict[str, np.ndarray]:
    """-Δu = f, u = 0 on the boundary of the reference triangle, on the level-``level`` mesh.

    Returns ``vertices``, ``faces`` of :func:`reference_triangle_mesh`, ``f_vertex`` and
    ``u_vertex [S, V]``. Use :func:`triangle_face_averages` with a hierarchy's triangles to
    get cell averages at any coarser level.
    """
    _check_count("num_samples", num_samples)
    vertices, faces = reference_triangle_mesh(level)
    forcing = random_fourier_field(vertices, num_samples, length_scale, np.random.default_rng(seed))
    stiffness, mass = p1_matrices(vertices, faces)
    u_vertex = solve_dirichlet(stiffness, mass @ forcing.T, boundary_vertices(faces, len(vertices))).T
    return {"vertices": vertices, "faces": faces, "f_vertex": forcing, "u_vertex": u_vertex}


def load_or_generate_darcy(cache_dir: str | os.PathLike, num_samples: int, domain: Mapping, seed: int,
                           **kwargs) -> dict[str, np.ndarray]:
    """:func:`generate_darcy_dataset` through the npz cache (``darcy-<hash>.npz``)."""
    params = _params("darcy", num_samples=num_samples, domain=dict(domain), seed=seed, **kwargs)
    return cached(cache_dir, "darcy", params, lambda: generate_darcy_dataset(num_samples, domain, seed, **kwargs),
                  fmt="npz")


def surface_mesh(spec: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface mesh from a JSON-able spec (for cache keys).

    * ``{"kind": "icosphere", "subdivisions": 3}``: unit icosphere (trimesh).
    * ``{"kind": "bumpy_sphere", "subdivisions": 3, "amplitude": 0.15, "seed": 0}``: radius
      1 + amplitude * g(x / |x|) with g a random field of length scale 0.6.
    * ``{"kind": "torus", "major_radius": 1.0, "minor_radius": 0.4, "major_sections": 48,
      "minor_sections": 24}`` (trimesh).
    """
    import trimesh

    kind = spec.get("kind")
    if kind in ("icosphere", "bumpy_sphere"):
        sphere = trimesh.creation.icosphere(subdivisions=int(spec["subdivisions"]))
        vertices = np.asarray(sphere.vertices, dtype=np.float64)
        vertices /= np.linalg.norm(vertices, axis=1, keepdims=True)
        if kind == "bumpy_sphere":
            rng = np.random.default_rng(int(spec.get("seed", 0)))
            bump = random_fourier_field(vertices, 1, 0.6, rng)[0]
            vertices = vertices * (1 + float(spec.get("amplitude", 0.15)) * bump)[:, None]
        return vertices, np.asarray(sphere.faces, dtype=np.int64)
    if kind == "torus":
        torus = trimesh.creation.torus(
            float(spec.get("major_radius", 1.0)), float(spec.get("minor_radius", 0.4)),
            major_sections=int(spec.get("major_sections", 48)), minor_sections=int(spec.get("minor_sections", 24)),
        )
        return np.asarray(torus.vertices, dtype=np.float64), np.asarray(torus.faces, dtype=np.int64)
    raise GeounetError(f"surface kind must be 'icosphere', 'bumpy_sphere' or 'torus', got {kind!r}")


def load_or_generate_surface_poisson(cache_dir: str | os.PathLike, num_samples: int, surface: Mapping, seed: int,
                                     **kwargs) -> dict[str, np.ndarray]:
    """:func:`generate_surface_poisson_dataset` on :func:`surface_mesh` ``(surface)``, cached."""
    params = _params("surface_poisson", num_samples=num_samples, surface=dict(surface), seed=seed, **kwargs)
    return cached(cache_dir, "surface_poisson", params,
                  lambda: generate_surface_poisson_dataset(num_samples, *surface_mesh(surface), seed, **kwargs),
                  fmt="npz")


def load_or_generate_triangle_poisson(cache_dir: str | os.PathLike, num_samples: int, seed: int,
                                      **kwargs) -> dict[str, np.ndarray]:
    """:func:`generate_triangle_poisson_dataset`, cached (``triangle_poisson-<hash>.npz``)."""
    params = _params("triangle_poisson", num_samples=num_samples, seed=seed, **kwargs)
    return cached(cache_dir, "triangle_poisson", params,
                  lambda: generate_triangle_poisson_dataset(num_samples, seed, **kwargs), fmt="npz")


DARCY_TRAIN_DOMAINS: Sequence[dict] = (
    {"kind": "square_holes", "n": 32, "holes": [[0.5, 0.5, 0.2]]},
    {"kind": "square_holes", "n": 32, "holes": [[0.3, 0.3, 0.12], [0.7, 0.65, 0.15]]},
    {"kind": "square_holes", "n": 32, "holes": [[0.3, 0.7, 0.15], [0.7, 0.3, 0.12]]},
)
DARCY_TEST_DOMAINS: Sequence[dict] = (
    {"kind": "square_holes", "n": 32, "holes": [[0.25, 0.25, 0.1], [0.75, 0.3, 0.1], [0.5, 0.75, 0.12]]},
    {"kind": "l_shape", "n": 32},
    {"kind": "annulus", "n_radial": 10, "n_angular": 96, "inner_radius": 0.2},
)
SURFACE_TRAIN: Sequence[dict] = (
    {"kind": "icosphere", "subdivisions": 3},
    {"kind": "bumpy_sphere", "subdivisions": 3, "amplitude": 0.15, "seed": 0},
)
SURFACE_TEST: Sequence[dict] = (
    {"kind": "bumpy_sphere", "subdivisions": 3, "amplitude": 0.15, "seed": 1},
    {"kind": "torus", "major_radius": 1.0, "minor_radius": 0.4, "major_sections": 48, "minor_sections": 24},
)
