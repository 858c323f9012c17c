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

**Eigenpairs.** :func:`smallest_eigenpairs` runs ARPACK's Lanczos (scipy ``eigsh``) on
the shift-inverted pencil ``(L - σ M)^{-1} M`` with σ slightly below 0, so the smallest
eigenvalues are the best separated (Ritz values to a relative 1e-12, 1.5 num + 16 Lanczos
vectors: fewest seconds at num = 128 among 1.4 to 2 num). ``L - σ M`` is factorised once as ``P^T L D L^T P``:
a reverse Cuthill-McKee pre-permutation, then SuperLU with the minimum-degree ordering of
``A + A^T``, symmetric mode and no pivoting (stable for a definite matrix). The
pre-permutation matters: on the vertex order of a subdivided icosahedron the
minimum-degree ordering alone takes 60 s at 40 k vertices; after it, 0.3 s.

Every solution is *certified* by Sylvester's law of inertia: the number of eigenvalues
below a point τ in the last spectral gap of the result is the number of negative pivots
``D`` of the factorisation of ``L - τ M``; a Krylov solve that missed a copy of a
degenerate eigenvalue is retried from another start vector with a larger basis.

ARPACK's work outside the solves is matrix-vector products with its basis (BLAS level
2, memory-bound), so multi-threaded BLAS buys little and, on shared cores, stalls; the
solve runs with one BLAS thread unless told otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse import csgraph
from scipy.sparse.csgraph import connected_components, reverse_cuthill_mckee

from geounet.errors import GeounetError, optional_cache_write
from geounet.geometry.mesh import Mesh

