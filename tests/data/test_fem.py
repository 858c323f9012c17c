import numpy as np
import pytest
import skfem
from skfem.models.poisson import laplace, mass

import geounet.datagen.fem as fem


def _rates(errors):
    errors = np.asarray(errors)
    return np.log2(errors[:-1] / errors[1:])


def _l2(mass_matrix, e):
    return float(np.sqrt(e @ (mass_matrix @ e)))


def test_assembly_matches_scikit_fem():
    vertices, faces = fem.make_planar_domain({"kind": "square_holes", "n": 10, "holes": [[0.5, 0.5, 0.2]]})
    stiffness, mass_matrix = fem.p1_matrices(vertices, faces)
    basis = skfem.Basis(skfem.MeshTri(vertices.T, faces.T), skfem.ElementTriP1())
    np.testing.assert_allclose(stiffness.toarray(), skfem.asm(laplace, basis).toarray(), atol=1e-12)
    np.testing.assert_allclose(mass_matrix.toarray(), skfem.asm(mass, basis).toarray(), atol=1e-14)
    # Coefficient weighting is per face: k = 3 everywhere scales K by 3.
    weighted, _ = fem.p1_matrices(vertices, faces, np.full(len(faces), 3.0))
    np.testing.assert_allclose(weighted.toarray(), 3 * stiffness.toarray(), atol=1e-12)


def test_unit_square_converges_at_second_order():
    errors = []
    for n in (8, 16, 32):
        vertices, faces = fem.structured_square(n)
        exact = np.sin(np.pi * vertices[:, 0]) * np.sin(np.pi * vertices[:, 1])
        stiffness, mass_matrix = fem.p1_matrices(vertices, faces)
        boundary = fem.boundary_vertices(faces, len(vertices))
        u = fem.solve_dirichlet(stiffness, mass_matrix @ (2 * np.pi**2 * exact), boundary)
        assert np.all(u[boundary] == 0.0)
        errors.append(_l2(mass_matrix, u - exact))
    assert (_rates(errors) > 1.8).all(), errors


def test_annulus_with_hole_converges_to_radial_solution():
    """-Δu = 1 on r0 < r < R, u = 0 on both circles: u = (R² - r²)/4 + A ln(r/R)."""
    r0, big_r = 0.2, 0.5
    a = (big_r**2 - r0**2) / (4 * np.log(big_r / r0))
    errors = []
    for scale in (1, 2, 4):  # refine radially and angularly, so the polygons converge to the circles
        spec = {"kind": "annulus", "n_radial": 4 * scale, "n_angular": 24 * scale, "inner_radius": r0}
        vertices, faces = fem.make_planar_domain(spec)
        r = np.hypot(vertices[:, 0] - 0.5, vertices[:, 1] - 0.5)
        exact = (big_r**2 - r**2) / 4 + a * np.log(r / big_r)
        u = fem.solve_darcy(vertices, faces, np.ones((1, len(faces))))[0]
        _, mass_matrix = fem.p1_matrices(vertices, faces)
        errors.append(_l2(mass_matrix, u - exact) / _l2(mass_matrix, exact))
    assert (_rates(errors) > 1.5).all(), errors  # polygonal boundary + P1: O(h^2)


def test_sphere_harmonic_is_reproduced_with_refinement():
    """-Δ_S Y_2 = 6 Y_2 with Y_2 ∝ 3z² - 1, so f = 7 Y_2 gives u = Y_2."""
    errors = []
    for subdivisions in (2, 3, 4):
        vertices, faces = fem.surface_mesh({"kind": "icosphere", "subdivisions": subdivisions})
        y20 = 3 * vertices[:, 2] ** 2 - 1
        u = fem.solve_surface_poisson(vertices, faces, 7 * y20)
        _, mass_matrix = fem.p1_matrices(vertices, faces)
        errors.append(_l2(mass_matrix, u - y20) / _l2(mass_matrix, y20))
    assert errors[-1] < 0.01 and (_rates(errors) > 1.8).all(), errors


@pytest.mark.parametrize(
    "spec",
    [{"kind": "torus", "major_sections": 24, "minor_sections": 12}, {"kind": "bumpy_sphere", "subdivisions": 2}],
)
def test_constants_are_exact_on_closed_surfaces(spec):
    vertices, faces = fem.surface_mesh(spec)
    u = fem.solve_surface_poisson(vertices, faces, np.ones(len(vertices)))
    np.testing.assert_allclose(u, 1.0, atol=1e-10)


