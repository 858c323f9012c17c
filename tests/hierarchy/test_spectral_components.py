"""Spectral hierarchies on meshes of several parts and non-manifold meshes (solved per
component), and their dependence on the mesh's unit (``normalize``)."""

import numpy as np
import pytest
import scipy.linalg
import torch
import trimesh

from geounet.geometry import eigensolver
from geounet.geometry.laplacian import laplacian_eigenbasis, stiffness_matrix
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.testing import check_constants_and_integrals, check_mass, check_nestedness, check_orthogonal_projection


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


def _joined(*meshes: trimesh.Trimesh, spacing: float = 5.0) -> Mesh:
    """The parts side by side as one mesh (one connected component each)."""
    vertices, faces, offset = [], [], 0
    for i, part in enumerate(meshes):
        vertices.append(np.asarray(part.vertices) + [spacing * i, 0, 0])
        faces.append(np.asarray(part.faces) + offset)
        offset += len(part.vertices)
    return Mesh(np.concatenate(vertices), np.concatenate(faces))


def _box(extents) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=extents)
    return trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(box.vertices, box.faces, 0.3))


def _dense_spectrum(mesh: Mesh, vertices: np.ndarray) -> np.ndarray:
    """Every eigenvalue of one component's pencil, by scipy's dense solver."""
    stiffness = mesh.cotangent_laplacian.toarray()[np.ix_(vertices, vertices)]
    return scipy.linalg.eigh(stiffness, np.diag(mesh.lumped_mass[vertices]), eigvals_only=True)


def test_two_components_give_the_union_of_their_spectra():
    sphere = trimesh.creation.icosphere(subdivisions=3)  # 642 vertices: the sparse path
    box = _box([1.0, 1.3, 0.7])
    mesh = _joined(sphere, box)
    parts = [np.arange(len(sphere.vertices)), len(sphere.vertices) + np.arange(len(box.vertices))]
    values, vectors = laplacian_eigenbasis(mesh, 40, use_cache=False)
    expected = np.sort(np.concatenate([_dense_spectrum(mesh, part) for part in parts]))[:40]
    np.testing.assert_allclose(values, expected, rtol=1e-8, atol=1e-10)
    assert values[0] == values[1] == 0.0 and values[2] > 0  # one constant per component
    np.testing.assert_allclose(vectors.T @ (mesh.lumped_mass[:, None] * vectors), np.eye(40), atol=1e-9)
    residual = mesh.cotangent_laplacian @ vectors - mesh.lumped_mass[:, None] * vectors * values
    assert np.abs(residual).max() < 1e-7
    # every function but the first (the global constant) lives on one component, except the
    # second, the other direction of the two-dimensional null space
    support = np.stack([np.abs(vectors[part]).max(axis=0) > 1e-12 for part in parts])
    assert support[:, 2:].sum(axis=0).tolist() == [1] * 38


def _tube(radius: float, length: float, rings: int, sections: int) -> trimesh.Trimesh:
    """An open tube: ``rings`` circles of ``sections`` vertices along x."""
    x, angle = np.linspace(0, length, rings), np.linspace(0, 2 * np.pi, sections, endpoint=False)
    vertices = np.stack([np.repeat(x, sections), radius * np.tile(np.cos(angle), rings),
                         radius * np.tile(np.sin(angle), rings)], axis=1)
    ring, j = np.arange(rings - 1)[:, None] * sections, np.arange(sections)[None]
    a, b = (ring + j).ravel(), (ring + (j + 1) % sections).ravel()
    c, d = a + sections, b + sections
    return trimesh.Trimesh(vertices, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]), process=False)


def test_merging_asks_components_for_more_until_the_union_is_exact(monkeypatch):
    """A long thin tube has far more low eigenvalues than its area says (its axial modes
    (πk/ℓ)² are one-dimensional); the Weyl estimate by area asks it for too few, and the
    merge must solve it again (negative control: its first answer alone is wrong)."""
    sphere, tube = trimesh.creation.icosphere(subdivisions=2, radius=3.0), _tube(0.05, 40.0, 60, 8)
    mesh = _joined(sphere, tube, spacing=10.0)  # tube: 480 vertices (solved sparse), 1 % of the area
    answers = []
    original = eigensolver._component

    def recording(stiffness, mass, want):
        answers.append(original(stiffness, mass, want))
        return answers[-1]

    monkeypatch.setattr(eigensolver, "_component", recording)
    values, _ = eigensolver.componentwise_eigenpairs(mesh.cotangent_laplacian, mesh.lumped_mass, 60)
    parts = [np.arange(len(sphere.vertices)), len(sphere.vertices) + np.arange(len(tube.vertices))]
    spectra = [_dense_spectrum(mesh, part) for part in parts]
    np.testing.assert_allclose(values, np.sort(np.concatenate(spectra))[:60], rtol=1e-8, atol=1e-10)
    assert len(answers) == 3  # sphere (dense), tube, tube again
    first_try = np.sort(np.concatenate([answers[0][0], answers[1][0]]))[:60]
    assert not np.allclose(first_try, values)


