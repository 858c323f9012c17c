import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

import geounet.datagen.fem as fem
import geounet.datagen.planar_domains as planar_domains
from geounet.datagen.closed_surfaces import random_closed_surface
from geounet.datagen.mesh_families import DarcyFamily, SurfaceFamily, generate_family, split_by_geometry
from geounet.datagen.planar_domains import _distance_to_polygon, _inside, polygon_area
from geounet.geometry.mesh import Mesh

DARCY = DarcyFamily(num_meshes=40)
SURFACES = SurfaceFamily(num_meshes=12)


def _boundary_loops(mesh):
    """Number of closed loops formed by the boundary edges (each boundary vertex has degree 2)."""
    boundary = mesh.boundary_edges
    degree = np.bincount(boundary.ravel(), minlength=mesh.num_vertices)
    assert set(np.unique(degree[degree > 0])) == {2}, "boundary is not a union of simple loops"
    graph = sp.coo_matrix((np.ones(len(boundary)), tuple(boundary.T)), shape=(mesh.num_vertices,) * 2)
    _, labels = csgraph.connected_components(graph, directed=False)
    return len(np.unique(labels[degree > 0]))


def _signed_areas(vertices, faces):
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])


def _geometry_hash(vertices, faces):
    return hashlib.sha256(vertices.tobytes() + faces.tobytes()).hexdigest()


# ----------------------------------------------------------------------------- Darcy


@pytest.mark.parametrize("mesh_id", range(0, 40, 3))
def test_darcy_meshes_are_valid_triangulations_of_their_domain(mesh_id):
    domain = DARCY.domain(mesh_id)
    vertices, faces = DARCY.mesh(mesh_id)
    assert vertices.dtype == np.float64 and faces.dtype == np.int64 and vertices.shape[1] == 2
    mesh = Mesh(vertices, faces)  # validates: no flat or repeated faces, no unused vertices
    assert mesh.is_manifold
    assert (_signed_areas(vertices, faces) > 0).all()  # counter-clockwise, none flipped
    # The mesh covers exactly the polygon minus its holes: one outer loop plus one loop per hole.
    assert _signed_areas(vertices, faces).sum() == pytest.approx(domain.area, rel=1e-12)
    assert _boundary_loops(mesh) == 1 + domain.num_holes
    assert 0.8 * DARCY.faces[0] <= len(faces) <= 1.25 * DARCY.faces[1]
    assert vertices.min() >= 0 and vertices.max() <= 1 + 1e-12


def test_darcy_holes_lie_inside_the_outline_with_a_margin_and_apart():
    counts = []
    for mesh_id in range(DARCY.num_meshes):
        domain = DARCY.domain(mesh_id)
        counts.append(domain.num_holes)
        assert polygon_area(domain.outline) > 0
        for i, hole in enumerate(domain.holes):
            assert polygon_area(hole) < 0  # clockwise
            assert _inside(hole, domain.outline).all()
            assert _distance_to_polygon(hole, domain.outline).min() >= 0.04 - 1e-12
            for other in domain.holes[i + 1:]:
                assert not _inside(hole, other).any() and _distance_to_polygon(hole, other).min() > 0.04
    assert set(counts) == {0, 1, 2, 3}


def test_darcy_geometries_are_distinct_and_deterministic():
    hashes = {_geometry_hash(*DARCY.mesh(i)) for i in range(DARCY.num_meshes)}
    assert len(hashes) == DARCY.num_meshes
    first, again = DARCY.sample(5), DarcyFamily(num_meshes=40).sample(5)
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    other_seed = DarcyFamily(num_meshes=40, seed=1).mesh(5)[0]
    assert other_seed.shape != first["vertices"].shape or not np.allclose(other_seed, first["vertices"])


def _domain_meshes(count: int = 30) -> list[tuple[np.ndarray, np.ndarray]]:
    return [planar_domains.triangulate_domain(planar_domains.random_planar_domain(np.random.default_rng(seed)), 0.0015)
            for seed in range(count)]


def _nudged(function):
    """``function`` with every result moved by one unit in the last place, up and down alternately:
    what another CPU's vectorised sin, cos or exp may return."""
    def nudged(x):
        y = np.asarray(function(x), dtype=np.float64)
        return np.nextafter(y, np.where(np.arange(y.size).reshape(y.shape) % 2 == 0, np.inf, -np.inf))
    return nudged


@pytest.mark.parametrize("grid_bits", [planar_domains.GRID_BITS, 70])
def test_darcy_meshes_do_not_move_with_the_last_bit_of_sin_cos_and_exp(grid_bits, monkeypatch):
    """The domains' coordinates lie on a dyadic grid, so last-bit differences of np.sin, np.cos and
    np.exp between CPUs give the same meshes, bit for bit. Negative control: with a grid finer than
    the last bit (70 bits) the meshes move."""
    on_the_grid = grid_bits == planar_domains.GRID_BITS
    monkeypatch.setattr(planar_domains, "GRID_BITS", grid_bits)
    here = _domain_meshes()
    for name in ("sin", "cos", "exp"):
        monkeypatch.setattr(np, name, _nudged(getattr(np, name)))
    elsewhere = _domain_meshes()
    same = [a[0].shape == b[0].shape and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
            for a, b in zip(here, elsewhere, strict=True)]
    assert sum(same) == (len(same) if on_the_grid else 0), same


