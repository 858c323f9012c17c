"""Welding relative to the mesh size, and cutting a mesh at its non-manifold edges."""

import warnings

import numpy as np
import pytest
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.geometry.mesh_repair import MeshRepairWarning, repair_mesh, split_nonmanifold_edges


def _unwelded_sphere(scale: float, jitter: float, seed: int = 0):
    """An icosphere stored as a triangle soup (three copies per face corner, like STL),
    every copy moved by ``jitter * scale``: a CAD export's round-off."""
    ico = trimesh.creation.icosphere(2)
    corners = ico.vertices[ico.faces].reshape(-1, 3) * scale
    corners += jitter * scale * np.random.default_rng(seed).standard_normal(corners.shape)
    return corners, np.arange(len(corners)).reshape(-1, 3), ico


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_welding_is_relative_to_the_mesh_size_and_counts_merges(scale):
    corners, faces, ico = _unwelded_sphere(scale, jitter=1e-16)
    with pytest.warns(MeshRepairWarning, match=rf"merged {len(corners) - len(ico.vertices)} vertices into others"):
        mesh = repair_mesh(corners, faces)
    assert mesh.num_vertices == len(ico.vertices) and len(mesh.boundary_edges) == 0


def test_weld_tolerance_separates_near_copies_from_distinct_vertices():
    corners, faces, ico = _unwelded_sphere(1.0, jitter=1e-6)  # copies 1e-6 apart; edges ~0.3 long
    with pytest.warns(MeshRepairWarning):
        loose = repair_mesh(corners, faces, weld_tol=1e-4)
    assert loose.num_vertices == len(ico.vertices)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing merges: a valid soup of separate faces, unchanged
        tight = repair_mesh(corners, faces)
    assert tight.num_vertices == len(corners) and len(tight.boundary_edges) == 3 * len(faces)
    with pytest.raises(ValueError, match="weld_tol"):
        repair_mesh(corners, faces, weld_tol=-1.0)


def test_exact_welding_only_with_zero_tolerance():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1e-12, 0], [1, 1, 0.0]])
    faces = np.array([[0, 1, 2], [3, 5, 2], [4, 5, 2]])
    with pytest.warns(MeshRepairWarning, match="merged 1 vertices into others at exactly the same position"):
        mesh = repair_mesh(vertices, faces, weld_tol=0.0)
    assert mesh.num_vertices == 5


def _three_fins():
    vertices = np.array([[0, 0, 0], [0, 0, 1], [1, 0, 0.5], [-1, 0, 0.5], [0, 1, 0.5]])
    return Mesh(vertices, np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]]))


def test_split_three_fins_gives_three_separate_fins():
    fins = _three_fins()
    split, origin = split_nonmanifold_edges(fins)
    assert split.is_manifold and split.num_faces == 3 and split.num_vertices == 9
    assert len(split.boundary_edges) == 9 and len(np.unique(split.face_components)) == 3
    np.testing.assert_array_equal(split.vertices, fins.vertices[origin])
    np.testing.assert_array_equal(origin[split.faces], fins.faces)  # same faces, new vertex copies
    np.testing.assert_array_equal(origin[:5], np.arange(5))  # originals keep their index


def test_split_two_closed_boxes_sharing_an_edge_gives_two_closed_boxes():
    first, second = trimesh.creation.box(), trimesh.creation.box()
    second.apply_translation([1.0, 1.0, 0.0])  # the boxes share the edge x = y = 0.5
    union = trimesh.util.concatenate([first, second])
    with pytest.warns(MeshRepairWarning, match="merged 2 vertices"):
        mesh = repair_mesh(union.vertices, union.faces)
    assert len(mesh.nonmanifold_edges) == 1 and len(mesh.boundary_edges) == 0
    split, _ = split_nonmanifold_edges(mesh)
    assert split.is_manifold and len(split.boundary_edges) == 0
    assert np.bincount(split.face_components).tolist() == [12, 12]
    np.testing.assert_allclose(split.area, 12.0)


def test_split_keeps_manifold_meshes_and_manifold_vertices():
    ico = trimesh.creation.icosphere(1)
    mesh = Mesh(ico.vertices, ico.faces)
    same, origin = split_nonmanifold_edges(mesh)
    assert same is mesh and (origin == np.arange(mesh.num_vertices)).all()
    # a fin glued to the sphere along one edge: only that edge's two vertices are split
    a, b = mesh.edges[0]
    tip = mesh.vertices[a] + mesh.vertices[b]
    finned = Mesh(np.concatenate([mesh.vertices, tip[None]]), np.concatenate([mesh.faces, [[a, b, mesh.num_vertices]]]))
    split, origin = split_nonmanifold_edges(finned)
    assert split.is_manifold and split.num_vertices == finned.num_vertices + 2
    assert sorted(origin[finned.num_vertices:].tolist()) == sorted([a, b])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        repaired = repair_mesh(finned.vertices, finned.faces)  # non-manifold input is valid, not repaired
    assert repaired.content_hash == finned.content_hash
