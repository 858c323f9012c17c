"""Laplacian-eigenbasis hierarchies on meshes: nested band-limited spaces (natural bases).

Solve the generalized eigenproblem of the cotangent Laplacian ``L`` (or the
combinatorial graph Laplacian D - A) with lumped mass ``M``,

    L ψ_m = λ_m M ψ_m,     Ψ^T M Ψ = I,     0 <= λ_0 <= λ_1 <= ...,

(float64, :func:`geounet.geometry.laplacian.laplacian_eigenbasis`: shift-invert Lanczos,
certified by inertia, cached on disk). ``laplacian="auto"`` takes the cotangent
Laplacian, or the robust Laplacian on non-manifold meshes. With band limits
``k_0 < k_1 < ... `` the spaces ``V_i = span{ψ_0 .. ψ_{k_i - 1}}`` are nested. Band limits
are lowered to the nearest spectral gap (``λ_k - λ_{k-1} > gap_tol · λ_k``) so no
degenerate eigenspace is split (on the sphere: 1, 4, 9, 16, ... = (l + 1)^2).

**Representation.** Level i (a *coefficient level*) has ``k_i`` nodes: coefficients
``c`` of the function ``f = B_i c = Σ_n c_n b_n`` in the basis

    B_i = sqrt(A / k_i) · Ψ_{:k_i} H_{k_i}^T,     so     B_i^T M B_i = (A / k_i) I,

with ``A`` the area and ``H_k`` an orthogonal matrix. Each coefficient has mass
``w_i = A / k_i`` (levels measure the same total A) and ``<c, d>_{w} = <B c, B d>_M``.
When the constants lie in V_0 (no Dirichlet condition; ψ_0 is rotated within the null
space to ``1 / sqrt(A)``), ``H_k`` is the Householder reflection with first column
``1 / sqrt(k)``: then ``Σ_n b_n = 1``, so the all-ones coefficient vector *is* the
constant 1, a bias added to every node adds a constant function, integrals are
``Σ_n w_n c_n``, and node statistics (means, variances in a GroupNorm) are the
function's. Otherwise ``H = I`` (plain, scaled eigen-coefficients).

With ``vertex_level=True`` the finest level holds vertex values (mass = lumped mass,
the P1 functions); its restriction is the M-orthogonal projection
``c = B^T M x / w`` and the prolongation is synthesis ``x = B c``. Every transfer is a
small dense matrix, exact to round-off:

    prolong_i = (1/w_{i+1}) B_{i+1}^T M B_i,     restrict_{i+1} = (1/w_i) B_i^T M B_{i+1}.

Coefficient levels have a complete graph whose edge feature is the Galerkin Laplacian
``G_nm = b_n^T L b_m / w`` (message passing with these weights is diffusion on V_i);
the vertex level has the mesh edges with (displacement, distance, cotangent weight).

**Meshes of several parts** (and non-manifold meshes that fall apart) are solved per
connected component (:func:`geounet.geometry.eigensolver.componentwise_eigenpairs`) and the
components' eigenpairs merged in eigenvalue order, each basis function living on one
component. Level i is then the span of all eigenfunctions, of every component, below one
frequency: ``V_i = ⊕_c span{ψ^c_m : λ^c_m < λ_{k_i}}``, so a part of larger area holds more
of the level's ``k_i`` functions (about in proportion to its area, Weyl's law) and every
part is resolved to the same length scale. Band limits are cut at the gaps of the merged
spectrum; parts that are congruent repeat each eigenvalue, so their band limits must
not split such a group. V_0 holds the constant of each component once ``k_0`` reaches
the number of components (below it, the cut falls inside the zero eigenvalue and is
refused).

**Units.** Scaling the mesh by L scales ``λ`` by ``1 / L²``, the areas, masses ``w_i``
and ``M`` by ``L²``, the vertex-graph displacements and distances by ``L`` and the
Galerkin edge weights ``G`` by ``1 / L²``; the cotangent / robust / graph stiffness, the
bases ``B_i`` and every restrict / prolong operator do not change. A model that reads
edge features or masses (message passing, GroupNorm weights, mass-weighted losses)
therefore gives other outputs on the same mesh in millimetres and in metres.
``normalize=True`` scales the mesh to unit total area first (``x -> x / sqrt(A)``), so the
hierarchy, and every output of a model on it, is the same in any unit. It is off by
default: it also removes the true size of each mesh, which physical fields depend on
(a Poisson solution scales with L²; meshes of one data set in one unit keep their
relative sizes only without it), and it leaves the results of existing runs unchanged.
Turn it on when meshes come in mixed or unknown units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.geometry.eigensolver import EigensolverError
from geounet.geometry.laplacian import laplacian_eigenbasis, stiffness_matrix
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy, LevelGraph


def cut_at_gaps(eigenvalues: np.ndarray, band_limits: Sequence[int], gap_tol: float) -> list[int]:
    """Lower each band limit k to the largest k' <= k with ``λ_k' - λ_{k'-1} > gap_tol · λ_k'``.

    ``eigenvalues`` must extend beyond ``max(band_limits)`` (λ_k is needed to test k).
    """
    limits = []
    for k in band_limits:
        cut = k
        while cut > 0 and not eigenvalues[cut] - eigenvalues[cut - 1] > gap_tol * abs(eigenvalues[cut]):
            cut -= 1
        if cut == 0 or (limits and cut <= limits[-1]):
            raise GeounetError(
                f"band limit {k} falls inside a degenerate eigenspace and lowering it to the gap "
                f"gives {cut}, not above the previous level's {limits[-1] if limits else 0}; "
                f"eigenvalues near it: {np.round(eigenvalues[max(0, k - 4) : k + 2], 6).tolist()}"
            )
        limits.append(cut)
    return limits


def _householder(k: int) -> np.ndarray:
    """Symmetric orthogonal ``[k, k]`` matrix whose first column is ``1 / sqrt(k)``."""
    u = -np.full(k, 1 / np.sqrt(k))
    u[0] += 1.0
    norm = u @ u
    return np.eye(k) - 2 * np.outer(u, u) / norm if norm > 1e-30 else np.eye(k)


class MeshSpectralHierarchy(Hierarchy):
    """Nested Laplacian-eigenbasis spaces on a mesh (see the module docstring).

    Args:
        mesh: the mesh; signals at the vertex level are vertex values.
        band_limits: requested ``k_0 < k_1 < ...``, lowered to spectral gaps.
        boundary: ``"neumann"`` (natural; constants included) or ``"dirichlet"``
            (zero on the boundary; every coefficient level is a Dirichlet space).
        laplacian: ``"auto"`` (cotangent, or robust on non-manifold meshes), ``"cotangent"``,
            ``"robust"`` (Sharp & Crane 2020) or ``"graph"`` (combinatorial, D - A).
        vertex_level: append the vertex-value level as the finest level.
        gap_tol: relative spectral gap needed to cut the basis.
        use_cache: read / write eigenbases on disk.
        normalize: scale the mesh to unit total area first, making the hierarchy independent
            of the mesh's unit (module docstring, Units); :attr:`scale` is the factor applied.
    """

    kind = "MeshSpectralHierarchy"

    def __init__(
        self,
        mesh: Mesh,
        band_limits: Sequence[int],
        boundary: str = "neumann",
        laplacian: str = "auto",
        vertex_level: bool = True,
        gap_tol: float = 1e-3,
        use_cache: bool = True,
        normalize: bool = False,
    ):
        band_limits = list(band_limits)
        if (
            not band_limits
            or any(not isinstance(k, int) or k < 1 for k in band_limits)
            or band_limits != sorted(set(band_limits))
        ):
            raise GeounetError(f"band_limits must be increasing positive ints, got {band_limits}")
        #: the factor the mesh was scaled by (1 without ``normalize``)
        self.scale = 1 / np.sqrt(mesh.area) if normalize else 1.0
        self.mesh = mesh = Mesh(mesh.vertices * self.scale, mesh.faces) if normalize else mesh
        self.normalize = normalize
        self.boundary = boundary
        self.laplacian_kind = laplacian
        self.vertex_level = vertex_level
        num = min(band_limits[-1] + max(8, band_limits[-1] // 10), mesh.num_vertices - 1)
        if boundary == "dirichlet":
            num = min(num, mesh.num_vertices - len(mesh.boundary_vertices) - 1)
        if num <= band_limits[-1]:
            raise GeounetError(f"the mesh has too few vertices ({mesh.num_vertices}) for band limit {band_limits[-1]}")
        try:
            values, vectors = laplacian_eigenbasis(mesh, num, boundary, laplacian, use_cache)
        except EigensolverError as error:
            raise GeounetError(
                f"band_limits={band_limits}: the {num} smallest eigenpairs (the largest band limit plus a margin) "
                f"could not be certified ({error}); change the largest band limit by a few so that the cut moves "
                "off a degenerate eigenvalue"
            ) from error
        self.band_limits = cut_at_gaps(values, band_limits, gap_tol)
        self.eigenvalues = values[: self.band_limits[-1]]
        self.reproduces_constants = self.preserves_integrals = boundary == "neumann"
        area = mesh.area
        self._weights = [area / k for k in self.band_limits]
        psi = vectors[:, : self.band_limits[-1]]
        # Level basis in eigen-coordinates: B_i = Ψ C_i with C_i = sqrt(w_i) [H_k^T; 0].
        self._coordinates = []
        for k, w in zip(self.band_limits, self._weights, strict=False):
            rotation = _householder(k) if self.reproduces_constants else np.eye(k)
            padding = np.zeros((psi.shape[1] - k, k))
            self._coordinates.append(np.sqrt(w) * np.concatenate([rotation.T, padding]))  # [k_I, k]
        self._psi = psi
        self._stiffness = stiffness_matrix(mesh, laplacian)
        self._prolong_ops: list[np.ndarray] = []
        self._restrict_ops: list[np.ndarray] = []
        for i in range(len(self.band_limits) - 1):
            # Ψ is M-orthonormal, so B_{i+1}^T M B_i = C_{i+1}^T C_i.
            gram = self._coordinates[i + 1].T @ self._coordinates[i]  # [k_{i+1}, k_i]
            self._prolong_ops.append(gram / self._weights[i + 1])
            self._restrict_ops.append(gram.T / self._weights[i])
        if vertex_level:
            basis = psi @ self._coordinates[-1]  # [V, k_I] = B_I
            self._prolong_ops.append(basis)
            self._restrict_ops.append((basis * mesh.lumped_mass[:, None]).T / self._weights[-1])
        self._prolong_ops = [torch.from_numpy(np.ascontiguousarray(op)) for op in self._prolong_ops]
        self._restrict_ops = [torch.from_numpy(np.ascontiguousarray(op)) for op in self._restrict_ops]
        self._graphs: dict[int, LevelGraph] = {}

    def __repr__(self) -> str:
        return (
            f"MeshSpectralHierarchy(band_limits={self.band_limits}, boundary={self.boundary!r}, "
            f"vertex_level={self.vertex_level}, normalize={self.normalize})"
        )

    @property
    def num_levels(self) -> int:
        return len(self.band_limits) + int(self.vertex_level)

    def is_vertex_level(self, level: int) -> bool:
        return self.vertex_level and level == self.finest_level

    def num_nodes(self, level: int) -> int:
        self._check_level(level)
        return self.mesh.num_vertices if self.is_vertex_level(level) else self.band_limits[level]

    def mass(self, level: int) -> Tensor:
        self._check_level(level)
        if self.is_vertex_level(level):
            return torch.from_numpy(self.mesh.lumped_mass).to(self.device, self.dtype)
        return torch.full((self.band_limits[level],), self._weights[level], dtype=self.dtype, device=self.device)

    def basis(self, level: int) -> np.ndarray:
        """Vertex values of the level's basis functions ``B_i [V, k_i]`` (float64)."""
        self._check_level(level, highest=len(self.band_limits) - 1)
        return self._psi @ self._coordinates[level]

    def synthesize(self, c: Tensor, level: int) -> Tensor:
        """Vertex values ``B_i c``: ``[..., k_i, C] -> [..., V, C]``."""
        self._check_nodes(c, level)
        return _apply(self._operator("basis", level, lambda: self.basis(level)), c)

    def analyze(self, x: Tensor, level: int) -> Tensor:
        """M-orthogonal projection of vertex values onto V_level, as coefficients ``[..., k_i, C]``."""
        if x.dim() < 2 or x.shape[-2] != self.mesh.num_vertices:
            raise GeounetError(f"expected vertex values [..., {self.mesh.num_vertices}, C], got {tuple(x.shape)}")

        def build():
            return (self.basis(level) * self.mesh.lumped_mass[:, None]).T / self._weights[level]

        return _apply(self._operator("analysis", level, build), x)

    def _operator(self, name: str, level: int, build) -> Tensor:
        """The matrix ``build()`` (computed in float64) in this hierarchy's dtype and on its device,
        memoised with its data."""
        return self.cached(name, level,
                           lambda: torch.from_numpy(np.ascontiguousarray(build())).to(self.device, self.dtype))

    def boundary_mask(self, level: int) -> Tensor:
        """Boundary vertices on the vertex level; none on Dirichlet coefficient levels (the
        basis already vanishes there). Neumann coefficient levels cannot be masked."""
        self._check_level(level)
        if self.is_vertex_level(level):
            mask = np.zeros(self.mesh.num_vertices, dtype=bool)
            mask[self.mesh.boundary_vertices] = True
            return torch.from_numpy(mask).to(self.device)
        if self.boundary == "dirichlet":
            return torch.zeros(self.num_nodes(level), dtype=torch.bool, device=self.device)
        raise GeounetError(
            "coefficient levels of a Neumann spectral hierarchy cannot be masked to zero on the boundary; "
            "build it with boundary='dirichlet'"
        )

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        return _apply(self._restrict_ops[level - 1], x)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return _apply(self._prolong_ops[level], x)

    def graph(self, level: int) -> LevelGraph:
        self._check_level(level)
        if level not in self._graphs:
            self._graphs[level] = (
                self._vertex_graph() if self.is_vertex_level(level) else self._coefficient_graph(level)
            )
        return self._graphs[level]

    def _coefficient_graph(self, level: int) -> LevelGraph:
        k = self.band_limits[level]
        coordinates = self._coordinates[level][:k]  # [k, k]: rows beyond k are zero
        galerkin = coordinates.T @ (self.eigenvalues[:k, None] * coordinates) / self._weights[level]
        target, source = np.nonzero(~np.eye(k, dtype=bool))
        return LevelGraph(
            edge_index=torch.from_numpy(np.stack([source, target]).astype(np.int64)),
            edge_attr=torch.from_numpy(galerkin[target, source][:, None].copy()),
        )

    def _vertex_graph(self) -> LevelGraph:
        edges = self.mesh.edges
        source = np.concatenate([edges[:, 0], edges[:, 1]])
        target = np.concatenate([edges[:, 1], edges[:, 0]])
        displacement = self.mesh.vertices[source] - self.mesh.vertices[target]
        weight = -np.asarray(self._stiffness[target, source]).ravel()
        attr = np.concatenate([displacement, np.linalg.norm(displacement, axis=1, keepdims=True), weight[:, None]], 1)
        return LevelGraph(
            edge_index=torch.from_numpy(np.stack([source, target]).astype(np.int64)),
            edge_attr=torch.from_numpy(attr),
            positions=torch.from_numpy(self.mesh.vertices.copy()),
        )


def _apply(matrix: Tensor, x: Tensor) -> Tensor:
    """``[M, N] x [..., N, C] -> [..., M, C]``, in ``x``'s dtype."""
    return torch.matmul(matrix.to(x.dtype), x)
