import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.geometry.mesh_repair import MeshRepairWarning, repair_mesh


def _icosphere(subdivisions=2):
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces), ico


def test_face_quantities_match_trimesh():
    mesh, ico = _icosphere()
    np.testing.assert_allclose(mesh.face_areas, ico.area_faces, rtol=1e-12)
    np.testing.assert_allclose(mesh.face_normals, ico.face_normals, atol=1e-12)
    np.testing.assert_allclose(mesh.face_centroids, ico.triangles_center, atol=1e-15)
    ours = {tuple(p) for p in mesh.face_adjacency[0].tolist()}
    theirs = {tuple(sorted(p)) for p in ico.face_adjacency.tolist()}
    assert ours == theirs
    np.testing.assert_allclose(np.sort(mesh.edge_lengths), np.sort(ico.edges_unique_length), rtol=1e-12)
    assert len(mesh.boundary_edges) == 0 and mesh.face_components.max() == 0


def test_cotangent_laplacian_matches_scikit_fem_p1_stiffness():
    """On a planar mesh the cotangent Laplacian is the P1 stiffness matrix; the lumped
    mass is the row sum of the P1 mass matrix (independent reference: scikit-fem)."""
    from skfem import Basis, BilinearForm, ElementTriP1, MeshTri
    from skfem.helpers import dot, grad

    fem_mesh = MeshTri.init_circle(3)
    mesh = Mesh(fem_mesh.p.T, fem_mesh.t.T)
    basis = Basis(fem_mesh, ElementTriP1())
    stiffness = BilinearForm(lambda u, v, w: dot(grad(u), grad(v))).assemble(basis)
    mass = BilinearForm(lambda u, v, w: u * v).assemble(basis)
    assert abs(mesh.cotangent_laplacian - stiffness).max() < 1e-12
    np.testing.assert_allclose(mesh.lumped_mass, np.asarray(mass.sum(axis=1)).ravel(), rtol=1e-12)
    # constants are in the kernel; L is symmetric positive semi-definite
    np.testing.assert_allclose(mesh.cotangent_laplacian @ np.ones(mesh.num_vertices), 0, atol=1e-12)
    assert abs(mesh.cotangent_laplacian - mesh.cotangent_laplacian.T).max() < 1e-14
    x = fem_mesh.p[0] ** 2 + fem_mesh.p[1]
    assert x @ mesh.cotangent_laplacian @ x > 0


def test_boundary_of_a_disc_and_components():
    from skfem import MeshTri

    fem_mesh = MeshTri.init_circle(2)
    disc = Mesh(fem_mesh.p.T, fem_mesh.t.T)
    radius = np.linalg.norm(disc.vertices[disc.boundary_vertices], axis=1)
    np.testing.assert_allclose(radius, 1.0, atol=1e-12)
    assert disc.boundary_faces.any() and not disc.boundary_faces.all()
    two = Mesh(
        np.concatenate([disc.vertices, disc.vertices + 3]), np.concatenate([disc.faces, disc.faces + disc.num_vertices])
    )
    assert sorted(np.bincount(two.face_components).tolist()) == [disc.num_faces] * 2
    assert two.content_hash != disc.content_hash == Mesh(disc.vertices, disc.faces).content_hash


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        (np.zeros((3, 3)), np.zeros((0, 3), int), "empty"),
        (np.eye(3), [[0, 1, 3]], r"must lie in \[0, 2\]"),
        (np.eye(3) * np.nan, [[0, 1, 2]], "NaN"),
        (np.eye(3), [[0, 1, 1]], "repeat a vertex"),
        (np.eye(3), [[0, 1, 2], [2, 1, 0]], "duplicate faces"),
        (np.eye(4)[:, :3], [[0, 1, 2]], "belong to no face"),
        (np.eye(4)[:, :3], [[0, 1, 2, 3]], "triangles"),
        (np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]]), [[0, 1, 2]], "zero area"),
    ],
)
def test_strict_constructor_rejects_bad_meshes(vertices, faces, message):
    with pytest.raises(ValueError, match=message):
        Mesh(vertices, np.asarray(faces))


def test_non_manifold_edges_are_valid_and_named_by_require_manifold():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1.0]])
    mesh = Mesh(vertices, np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))  # three fins on edge (0, 1)
    assert not mesh.is_manifold and mesh.nonmanifold_edges.tolist() == [[0, 1]]
    assert len(mesh.boundary_edges) == 6
    pairs, lengths = mesh.face_adjacency  # every pair of the three fins, across the unit edge
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_allclose(lengths, 1.0)
    assert mesh.face_components.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"the test needs a manifold mesh.*\(0, 1\).*split_nonmanifold_edges"):
        mesh.require_manifold("the test")


