"""Laplacians of meshes and point clouds, and their smallest eigenpairs, certified and cached.

**Stiffness matrices** ``L`` (symmetric positive semi-definite, ``L 1 = 0``), used with
the lumped mass ``M`` of :class:`~geounet.geometry.mesh.Mesh` in ``L φ = λ M φ``:

- ``"cotangent"``: the P1 finite-element stiffness of the mesh;
- ``"robust"``: the robust Laplacian of Sharp & Crane (2020): the cotangent Laplacian of
  the intrinsic Delaunay triangulation of the mesh's *tufted cover* (every face doubled,
  so every edge is manifold). It accepts non-manifold meshes and point clouds, has
  non-negative edge weights, and equals ``"cotangent"`` on a Delaunay mesh;
- ``"graph"``: the combinatorial Laplacian D - A of the unit-weight edge graph;
- ``"auto"``: ``"cotangent"`` on edge-manifold meshes, ``"robust"`` on others.

**Eigenpairs** (:func:`laplacian_eigenbasis`) come from
:func:`geounet.geometry.eigensolver.componentwise_eigenpairs`: one certified
shift-invert Lanczos solve per connected component, merged in eigenvalue order.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph
from scipy.sparse.csgraph import connected_components

from geounet.errors import GeounetError, optional_cache_write
from geounet.geometry.cache_files import load_or_build
from geounet.geometry.eigensolver import componentwise_eigenpairs
from geounet.geometry.mesh import Mesh

_CACHE_VERSION = 6  # 6: canonical eigenvectors (eigensolver.canonical_eigenvectors)
BOUNDARIES = ("neumann", "dirichlet")
LAPLACIANS = ("auto", "cotangent", "robust", "graph")


def cache_dir() -> Path:
    """``$GEOUNET_CACHE`` or ``~/.cache/geounet``."""
    return Path(os.environ.get("GEOUNET_CACHE", Path.home() / ".cache" / "geounet"))


def resolve_laplacian(mesh: Mesh, kind: str) -> str:
    """``kind``, with ``"auto"`` replaced by ``"cotangent"`` or (non-manifold) ``"robust"``."""
    if kind not in LAPLACIANS:
        raise GeounetError(f"laplacian must be one of {LAPLACIANS}, got {kind!r}")
    if kind == "auto":
        return "cotangent" if mesh.is_manifold else "robust"
    return kind


def stiffness_matrix(mesh: Mesh, kind: str = "auto") -> sp.csr_matrix:
    """The stiffness matrix ``L [V, V]`` of ``mesh`` (see the module docstring)."""
    kind = resolve_laplacian(mesh, kind)
    if kind == "cotangent":
        return mesh.cotangent_laplacian
    if kind == "robust":
        import robust_laplacian

        vertices = np.zeros((mesh.num_vertices, 3))
        vertices[:, : mesh.dim] = mesh.vertices  # planar meshes lie in z = 0
        laplacian, _ = robust_laplacian.mesh_laplacian(vertices, np.asarray(mesh.faces))
        return sp.csr_matrix(laplacian, dtype=np.float64)
    edges = mesh.edges
    n = mesh.num_vertices
    adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return sp.csr_matrix(csgraph.laplacian((adjacency + adjacency.T).tocsr()), dtype=np.float64)  # D - A


def point_cloud_laplacian(points: np.ndarray, num_neighbors: int = 30) -> tuple[sp.csr_matrix, np.ndarray]:
    """The robust Laplacian of a point cloud ``[N, 3]``: ``(L [N, N], lumped mass [N])``,
    from the tufted cover of each point's local Delaunay triangulation of its neighbours;
    :func:`~geounet.geometry.eigensolver.smallest_eigenpairs` takes them as they are."""
    import robust_laplacian

    points = np.ascontiguousarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise GeounetError(f"points must be finite with shape [N, 3], got {points.shape}")
    laplacian, mass = robust_laplacian.point_cloud_laplacian(points, n_neighbors=num_neighbors)
    return sp.csr_matrix(laplacian, dtype=np.float64), np.asarray(mass.diagonal(), dtype=np.float64)


def laplacian_eigenbasis(
    mesh: Mesh,
    num: int,
    boundary: str = "neumann",
    kind: str = "auto",
    use_cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``num`` smallest eigenpairs ``(λ [num], Ψ [V, num])`` of ``L ψ = λ M ψ``.

    ``Ψ`` is M-orthonormal, with canonical signs and eigenspace bases: the same on every CPU
    (:func:`geounet.geometry.eigensolver.canonical_eigenvectors`). For ``boundary="dirichlet"`` the
    problem is solved on the interior vertices and Ψ is zero on the boundary. With Neumann conditions the first
    vector is the normalised constant ``1 / sqrt(A)`` (rotated within the null space).
    Results are cached on disk in :func:`cache_dir`, keyed by sha256 of the mesh bytes
    and the parameters, written atomically as one ``.npy`` array ``[1 + V, num]`` (row 0
    the eigenvalues), which loads about twice as fast as an ``.npz`` (a zip archive), and
    sealed with a SHA-256 manifest: a damaged file is solved again, with a warning naming it
    (:func:`geounet.geometry.cache_files.load_or_build`).
    """
    if boundary not in BOUNDARIES:
        raise GeounetError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    kind = resolve_laplacian(mesh, kind)
    free = np.ones(mesh.num_vertices, dtype=bool)
    if boundary == "dirichlet":
        if len(mesh.boundary_vertices) == 0:
            raise GeounetError("a Dirichlet eigenbasis needs a mesh with boundary; this mesh is closed")
        free[mesh.boundary_vertices] = False
    if not isinstance(num, int) or not 1 <= num < int(free.sum()):
        raise GeounetError(f"num must be an int in [1, {int(free.sum()) - 1}] for this mesh, got {num!r}")
    params = {"num": num, "boundary": boundary, "kind": kind, "version": _CACHE_VERSION}
    key = hashlib.sha256((mesh.content_hash + json.dumps(params, sort_keys=True)).encode()).hexdigest()
    if not use_cache:
        return _solve(mesh, num, free, kind)

    solved = []  # the solve of a build whose cache file could not be written

    def write(tmp: Path) -> None:
        values, vectors = _solve(mesh, num, free, kind)
        solved.append((values, vectors))
        with open(tmp, "wb") as file:
            np.save(file, np.concatenate([values[None], vectors]))

    path = cache_dir() / f"eigenbasis-{key}.npy"
    with optional_cache_write(path, "the eigenbasis cache"):  # a cache folder that cannot be written
        stored = load_or_build(path, write, np.load, "eigenbasis cache file")  # [1 + V, num]
        return stored[0], stored[1:]
    return solved[0] if solved else _solve(mesh, num, free, kind)