def test_darcy_sample_solves_the_discrete_system_with_zero_boundary():
    family = DarcyFamily(num_meshes=4, samples_per_mesh=2)
    data = family.sample(2)
    vertices, faces, boundary = data["vertices"], data["faces"], data["boundary"]
    assert data["k_face"].shape == data["u_face"].shape == (2, len(faces))
    assert data["k_vertex"].shape == data["u_vertex"].shape == (2, len(vertices))
    assert int(data["num_holes"]) == family.domain(2).num_holes
    assert (data["u_vertex"][:, boundary] == 0).all()
    np.testing.assert_allclose(data["u_face"], data["u_vertex"][:, faces].mean(axis=2))
    assert not np.allclose(data["k_face"][0], data["k_face"][1])
    for k_face, u in zip(data["k_face"], data["u_vertex"], strict=True):
        stiffness, mass = fem.p1_matrices(vertices, faces, k_face)
        residual = (stiffness @ u - mass @ np.ones(len(vertices)))[~boundary]
        assert np.abs(residual).max() < 1e-12 * np.abs(mass.sum(axis=1)).max()


def test_p1_converges_at_second_order_on_a_generated_domain():
    """-Δu = f with u* = sin(3x) cosh(2y) + x y on the boundary (lifted Dirichlet data): the
    polygonal domain is exact at every resolution, so the L2 error falls as h² = 1 / resolution."""
    family = DarcyFamily(num_meshes=8, faces=(150, 200), holes=(2, 2))
    def exact(p):
        return np.sin(3 * p[:, 0]) * np.cosh(2 * p[:, 1]) + p[:, 0] * p[:, 1]

    def forcing(p):
        return 5 * np.sin(3 * p[:, 0]) * np.cosh(2 * p[:, 1])

    errors = []
    for resolution in (1, 4, 16):
        vertices, faces = family.mesh(1, resolution)
        stiffness, mass = fem.p1_matrices(vertices, faces)
        fixed = fem.boundary_vertices(faces, len(vertices))
        u = np.where(fixed, exact(vertices), 0.0)
        rhs = mass @ forcing(vertices) - stiffness @ u
        u[~fixed] = spla.spsolve(stiffness[~fixed][:, ~fixed].tocsc(), rhs[~fixed])
        e = u - exact(vertices)
        errors.append(np.sqrt(e @ (mass @ e)))
    rates = np.log2(np.array(errors[:-1]) / errors[1:])  # h halves per step
    assert (rates > 1.7).all(), (errors, rates)


def test_darcy_resolution_transfer_keeps_the_domain_and_the_permeability():
    coarse, base, fine = (DARCY.sample(7, r) for r in (1 / 4, 1, 4))
    ratio_fine = len(fine["faces"]) / len(base["faces"])
    ratio_coarse = len(coarse["faces"]) / len(base["faces"])
    assert 3.2 < ratio_fine < 4.8 and 0.15 < ratio_coarse < 0.4, (ratio_fine, ratio_coarse)
    outline = DARCY.domain(7).outline
    for data in (coarse, fine):
        assert _signed_areas(data["vertices"], data["faces"]).sum() == pytest.approx(DARCY.domain(7).area, rel=1e-12)
        # The outline's corners are vertices at every resolution, with the same k there.
        at = [np.flatnonzero((data["vertices"] == corner).all(axis=1))[0] for corner in outline]
        at_base = [np.flatnonzero((base["vertices"] == corner).all(axis=1))[0] for corner in outline]
        np.testing.assert_allclose(data["k_vertex"][:, at], base["k_vertex"][:, at_base], rtol=1e-12)


# --------------------------------------------------------------------------- surfaces


def _min_dihedral_cosine(mesh):
    """Smallest cosine between the normals of two faces sharing an edge (-1: folded back)."""
    pairs, _ = mesh.face_adjacency
    return (mesh.face_normals[pairs[:, 0]] * mesh.face_normals[pairs[:, 1]]).sum(axis=1).min()


@pytest.mark.parametrize("mesh_id", range(12))
def test_surfaces_are_closed_oriented_and_have_the_right_genus(mesh_id):
    vertices, faces = SURFACES.mesh(mesh_id)
    genus = SURFACES.genus(mesh_id)
    assert genus == (0, 1, 2)[mesh_id % 3]
    assert vertices.dtype == np.float64 and faces.dtype == np.int64 and vertices.shape[1] == 3
    mesh = Mesh(vertices, faces)  # validates: no flat or repeated faces, no unused vertices
    assert (mesh.edge_face_counts == 2).all()  # closed and manifold
    directed = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)
    assert len(np.unique(directed, axis=0)) == len(directed)  # each edge runs both ways: consistently oriented
    assert mesh.num_vertices - len(mesh.edges) + mesh.num_faces == 2 - 2 * genus  # Euler characteristic
    volume = np.einsum("fi,fi->f", vertices[faces[:, 0]], np.cross(vertices[faces[:, 1]], vertices[faces[:, 2]]))
    assert volume.sum() > 0  # outward normals
    assert 300 <= len(faces) <= 2000
    # No face is folded back onto its neighbour; spheres and tori are smooth, pillows keep a round rim.
    assert _min_dihedral_cosine(mesh) > (0.0 if genus < 2 else -0.9)
    if genus == 0:  # star-shaped about the origin: every face sees it from inside
        assert (volume > 0).all()


