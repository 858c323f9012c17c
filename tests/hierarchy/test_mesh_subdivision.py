import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy, sphere_projection, subdivide
from geounet.testing import check_hierarchy


def _icosahedron():
    ico = trimesh.creation.icosahedron()
    return Mesh(ico.vertices, ico.faces)


def _assert_same_points(ours, reference, atol=1e-12):
    """The same point sets up to rounding: a one-to-one nearest-neighbour match within ``atol``.
    (Not equality after rounding to 10 decimals: coordinates computed in two ways, here and in
    trimesh with its own BLAS calls, can straddle a rounding boundary on some CPU.)"""
    distance, index = cKDTree(reference).query(ours)
    assert len(ours) == len(reference) and len(np.unique(index)) == len(reference)
    assert distance.max() < atol, distance.max()


def test_icosphere_passes_all_invariants_and_matches_trimesh():
    h = SubdivisionHierarchy(_icosahedron(), 4, project=sphere_projection)
    check_hierarchy(h)
    reference = trimesh.creation.icosphere(subdivisions=3)
    _assert_same_points(h.mesh.vertices, reference.vertices)
    np.testing.assert_allclose(h.mass(0).sum().item(), reference.area, rtol=1e-12)


def test_children_of_a_projected_icosphere_have_unequal_areas_and_weights_matter():
    h = SubdivisionHierarchy(_icosahedron(), 3, project=sphere_projection)
    areas = h.mass(2).reshape(-1, 4)
    assert (areas.max(1).values / areas.min(1).values).max() > 1.04
    x = torch.randn(1, h.num_nodes(2), 1, dtype=torch.float64)
    weighted = (x[0, :, 0].reshape(-1, 4) * areas).sum(1) / areas.sum(1)
    torch.testing.assert_close(h.restrict(x, 2)[0, :, 0], weighted)
    assert (h.restrict(x, 2)[0, :, 0] - x[0, :, 0].reshape(-1, 4).mean(1)).abs().max() > 1e-3


def test_midpoint_children_tile_their_parent():
    coarse = _icosahedron()
    fine = subdivide(coarse)
    np.testing.assert_allclose(fine.face_areas.reshape(-1, 4).sum(1), coarse.face_areas, rtol=1e-12)
    np.testing.assert_allclose(fine.face_areas.reshape(-1, 4), np.repeat(coarse.face_areas[:, None] / 4, 4, 1))
    # the middle child is inverted, the corner child d touches parent vertex d, orientation is kept
    children = fine.faces.reshape(-1, 4, 3)
    for d in range(3):
        np.testing.assert_array_equal(children[:, d, d], coarse.faces[:, d])
    np.testing.assert_allclose(
        fine.face_normals.reshape(-1, 4, 3), np.repeat(coarse.face_normals[:, None], 4, 1), atol=1e-12
    )


def test_loop_scheme_matches_trimesh_positions():
    coarse = _icosahedron()
    h = SubdivisionHierarchy(coarse, 3, scheme="loop")
    check_hierarchy(h)
    vertices, faces = trimesh.remesh.subdivide_loop(coarse.vertices, coarse.faces, iterations=2)
    _assert_same_points(h.mesh.vertices, vertices)
    assert len(faces) == h.mesh.num_faces


def test_planar_mesh_with_boundary():
    square = Mesh(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]), [[0, 1, 2], [0, 2, 3]])
    h = SubdivisionHierarchy(square, 4)
    check_hierarchy(h)
    assert h.graph(3).edge_attr.shape[1] == 4  # dx, dy, distance, shared length
    with pytest.raises(ValueError, match="closed meshes"):
        SubdivisionHierarchy(square, 2, scheme="loop")
    with pytest.raises(ValueError, match="scheme"):
        SubdivisionHierarchy(square, 2, scheme="butterfly")
