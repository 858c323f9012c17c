"""Property-based tests: every mesh hierarchy builder on randomly generated meshes."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial import Delaunay

from geounet.geometry.mesh_repair import MeshRepairWarning, repair_mesh
from geounet.hierarchy.batching import batch_hierarchies
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy
from geounet.testing import check_hierarchy

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def random_meshes(draw, min_points=12, max_points=60, subset=True):
    """A Delaunay triangulation of random points lifted to a random smooth surface,
    optionally with a random subset of faces kept (possibly disconnected)."""
    seed = draw(st.integers(0, 2**31 - 1))
    n = draw(st.integers(min_points, max_points))
    rng = np.random.default_rng(seed)
    points = rng.random((n, 2))
    faces = Delaunay(points).simplices.astype(np.int64)
    if subset and draw(st.booleans()):
        faces = faces[rng.random(len(faces)) < 0.7]
        if len(faces) == 0:
            faces = Delaunay(points).simplices[:1].astype(np.int64)
    height = 0.3 * np.sin(3 * points[:, 0] + rng.random()) * np.cos(2 * points[:, 1])
    vertices = np.concatenate([points, height[:, None]], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeshRepairWarning)  # unused vertices after taking a subset
        return repair_mesh(vertices, faces)


@SETTINGS
@given(random_meshes())
def test_cluster_hierarchy_on_random_meshes(mesh):
    try:
        h = ClusterHierarchy(mesh, 3)
    except ValueError as error:  # only legitimate failure: nothing left to merge
        assert "cannot coarsen" in str(error)
        return
    check_hierarchy(h)
    for level in range(h.num_levels):
        components = mesh.face_components
        labels = h.face_labels(level)
        # no cluster spans two connected components
        per_cell = np.zeros(h.num_nodes(level), dtype=np.int64) - 1
        per_cell[labels] = components
        assert (per_cell[labels] == components).all()


@SETTINGS
@given(random_meshes(max_points=30))
def test_subdivision_hierarchy_on_random_meshes(mesh):
    h = SubdivisionHierarchy(mesh, 3)
    check_hierarchy(h)
    np.testing.assert_allclose(h.mass(0).numpy(), mesh.face_areas, rtol=1e-12)


@SETTINGS
@given(random_meshes(min_points=30, subset=False), st.sampled_from(["neumann", "dirichlet"]))
def test_spectral_hierarchy_on_random_meshes(mesh, boundary):
    h = MeshSpectralHierarchy(mesh, [1, 5, 12], boundary=boundary, use_cache=False)
    check_hierarchy(h)


@SETTINGS
@given(random_meshes(), random_meshes())
def test_batching_random_meshes(first, second):
    parts = [SubdivisionHierarchy(first, 2), SubdivisionHierarchy(second, 2)]
    batched = batch_hierarchies(parts)
    check_hierarchy(batched)
    x = [torch.randn(1, h.num_nodes(1), 2, dtype=torch.float64) for h in parts]
    out = batched.split(batched.restrict(batched.join(x, 1), 1), 0)
    for h, xi, oi in zip(parts, x, out, strict=False):
        torch.testing.assert_close(oi, h.restrict(xi, 1))


@SETTINGS
@given(random_meshes(), st.integers(0, 2**31 - 1))
def test_repair_undoes_random_corruption(mesh, seed):
    """Duplicate faces / vertices, degenerate faces and NaN junk vertices are
    repaired back to the same surface (same faces up to relabelling, same area)."""
    rng = np.random.default_rng(seed)
    vertices, faces = mesh.vertices.copy(), mesh.faces.copy()
    copies = rng.integers(0, len(vertices), size=3)
    vertices = np.concatenate([vertices, vertices[copies], [[np.nan, 0, 0]]])
    alias = dict(zip(copies.tolist(), range(mesh.num_vertices, mesh.num_vertices + 3), strict=False))
    faces = np.where(rng.random(faces.shape) < 0.2, np.vectorize(lambda v: alias.get(v, v))(faces), faces)
    junk = np.concatenate([faces[rng.integers(0, len(faces), 2)], [[0, 0, 1]]])
    faces = np.concatenate([faces, junk])[rng.permutation(len(faces) + 3)]
    with pytest.warns(MeshRepairWarning):
        repaired = repair_mesh(vertices, faces)
    assert repaired.num_faces == mesh.num_faces
    np.testing.assert_allclose(repaired.area, mesh.area, rtol=1e-12)
    np.testing.assert_allclose(np.sort(repaired.face_areas), np.sort(mesh.face_areas), rtol=1e-12)