def test_surfaces_are_distinct_deterministic_and_solved():
    family = SurfaceFamily(num_meshes=12, samples_per_mesh=2)
    hashes = {_geometry_hash(*family.mesh(i)) for i in range(family.num_meshes)}
    assert len(hashes) == family.num_meshes
    data, again = family.sample(4), SurfaceFamily(num_meshes=12, samples_per_mesh=2).sample(4)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    assert int(data["genus"]) == 1 and data["f_vertex"].shape == data["u_vertex"].shape == (2, len(data["vertices"]))
    np.testing.assert_allclose(data["u_face"], data["u_vertex"][:, data["faces"]].mean(axis=2))
    stiffness, mass = fem.p1_matrices(data["vertices"], data["faces"])
    residual = (stiffness + mass) @ data["u_vertex"].T - mass @ data["f_vertex"].T
    assert np.abs(residual).max() < 1e-12 * np.abs(data["f_vertex"]).max()


def test_surface_resolution_transfer_is_the_same_surface():
    family = SurfaceFamily(num_meshes=6)
    for mesh_id in range(3):
        (v1, f1), (v4, f4) = family.mesh(mesh_id), family.mesh(mesh_id, 4)
        if family.genus(mesh_id) < 2:
            assert len(f4) == 4 * len(f1)
        else:
            assert 3.2 < len(f4) / len(f1) < 4.8
        if family.genus(mesh_id) == 0:  # icosphere subdivision keeps the coarse vertices first
            np.testing.assert_allclose(v4[: len(v1)], v1, atol=1e-12)
            f_coarse, f_fine = family.sample(mesh_id)["f_vertex"], family.sample(mesh_id, 4)["f_vertex"]
            np.testing.assert_allclose(f_fine[:, : len(v1)], f_coarse, atol=1e-12)


def test_surface_inputs_are_checked():
    with pytest.raises(ValueError, match="power of 4"):
        SURFACES.mesh(0, resolution=2)
    with pytest.raises(ValueError, match="genus"):
        random_closed_surface(np.random.default_rng(0), -1)
    with pytest.raises(ValueError, match="genera"):
        SurfaceFamily(genera=())
    with pytest.raises(ValueError, match="mesh_id"):
        SURFACES.sample(12)


# -------------------------------------------------------------------- split and cache


def test_split_is_disjoint_by_geometry_and_stable_as_the_family_grows():
    train, test = DARCY.split()
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(DARCY.num_meshes))
    assert 0 < len(test) < len(train)
    train_hashes = {_geometry_hash(*DARCY.mesh(int(i))) for i in train}
    assert not train_hashes & {_geometry_hash(*DARCY.mesh(int(i))) for i in test}
    _, test_large = split_by_geometry(400, 0.2, DARCY.seed)
    assert np.isin(test, test_large).all()
    assert abs(len(test_large) / 400 - 0.2) < 0.06
    with pytest.raises(ValueError, match="one side empty"):
        split_by_geometry(1, 0.2, 0)


def test_family_parameters_are_checked():
    with pytest.raises(ValueError, match="num_meshes"):
        DarcyFamily(num_meshes=0)
    with pytest.raises(ValueError, match="faces"):
        DarcyFamily(faces=(500, 100))
    with pytest.raises(ValueError, match="test_fraction"):
        DarcyFamily(test_fraction=1.0)
    with pytest.raises(ValueError, match="resolution"):
        DARCY.mesh(0, resolution=0)
    with pytest.raises(ValueError, match="mesh_id"):
        DARCY.mesh(-1)


def test_cache_round_trip_and_parallel_generation(tmp_path):
    family = DarcyFamily(num_meshes=4)
    serial = generate_family(tmp_path, family)
    files = sorted((tmp_path / "darcy_family").glob("*.npz"))
    assert len(files) == 4
    parallel = generate_family(tmp_path / "other", family, workers=2)
    direct = family.sample(3)
    for a, b in zip(serial, parallel, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for key in direct:
        np.testing.assert_array_equal(serial[3][key], direct[key])
    # A different resolution or family size: resolution is a new file, num_meshes is not in the key.
    family.load(tmp_path, 3, resolution=4)
    DarcyFamily(num_meshes=10).load(tmp_path, 3)
    assert len(list((tmp_path / "darcy_family").glob("*.npz"))) == 5