def test_repair_reports_every_change():
    vertices = np.array(
        [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0], [np.nan, 0, 0], [5, 5, 5], [0.5, 0, 0.0]]
    )
    faces = [[0, 1, 2, 3], [2, 3, 0], [0, 4, 1], [0, 1, 7]]  # quad, duplicate, degenerate after merge, flat
    with pytest.warns(MeshRepairWarning) as record:
        mesh = repair_mesh(vertices, faces)
    message = str(record[0].message)
    for part in (
        "fan-triangulated 1 faces with 4 corners",
        "merged 1 vertices into others closer than 1e-09 x the bounding-box diagonal",
        "dropped 2 degenerate faces",
        "dropped 1 duplicate faces",
        "dropped 4 vertices",
    ):
        assert part in message, message
    assert mesh.num_faces == 2 and mesh.num_vertices == 4
    np.testing.assert_allclose(mesh.area, 1.0)


def test_repair_rejects_nan_on_used_vertices_and_keeps_valid_meshes_silent():
    with pytest.raises(ValueError, match="NaN or infinite"):
        repair_mesh(np.array([[0, 0, 0], [1, 0, 0], [0, np.inf, 0.0]]), [[0, 1, 2]])
    mesh, _ = _icosphere(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repaired = repair_mesh(mesh.vertices, mesh.faces)
    assert repaired.content_hash == mesh.content_hash
    with pytest.raises(ValueError, match="empty after removing"):
        repair_mesh(np.eye(3), [[0, 1, 1]])


def test_cotangent_laplacian_is_sparse_and_symmetric_on_surface():
    mesh, _ = _icosphere(3)
    lap = mesh.cotangent_laplacian
    assert sp.issparse(lap) and lap.nnz == mesh.num_vertices + 2 * len(mesh.edges)
    assert abs(lap - lap.T).max() < 1e-13
    np.testing.assert_allclose(mesh.lumped_mass.sum(), mesh.area, rtol=1e-13)


def _disc():
    from skfem import MeshTri

    fem_mesh = MeshTri.init_circle(2)
    return Mesh(fem_mesh.p.T, fem_mesh.t.T)


@pytest.mark.parametrize("make", [_disc, lambda: _icosphere(1)[0]], ids=["disc", "sphere"])
def test_vertex_face_transfers_keep_constants_and_integrals_and_are_mass_adjoint(make):
    """T = vertex_to_face, S = face_to_vertex: T 1 = 1, S 1 = 1; Σ_T |T| (T u)_T = Σ_v M_v u_v
    (the integral of the P1 interpolant); S preserves integrals; <T u, f>_A = <u, S f>_M."""
    mesh = make()
    rng = np.random.default_rng(0)
    u, f = rng.standard_normal((mesh.num_vertices, 2)), rng.standard_normal((mesh.num_faces, 2))
    area, lumped = mesh.face_areas, mesh.lumped_mass
    np.testing.assert_allclose(mesh.vertex_to_face(np.ones(mesh.num_vertices)), 1, rtol=1e-14)
    np.testing.assert_allclose(mesh.face_to_vertex(np.ones(mesh.num_faces)), 1, rtol=1e-14)
    np.testing.assert_allclose(area @ mesh.vertex_to_face(u), lumped @ u, rtol=1e-12)
    np.testing.assert_allclose(lumped @ mesh.face_to_vertex(f), area @ f, rtol=1e-12)
    np.testing.assert_allclose(np.einsum("f,fc,fc->", area, mesh.vertex_to_face(u), f),
                               np.einsum("v,vc,vc->", lumped, u, mesh.face_to_vertex(f)), rtol=1e-12)


def test_vertex_face_transfers_match_a_loop_over_faces_and_keep_tensor_types():
    """An independent per-face loop: the face mean of its corners, and at each vertex the
    mean of its faces' values weighted by their areas."""
    import torch

    mesh = _disc()
    rng = np.random.default_rng(1)
    u, f = rng.standard_normal(mesh.num_vertices), rng.standard_normal(mesh.num_faces)
    face_means = np.array([sum(u[v] for v in face) / 3 for face in mesh.faces])
    weighted, weight = np.zeros(mesh.num_vertices), np.zeros(mesh.num_vertices)
    for t, face in enumerate(mesh.faces):
        for v in face:
            weighted[v] += mesh.face_areas[t] * f[t]
            weight[v] += mesh.face_areas[t]
    np.testing.assert_allclose(mesh.vertex_to_face(u), face_means, rtol=1e-13)
    np.testing.assert_allclose(mesh.face_to_vertex(f), weighted / weight, rtol=1e-13)
    as_tensor = mesh.face_to_vertex(torch.from_numpy(f).float()[:, None])  # [V, 1] float32 stays float32
    assert as_tensor.dtype == torch.float32 and as_tensor.shape == (mesh.num_vertices, 1)
    labels = mesh.vertex_to_face(torch.arange(mesh.num_vertices))  # integers are averaged, not rounded
    assert labels.dtype == torch.float64
    with pytest.raises(ValueError, match=r"expected face values of shape \[\d+, \.\.\.\]"):
        mesh.face_to_vertex(u)