def test_a_mesh_of_many_alike_parts_finishes_and_passes_the_invariants():
    """Twenty parts, congruent in pairs of kinds: the whole-mesh Lanczos solve met a
    20-fold zero eigenvalue and repeated eigenvalues; per component it is quick and exact."""
    parts = [trimesh.creation.icosphere(subdivisions=2, radius=1 + 0.05 * i) if i % 2 else _box([1, 1 + 0.05 * i, 1])
             for i in range(20)]
    mesh = _joined(*parts)
    h = MeshSpectralHierarchy(mesh, [20, 40, 64])
    assert h.band_limits[0] == 20 and np.all(h.eigenvalues[:20] == 0) and h.eigenvalues[20] > 0
    _check_spaces(h)


def test_two_tetrahedra_sharing_an_edge_finish_with_the_robust_laplacian():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0.4, 1], [0.5, -1, 0.2], [0.5, -0.3, -1.0]])
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3], [0, 1, 4], [0, 1, 5], [0, 4, 5], [1, 4, 5]])
    mesh = Mesh(vertices, faces)
    assert not mesh.is_manifold
    values, vectors = laplacian_eigenbasis(mesh, 5, use_cache=False)
    stiffness = stiffness_matrix(mesh, "robust").toarray()
    expected = scipy.linalg.eigh(stiffness, np.diag(mesh.lumped_mass), eigvals_only=True)[:5]
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-12)


def test_joined_procedural_shapes_with_a_fin_finish():
    """trimesh's procedural shapes, one with a non-manifold fin, as one mesh of three parts."""
    sphere = trimesh.creation.icosphere(subdivisions=3)
    a, b = sphere.edges_unique[0]
    tip = 0.5 * (sphere.vertices[a] + sphere.vertices[b]) + [0, 0, 0.4]
    finned = trimesh.Trimesh(np.vstack([sphere.vertices, tip]), np.vstack([sphere.faces, [a, b, len(sphere.vertices)]]),
                             process=False)
    mesh = _joined(finned, _box([1, 2, 1]), trimesh.creation.cylinder(radius=0.5, height=1.5, sections=24))
    assert not mesh.is_manifold
    h = MeshSpectralHierarchy(mesh, [3, 12, 30])
    _check_spaces(h)


def _outputs(h: MeshSpectralHierarchy, x: torch.Tensor) -> list[torch.Tensor]:
    """Everything a model sees of a hierarchy: transfers of ``x``, masses and edge features."""
    out, values = [], x
    for level in range(h.finest_level, 0, -1):
        values = h.restrict(values, level)
        out += [values, h.prolong(values, level - 1), h.mass(level), h.graph(level).edge_attr]
    return [*out, h.mass(0), h.graph(0).edge_attr]


def test_normalize_makes_the_hierarchy_independent_of_the_unit():
    """Parts without symmetry (jittered), so every eigenvalue is simple and the bases are
    unique up to the sign the solver fixes; within a degenerate eigenspace two meshes that
    differ by round-off may get rotated bases of the same level spaces."""
    rng = np.random.default_rng(0)
    parts = [trimesh.creation.icosphere(subdivisions=2), _box([1, 2, 1])]
    for part in parts:
        part.vertices = part.vertices * (1 + 0.05 * rng.standard_normal((len(part.vertices), 1)))
    mesh = _joined(*parts)
    in_mm = Mesh(mesh.vertices * 1000.0, mesh.faces)
    x = torch.randn(2, mesh.num_vertices, 3, dtype=torch.float64)
    metres, millimetres = (MeshSpectralHierarchy(m, [4, 16], normalize=True) for m in (mesh, in_mm))
    for a, b in zip(_outputs(metres, x), _outputs(millimetres, x), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    # negative control: without it, masses and edge features change with the unit
    plain = [MeshSpectralHierarchy(m, [4, 16]) for m in (mesh, in_mm)]
    torch.testing.assert_close(plain[1].mass(0), plain[0].mass(0) * 1e6)
    torch.testing.assert_close(plain[1].graph(1).edge_attr, plain[0].graph(1).edge_attr * 1e-6)
    torch.testing.assert_close(plain[1].restrict(x, 2), plain[0].restrict(x, 2))  # the transfers do not


def test_a_solver_failure_names_the_band_limits(monkeypatch):
    from geounet.hierarchy import mesh_spectral

    def fail(*args):
        raise eigensolver.EigensolverError("eigsh missed eigenvalues")

    monkeypatch.setattr(mesh_spectral, "laplacian_eigenbasis", fail)
    with pytest.raises(ValueError, match=r"band_limits=\[4, 9\]: .* change the largest band limit") as error:
        MeshSpectralHierarchy(Mesh(*_faces_of(trimesh.creation.icosphere(2))), [4, 9])
    assert "num=" not in str(error.value)


def _faces_of(part: trimesh.Trimesh):
    return part.vertices, part.faces


def _check_spaces(h: MeshSpectralHierarchy) -> None:
    """The invariants of the spaces (the full check_hierarchy gradchecks every level of a
    few-thousand-vertex mesh, minutes on the CI machine)."""
    for check in (check_mass, check_nestedness, check_orthogonal_projection, check_constants_and_integrals):
        check(h)
