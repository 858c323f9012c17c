"""Stiffness matrices (cotangent, robust, graph), the LDL^T inertia, and certified eigenpairs."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import trimesh

from geounet.geometry.eigensolver import (
    SymmetricFactor,
    canonical_eigenvectors,
    eigenspaces,
    smallest_eigenpairs,
)
from geounet.geometry.laplacian import (
    laplacian_eigenbasis,
    point_cloud_laplacian,
    resolve_laplacian,
    stiffness_matrix,
)
from geounet.geometry.mesh import Mesh


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


def _sphere(subdivisions=2):
    ico = trimesh.creation.icosphere(subdivisions)
    return Mesh(ico.vertices, ico.faces)


def _sphere_with_fins(fins: int = 3):
    """A sphere with ``fins`` triangles glued along one of its edges (non-manifold)."""
    sphere = _sphere()
    a, b = sphere.edges[0]
    mid = 0.5 * (sphere.vertices[a] + sphere.vertices[b])
    directions = np.linalg.qr(np.random.default_rng(0).standard_normal((3, 3)))[0]
    tips = mid + 0.3 * directions[:fins]
    faces = [[a, b, sphere.num_vertices + i] for i in range(fins)]
    return Mesh(np.concatenate([sphere.vertices, tips]), np.concatenate([sphere.faces, faces]))


def test_robust_laplacian_is_the_cotangent_laplacian_on_a_delaunay_mesh():
    sphere = _sphere()
    assert resolve_laplacian(sphere, "auto") == "cotangent"
    assert abs(stiffness_matrix(sphere, "robust") - sphere.cotangent_laplacian).max() < 1e-12
    from skfem import MeshTri

    disc = MeshTri.init_circle(3)  # planar: padded with z = 0
    mesh = Mesh(disc.p.T, disc.t.T)
    assert abs(stiffness_matrix(mesh, "robust") - mesh.cotangent_laplacian).max() < 1e-12


def test_robust_laplacian_of_a_non_manifold_mesh_is_a_laplacian():
    mesh = _sphere_with_fins()
    assert resolve_laplacian(mesh, "auto") == "robust"
    laplacian = stiffness_matrix(mesh)
    dense = laplacian.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-14)
    np.testing.assert_allclose(dense.sum(axis=1), 0, atol=1e-12)
    assert (dense[~np.eye(len(dense), dtype=bool)] <= 1e-14).all()  # intrinsic Delaunay: weights >= 0
    assert np.linalg.eigvalsh(dense)[0] > -1e-12


def test_eigenbasis_of_a_non_manifold_mesh_matches_dense_scipy():
    mesh = _sphere_with_fins()
    values, vectors = laplacian_eigenbasis(mesh, 10, use_cache=False)
    reference = scipy.linalg.eigh(stiffness_matrix(mesh).toarray(), np.diag(mesh.lumped_mass), eigvals_only=True)
    np.testing.assert_allclose(values, reference[:10], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(vectors.T @ (mesh.lumped_mass[:, None] * vectors), np.eye(10), atol=1e-10)
    np.testing.assert_allclose(vectors[:, 0], 1 / np.sqrt(mesh.area), rtol=1e-8)


def test_point_cloud_laplacian_of_a_sphere_has_the_spherical_harmonic_spectrum():
    count = 3000  # Fibonacci points on the unit sphere
    height = 1 - (2 * np.arange(count) + 1) / count
    angle = np.pi * (3 - np.sqrt(5)) * np.arange(count)
    radius = np.sqrt(1 - height**2)
    points = np.stack([radius * np.cos(angle), radius * np.sin(angle), height], axis=1)
    laplacian, mass = point_cloud_laplacian(points)
    np.testing.assert_allclose(mass.sum(), 4 * np.pi, rtol=0.02)
    values, vectors = smallest_eigenpairs(laplacian, mass, 9)
    np.testing.assert_allclose(values, [0, 2, 2, 2, 6, 6, 6, 6, 6], atol=0.1)
    np.testing.assert_allclose(vectors.T @ (mass[:, None] * vectors), np.eye(9), atol=1e-10)
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        point_cloud_laplacian(points[:, :2])


def test_triangle_soup_is_refused_with_advice_to_weld():
    sphere = _sphere(1)
    corners = sphere.vertices[sphere.faces].reshape(-1, 3)
    soup = Mesh(corners, np.arange(len(corners)).reshape(-1, 3))  # valid, but 80 components
    with pytest.raises(ValueError, match=r"80 connected components.*weld"):
        laplacian_eigenbasis(soup, 16)


def test_ldlt_inertia_counts_eigenvalues_below_a_shift():
    mesh = _sphere(1)
    stiffness, mass = mesh.cotangent_laplacian, sp.diags(mesh.lumped_mass)
    values = scipy.linalg.eigh(stiffness.toarray(), mass.toarray(), eigvals_only=True)
    rng = np.random.default_rng(0)
    for tau in rng.uniform(-1, values[-1], 8):
        factor = SymmetricFactor(stiffness - tau * mass)
        assert factor.negative_pivots == int((values < tau).sum())
        rhs = rng.standard_normal((mesh.num_vertices, 2))
        np.testing.assert_allclose((stiffness - tau * mass) @ factor.solve(rhs), rhs, atol=1e-8)


def test_smallest_eigenpairs_rejects_what_is_not_a_laplacian_pencil():
    mesh = _sphere(1)
    stiffness, mass = mesh.cotangent_laplacian, mesh.lumped_mass
    with pytest.raises(ValueError, match="mass matrix must be positive"):
        smallest_eigenpairs(stiffness, np.where(np.arange(len(mass)) == 0, 0.0, mass), 4)
    with pytest.raises(ValueError, match="num must be"):
        smallest_eigenpairs(stiffness, mass, mesh.num_vertices)
    with pytest.raises(ValueError, match="negative eigenvalues"):
        smallest_eigenpairs(-stiffness, mass, 4)
    with pytest.raises(ValueError, match="laplacian must be one of"):
        stiffness_matrix(mesh, "cotan")


def test_graph_laplacian_is_networkx_combinatorial_laplacian():
    """``kind="graph"`` is D - A of the unit-weight edge graph: checked against networkx's
    Laplacian of trimesh's vertex adjacency graph (an independent construction)."""
    import networkx as nx

    ico = trimesh.creation.icosphere(2)
    mesh = Mesh(ico.vertices, ico.faces)
    ours = stiffness_matrix(mesh, "graph").toarray()
    reference = nx.laplacian_matrix(ico.vertex_adjacency_graph, nodelist=range(len(ico.vertices))).toarray()
    np.testing.assert_array_equal(ours, reference)  # small integers: exact in float64
    assert np.array_equal(np.diag(ours), np.array([len(ico.vertex_neighbors[v]) for v in range(len(ico.vertices))]))