def test_darcy_dataset_properties_and_resolution_transfer():
    domain = {"kind": "square_holes", "n": 12, "holes": [[0.3, 0.3, 0.12], [0.7, 0.6, 0.15]]}
    data = fem.generate_darcy_dataset(3, domain, seed=0)
    num_v, num_f = len(data["vertices"]), len(data["faces"])
    assert data["k_vertex"].shape == (3, num_v) and data["u_face"].shape == (3, num_f)
    assert (data["u_vertex"][:, data["boundary"]] == 0).all()
    assert (data["u_vertex"][:, ~data["boundary"]] > 0).all()  # maximum principle, f = 1 > 0
    assert (data["k_face"] > 0).all() and 0.3 < np.log(data["k_vertex"]).std() < 3
    # The hole vertices are boundary vertices: some boundary vertex lies strictly inside the square.
    inner = (data["vertices"] > 1e-12).all(axis=1) & (data["vertices"] < 1 - 1e-12).all(axis=1)
    assert (data["boundary"] & inner).any()
    fine = fem.generate_darcy_dataset(3, {**domain, "refine": 1}, seed=0)
    # Same field, old vertices first: equal to rounding, not bitwise. ω_j · x is a BLAS product whose
    # rounding may depend on the matrix size; |Δ(ω_j · x)| <= 2 γ_2 |ω_j| |x| (E|ω_j| ≈ 1.25 / ℓ = 6.3,
    # |x| <= 1.5), summed over N = 256 features times sqrt(2 / N): |Δ log k| <= ~1e-13 (log_std = 1).
    np.testing.assert_allclose(fine["k_vertex"][:, :num_v], data["k_vertex"], rtol=1e-12, atol=0)
    diff = np.abs(fine["u_vertex"][:, :num_v] - data["u_vertex"]).max() / np.abs(data["u_vertex"]).max()
    assert diff < 0.1
    again = fem.generate_darcy_dataset(3, domain, seed=0)
    np.testing.assert_array_equal(again["u_vertex"], data["u_vertex"])  # the same call twice: bitwise
    assert not np.allclose(fem.generate_darcy_dataset(3, domain, seed=1)["u_vertex"], data["u_vertex"])


def test_default_domains_are_valid_meshes():
    for spec in (*fem.DARCY_TRAIN_DOMAINS, *fem.DARCY_TEST_DOMAINS):
        vertices, faces = fem.make_planar_domain(spec)
        assert (fem.face_areas(vertices, faces) > 0).all()
        assert len(np.unique(faces)) == len(vertices)


def test_reference_triangle_mesh_is_the_midpoint_subdivision():
    vertices, faces = fem.reference_triangle_mesh(3)
    ref_v, ref_f = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([[0, 1, 2]])
    for _ in range(3):
        ref_v, ref_f = fem.refine(ref_v, ref_f)
    key = lambda v, f: np.sort(np.round(v[f].mean(axis=1) * 3 * 8).astype(int) @ [1, 1000])  # noqa: E731
    np.testing.assert_array_equal(key(vertices, faces), key(ref_v, ref_f))
    np.testing.assert_allclose(fem.face_areas(vertices, faces), 0.5 / 64)


def test_triangle_poisson_converges_and_respects_boundary():
    """u = x y (1 - x - y) solves -Δu = 2 (x + y) with zero boundary values."""
    errors = []
    for level in (3, 4, 5):
        vertices, faces = fem.reference_triangle_mesh(level)
        x, y = vertices.T
        stiffness, mass_matrix = fem.p1_matrices(vertices, faces)
        boundary = fem.boundary_vertices(faces, len(vertices))
        u = fem.solve_dirichlet(stiffness, mass_matrix @ (2 * (x + y)), boundary)
        assert np.all(u[boundary] == 0.0) and boundary.sum() == 3 * 2**level
        # Nodal values are exact here (superconvergence), so measure at face centroids.
        cx, cy = vertices[faces].mean(axis=1).T
        exact = cx * cy * (1 - cx - cy)
        errors.append(np.abs(fem.face_average(u, faces) - exact).max() / exact.max())
    assert (_rates(errors) > 1.8).all(), errors


def _ifs_cells(level):
    """Level-J cells from the IFS f0 = x/2, f1 = x/2 + (0, 1/2), f2 = x/2 + (1/2, 0), f3 = -x/2 + (1/2, 1/2)."""
    cells = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    maps = [(0.5, (0.0, 0.0)), (0.5, (0.0, 0.5)), (0.5, (0.5, 0.0)), (-0.5, (0.5, 0.5))]
    for _ in range(level):
        cells = np.concatenate([scale * cells + np.array(shift) for scale, shift in maps])
    return cells


