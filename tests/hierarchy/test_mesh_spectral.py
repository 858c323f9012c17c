import numpy as np
import pytest
import scipy.linalg
import torch
import trimesh

from geounet.geometry import eigensolver, laplacian
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy, cut_at_gaps, laplacian_eigenbasis
from geounet.testing import check_hierarchy


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path / "cache"))


def _sphere(subdivisions):
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(ico.vertices, ico.faces)


def _disc():
    from skfem import MeshTri

    fem = MeshTri.init_circle(3)
    return Mesh(fem.p.T, fem.t.T)


def test_unit_sphere_eigenvalues_converge_to_l_l_plus_1():
    exact = np.repeat([0, 2, 6, 12], [1, 3, 5, 7])
    errors = []
    for subdivisions in (2, 3, 4):
        values, _ = laplacian_eigenbasis(_sphere(subdivisions), 16, use_cache=False)
        errors.append(np.abs(values - exact).max())
    assert errors[-1] < 0.05
    assert errors[0] > 2.5 * errors[1] > 2.5 * 2.5 * errors[2]  # ~ 4x per refinement (O(h^2))


@pytest.mark.parametrize("boundary", ["neumann", "dirichlet"])
def test_eigenbasis_matches_dense_scipy(boundary):
    mesh = _sphere(1) if boundary == "neumann" else _disc()
    values, vectors = laplacian_eigenbasis(mesh, 12, boundary=boundary, use_cache=False)
    free = np.ones(mesh.num_vertices, bool)
    if boundary == "dirichlet":
        free[mesh.boundary_vertices] = False
        np.testing.assert_array_equal(vectors[~free], 0)
    stiffness = mesh.cotangent_laplacian.toarray()[np.ix_(free, free)]
    reference = scipy.linalg.eigh(stiffness, np.diag(mesh.lumped_mass[free]), eigvals_only=True)[:12]
    np.testing.assert_allclose(values, reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(vectors.T @ (mesh.lumped_mass[:, None] * vectors), np.eye(12), atol=1e-10)
    residual = mesh.cotangent_laplacian @ vectors - mesh.lumped_mass[:, None] * vectors * values
    assert np.abs(residual[free]).max() < 1e-8


def test_band_limits_are_cut_at_spectral_gaps_on_the_sphere():
    h = MeshSpectralHierarchy(_sphere(3), [2, 5, 10, 17])
    assert h.band_limits == [1, 4, 9, 16]
    with pytest.raises(ValueError, match="degenerate eigenspace"):
        cut_at_gaps(np.array([0.0, 2, 2, 2, 6]), [1, 3], 1e-3)


@pytest.mark.parametrize(
    ("mesh", "kwargs"),
    [
        (_sphere(2), {"band_limits": [1, 4, 9, 16]}),
        (_sphere(2), {"band_limits": [4, 9], "laplacian": "graph"}),
        (_disc(), {"band_limits": [3, 10, 20], "boundary": "dirichlet"}),
        (_disc(), {"band_limits": [3, 10, 20], "vertex_level": False}),
    ],
)
def test_spectral_hierarchy_passes_all_invariants(mesh, kwargs):
    h = MeshSpectralHierarchy(mesh, **kwargs)
    check_hierarchy(h)


def test_coefficients_carry_constants_and_projection_is_truncation():
    mesh = _sphere(2)
    h = MeshSpectralHierarchy(mesh, [1, 4, 9])
    top = h.finest_level
    ones = torch.ones(1, mesh.num_vertices, 1, dtype=torch.float64)
    torch.testing.assert_close(h.restrict(ones, top), torch.ones(1, 9, 1, dtype=torch.float64))
    torch.testing.assert_close(h.synthesize(torch.ones(1, 4, 1, dtype=torch.float64), 1), ones)
    # restricting vertex values equals the M-orthogonal projection onto span(ψ_0..ψ_8)
    _, psi = laplacian_eigenbasis(mesh, 9, use_cache=False)
    x = torch.randn(2, mesh.num_vertices, 3, dtype=torch.float64)
    m = torch.from_numpy(mesh.lumped_mass)[:, None]
    psi_t = torch.from_numpy(psi)
    expected = psi_t @ (psi_t.T @ (m * x))
    torch.testing.assert_close(h.prolong(h.restrict(x, top), top - 1), expected)
    torch.testing.assert_close(h.synthesize(h.analyze(x, 2), 2), expected)
    # graph: Galerkin Laplacian on the level (eigenvalue 2 on the l = 1 band)
    g = h.graph(1)
    assert g.edge_index.shape[1] == 12 and g.edge_attr.shape == (12, 1)


def test_eigenbasis_cache_is_hit_and_written_atomically(tmp_path, monkeypatch):
    mesh = _sphere(1)
    values, vectors = laplacian_eigenbasis(mesh, 6)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith("."))  # not the build lock
    assert len(files) == 2 and files[0].endswith(".npy") and files[1] == files[0] + ".manifest.json"
    assert (tmp_path / "cache" / f".{files[0]}.lock").is_file()  # kept: removing a lock others wait on is a race

    def fail(*args):
        raise AssertionError("cache miss")

    monkeypatch.setattr(laplacian, "_solve", fail)
    cached_values, cached_vectors = laplacian_eigenbasis(Mesh(mesh.vertices, mesh.faces), 6)
    np.testing.assert_array_equal(cached_values, values)
    np.testing.assert_array_equal(cached_vectors, vectors)
    with pytest.raises(AssertionError, match="cache miss"):
        laplacian_eigenbasis(mesh, 6, boundary="neumann", kind="graph")


def test_bad_arguments():
    with pytest.raises(ValueError, match="needs a mesh with boundary"):
        MeshSpectralHierarchy(_sphere(1), [1, 4], boundary="dirichlet")
    with pytest.raises(ValueError, match="increasing"):
        MeshSpectralHierarchy(_sphere(1), [4, 1])
    with pytest.raises(ValueError, match="boundary must be"):
        laplacian_eigenbasis(_sphere(1), 4, boundary="robin")


def test_missed_degenerate_eigenvalues_are_detected_by_inertia():
    """A Krylov solve that misses a copy of a degenerate eigenvalue must be caught."""
    import scipy.sparse as sp

    mesh = _sphere(2)
    values, _ = laplacian_eigenbasis(mesh, 12, use_cache=False)
    stiffness, mass = mesh.cotangent_laplacian.tocsc(), sp.diags(mesh.lumped_mass)
    assert eigensolver._certified(stiffness, mass, values)
    missed = np.delete(values, 2)  # one of the three l = 1 eigenvalues lost
    assert not eigensolver._certified(stiffness, mass, np.append(missed, values[-1] + 1.0))