def _solve(mesh: Mesh, num: int, free: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if free.all():  # Neumann: one zero eigenvalue per component
        _check_components(mesh, num)
    stiffness = stiffness_matrix(mesh, kind)[free][:, free]
    values, vectors = componentwise_eigenpairs(stiffness, mesh.lumped_mass[free], num)
    full = np.zeros((mesh.num_vertices, num))
    full[free] = vectors
    if free.all():
        full = _constant_first(full, mesh.lumped_mass, values)
    # Signs and eigenspace bases are canonical (eigensolver.canonical_eigenvectors). A sign taken
    # from each vector's largest entry is not: on a symmetric mesh two entries tie in magnitude,
    # and which one wins depends on the CPU's last bits.
    return values, full


def _check_components(mesh: Mesh, num: int) -> None:
    """Reject ``num`` at most the number of connected components (of the edge graph): every
    eigenvalue of the Neumann problem would be 0."""
    edges, n = mesh.edges, mesh.num_vertices
    graph = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count = connected_components(graph, directed=False)[0]
    if count >= num:
        raise GeounetError(
            f"the mesh has {count} connected components, so its Laplacian has (at least) {count} zero "
            f"eigenvalues and the {num} smallest eigenpairs are just piecewise constants. A triangle soup "
            "(no shared vertices) must be welded first: geounet.geometry.mesh_repair.repair_mesh or "
            "geounet.data.meshes.load_mesh weld vertices closer than weld_tol x the mesh size. Otherwise "
            f"ask for more than {count} eigenpairs (num, or the largest of a MeshSpectralHierarchy's band_limits) "
            "or split the mesh into its components"
        )


def _constant_first(vectors: np.ndarray, mass: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rotate the null-space block so that its first vector is the constant ``1/sqrt(A)``."""
    zero = int(np.sum(values <= 1e-8 * max(values[-1], 1.0)))
    if zero == 0:
        raise GeounetError("the Laplacian has no zero eigenvalue: the mesh or solver is broken")
    block = vectors[:, :zero]
    coefficients = block.T @ mass  # coordinates of the constant 1 in the block
    rotation, _ = np.linalg.qr(np.concatenate([coefficients[:, None], np.eye(zero)], axis=1))
    rotation *= np.sign(rotation[0, 0] * coefficients[0]) if coefficients[0] else 1.0
    vectors = vectors.copy()
    vectors[:, :zero] = block @ rotation[:, :zero]
    return vectors