@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_eigenbasis_does_not_depend_on_the_basis_the_solver_returns(boundary):
    """On an icosphere (Neumann: eigenspaces of dimension 3 to 5) and on its half about a 5-fold
    axis (Dirichlet: pairs) every eigenspace's basis is fixed by the pencil: rotating each
    eigenspace's vectors by a random orthogonal matrix (sign flips included), as another CPU's
    solver may, changes nothing."""
    mesh = _sphere(2) if boundary == "neumann" else _hemisphere()
    values, vectors = laplacian_eigenbasis(mesh, 40, boundary, use_cache=False)
    spaces = [slice(start, stop) for start, stop in eigenspaces(values)]
    sizes = [space.stop - space.start for space in spaces]
    assert max(sizes) >= (3 if boundary == "neumann" else 2), sizes  # the test needs degenerate eigenvalues
    free = np.abs(vectors).sum(axis=1) > 0  # [V]: Dirichlet vectors vanish on the boundary
    mass = mesh.lumped_mass[free]
    rotated = vectors[free].copy()
    rng = np.random.default_rng(1)
    for space in spaces:
        m = space.stop - space.start
        rotated[:, space] = rotated[:, space] @ np.linalg.qr(rng.standard_normal((m, m)))[0]
    again = canonical_eigenvectors(values, rotated, mass)
    # Neumann: column 0 is then set to the positive constant (the sign of a null vector is free)
    first = 1 if boundary == "neumann" else 0
    np.testing.assert_allclose(again[:, first:], vectors[free][:, first:], atol=1e-9)
    np.testing.assert_allclose(again.T @ (mass[:, None] * again), np.eye(len(values)), atol=1e-9)
    stiffness = stiffness_matrix(mesh)[free][:, free]
    residual = stiffness @ again - mass[:, None] * again * values  # L Φ - M Φ Λ
    assert np.abs(residual).max() < 1e-8 * max(1.0, values.max())
    if boundary == "neumann":  # the constant stays first and positive
        np.testing.assert_allclose(vectors[:, 0], 1 / np.sqrt(mesh.lumped_mass.sum()), rtol=1e-12)


def _hemisphere():
    """The faces of a subdivided icosahedron above the plane through its centre normal to a vertex
    (a 5-fold axis): symmetric under the 5 rotations and 5 reflections about that axis."""
    ico = trimesh.creation.icosphere(3)
    vertices = ico.vertices @ trimesh.geometry.align_vectors(ico.vertices[0], [0, 0, 1])[:3, :3].T
    keep = (vertices[ico.faces][:, :, 2] >= -1e-9).all(axis=1)
    used, faces = np.unique(ico.faces[keep], return_inverse=True)
    return Mesh(vertices[used], faces.reshape(-1, 3))