_CACHE_VERSION = 4
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
    :func:`smallest_eigenpairs` takes them as they are."""
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

    ``Ψ`` is M-orthonormal. For ``boundary="dirichlet"`` the problem is solved on the
    interior vertices and Ψ is zero on the boundary. With Neumann conditions the first
    vector is the normalised constant ``1 / sqrt(A)`` (rotated within the null space).
    Results are cached on disk in :func:`cache_dir`, keyed by sha256 of the mesh bytes
    and the parameters, written atomically as one ``.npy`` array ``[1 + V, num]`` (row 0
    the eigenvalues), which loads about twice as fast as an ``.npz`` (a zip archive).
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
    path = cache_dir() / f"eigenbasis-{key}.npy"
    if use_cache and path.exists():
        stored = np.load(path)  # [1 + V, num]
        return stored[0], stored[1:]
    values, vectors = _solve(mesh, num, free, kind)
    if use_cache:
        with optional_cache_write(path, "the eigenbasis cache"):
            _atomic_save(path, np.concatenate([values[None], vectors]))
    return values, vectors


def _solve(mesh: Mesh, num: int, free: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if free.all():  # Neumann: one zero eigenvalue per component
        _check_components(mesh, num)
    stiffness = stiffness_matrix(mesh, kind)[free][:, free]
    values, vectors = smallest_eigenpairs(stiffness, mesh.lumped_mass[free], num)
    full = np.zeros((mesh.num_vertices, num))
    full[free] = vectors
    if free.all():
        full = _constant_first(full, mesh.lumped_mass, values)
    signs = np.sign(full[np.argmax(np.abs(full), axis=0), np.arange(num)])  # deterministic sign
    return values, full * signs


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
            f"ask for more than {count} eigenpairs or split the mesh into its components"
        )


def smallest_eigenpairs(
    stiffness: sp.spmatrix, mass: np.ndarray, num: int, blas_threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The ``num`` smallest eigenpairs ``(λ [num] ascending, Φ [n, num])`` of ``L φ = λ M φ``.

    Args:
        stiffness: ``L [n, n]`` symmetric positive semi-definite.
        mass: the diagonal of ``M [n]``, positive.
        num: how many, ``1 <= num < n``.
        blas_threads: BLAS threads during the solve (None: leave the setting alone).

    ``Φ^T M Φ = I``. Raises ``RuntimeError`` when three solves in a row fail the inertia
    certificate (module docstring).
    """
    from threadpoolctl import threadpool_limits

    n = stiffness.shape[0]
    if not (np.isfinite(mass).all() and (mass > 0).all()):
        raise GeounetError("the mass matrix must be positive: every vertex needs a face of positive area")
    if not isinstance(num, int) or not 1 <= num < n:
        raise GeounetError(f"num must be an int in [1, {n - 1}], got {num!r}")
    stiffness = sp.csc_matrix(stiffness, dtype=np.float64)
    mass_matrix = sp.diags(mass).tocsc()
    # σ below the spectrum keeps L - σM positive definite (L is only semi-definite).
    sigma = -1e-6 * float((stiffness.diagonal() / mass).max())
    shifted = SymmetricFactor(stiffness - sigma * mass_matrix)
    if shifted.negative_pivots:
        raise GeounetError(f"the stiffness matrix has {shifted.negative_pivots} negative eigenvalues; it must be "
                         "positive semi-definite (a Laplacian)")
    inverse = spla.LinearOperator((n, n), matvec=shifted.solve, dtype=np.float64)
    with threadpool_limits(blas_threads):
        for attempt in range(3):
            # Krylov methods can miss copies of a degenerate eigenvalue (a start vector has
            # one component per eigenspace), so every solve is certified by Sylvester's law
            # of inertia and retried from another start vector with more Lanczos vectors.
            v0 = np.random.default_rng(attempt).standard_normal(n)
            ncv = min(n, (3 + 2 * attempt) * num // 2 + 16)
            values, vectors = spla.eigsh(
                stiffness, k=num, M=mass_matrix, sigma=sigma, OPinv=inverse, which="LM", v0=v0, ncv=ncv, tol=1e-12
            )
            order = np.argsort(values)
            values, vectors = values[order], vectors[:, order]
            if _certified(stiffness, mass_matrix, values):
                return values, vectors
    raise RuntimeError(f"eigsh kept missing eigenvalues of this Laplacian (num={num}); try another num")


class SymmetricFactor:
    """``A = P^T L D L^T P`` of a sparse symmetric matrix ``A`` (SuperLU without pivoting on
    a reverse Cuthill-McKee pre-permutation, then a minimum-degree ordering of A + A^T):
    solves, and the inertia of ``A`` (the number of negative pivots in ``D``)."""

    def __init__(self, matrix: sp.spmatrix):
        matrix = sp.csr_matrix(matrix)
        self.permutation = reverse_cuthill_mckee(matrix, symmetric_mode=True)
        permuted = matrix[self.permutation][:, self.permutation].tocsc()
        self._lu = spla.splu(
            permuted, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        self.negative_pivots = int((self._lu.U.diagonal() < 0).sum())

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A^{-1} rhs`` for ``rhs [n]`` or ``[n, k]``."""
        out = np.empty_like(rhs, dtype=np.float64)
        out[self.permutation] = self._lu.solve(np.asarray(rhs, dtype=np.float64)[self.permutation])
        return out


def _certified(stiffness: sp.spmatrix, mass: sp.spmatrix, values: np.ndarray) -> bool:
    """Whether ``values`` holds *all* eigenvalues below its last spectral gap.

    By Sylvester's law of inertia the number of eigenvalues of ``L φ = λ M φ`` below τ is
    the number of negative pivots of an LDL^T factorisation of ``L - τ M``.
    """
    gaps = np.flatnonzero(np.diff(values) > 1e-6 * np.abs(values[1:]))
    if len(gaps) == 0:
        return True
    j = int(gaps[-1]) + 1  # values[j - 1] < τ < values[j]
    for fraction in (0.5, 0.3, 0.7):  # without pivoting a pivot can vanish at one τ: try another
        tau = values[j - 1] + fraction * (values[j] - values[j - 1])
        try:
            return SymmetricFactor(stiffness - tau * mass).negative_pivots == j
        except RuntimeError:  # SuperLU: "Factor is exactly singular"
            continue
    raise RuntimeError("the inertia certificate could not factorise L - τM at three points of the last gap")


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


def _atomic_save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, array)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