def test_triangle_face_averages_exact_on_hierarchy_cells():
    level = 4
    data = fem.generate_triangle_poisson_dataset(2, seed=0, level=level)
    u, vertices, faces = data["u_vertex"], data["vertices"], data["faces"]
    # Finest level: the query cells are the mesh faces themselves (any order / orientation).
    fine_cells = _ifs_cells(level)
    averages = fem.triangle_face_averages(u, level, fine_cells)  # [2, F]
    centroid_key = lambda c: np.round(c.mean(axis=1) * 3 * 2**level).astype(int) @ [1, 1000]  # noqa: E731
    order = np.argsort(centroid_key(vertices[faces]))
    lookup = np.argsort(centroid_key(fine_cells))
    np.testing.assert_allclose(averages[:, lookup], fem.face_average(u, faces)[:, order], atol=1e-14)
    # Coarser level: the integral over the triangle is preserved, and linear fields are exact.
    coarse = _ifs_cells(2)
    coarse_avg = fem.triangle_face_averages(u, level, coarse)
    np.testing.assert_allclose(coarse_avg.sum(axis=1) / len(coarse), averages.sum(axis=1) / len(fine_cells))
    linear = 1 + 2 * vertices[:, 0] - 3 * vertices[:, 1]
    at_centroids = 1 + 2 * coarse.mean(axis=1)[:, 0] - 3 * coarse.mean(axis=1)[:, 1]
    np.testing.assert_allclose(fem.triangle_face_averages(linear, level, coarse), at_centroids, atol=1e-13)


def test_caches_reuse_files(tmp_path):
    domain = {"kind": "l_shape", "n": 8}
    first = fem.load_or_generate_darcy(tmp_path, 2, domain, seed=0)
    second = fem.load_or_generate_darcy(tmp_path, 2, domain, seed=0)
    np.testing.assert_array_equal(first["u_face"], second["u_face"])
    surface = fem.load_or_generate_surface_poisson(tmp_path, 2, {"kind": "icosphere", "subdivisions": 1}, seed=0)
    triangle = fem.load_or_generate_triangle_poisson(tmp_path, 2, seed=0, level=3)
    assert surface["u_vertex"].shape == (2, 42) and triangle["u_vertex"].shape == (2, 45)
    assert len(list(tmp_path.glob("*.npz"))) == 3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fem.make_planar_domain({"kind": "disk"}), "domain kind"),
        (lambda: fem.make_planar_domain({"kind": "annulus", "n_radial": 2, "n_angular": 8, "inner_radius": 0.7}),
         "inner_radius"),
        (lambda: fem.p1_matrices(np.zeros((3, 2)), np.array([[0, 1, 3]])), "outside"),
        (lambda: fem.p1_matrices(np.zeros((3, 2)), np.array([[0, 1, 2]])), "zero area"),
        (lambda: fem.generate_surface_poisson_dataset(1, *fem.make_planar_domain({"kind": "l_shape", "n": 4}), 0),
         r"\[V, 3\]"),
        (lambda: fem.generate_darcy_dataset(0, {"kind": "l_shape", "n": 4}, 0), "num_samples"),
        (lambda: fem.triangle_face_averages(np.zeros(45), 3, np.zeros((2, 3, 3))), "triangles"),
        (lambda: fem.evaluate_on_reference_triangle(np.zeros(45), 3, np.array([[0.8, 0.8]])), "reference triangle"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_open_surface_is_rejected():
    vertices, faces = fem.surface_mesh({"kind": "icosphere", "subdivisions": 1})
    with pytest.raises(ValueError, match="closed surface"):
        fem.generate_surface_poisson_dataset(1, vertices, faces[1:], seed=0)


def test_face_gradients_of_linear_fields_are_their_tangential_projections():
    """u(x) = g · x has surface gradient g - (g · n) n on every face, exactly (P1 holds linear
    fields); a rotated mesh gives the rotated gradients."""
    import trimesh

    from geounet.datagen.fem import face_gradients

    mesh = trimesh.creation.icosphere(1)
    vertices, faces = mesh.vertices * np.array([1.0, 0.5, 2.0]), mesh.faces
    g = np.array([[0.3, -1.0, 2.0], [1.0, 0.0, 0.0]])  # two fields
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    expected = g[:, None, :] - (normals @ g.T).T[..., None] * normals[None]
    gradients = face_gradients(vertices, faces, g @ vertices.T)  # [2, F, 3]
    np.testing.assert_allclose(gradients, expected, atol=1e-12)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    np.testing.assert_allclose(face_gradients(vertices @ rotation.T, faces, g @ vertices.T), gradients @ rotation.T,
                               atol=1e-12)
