import numpy as np
import pytest
import torch
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.testing import check_hierarchy


def _torus():
    torus = trimesh.creation.torus(1.0, 0.3, major_sections=24, minor_sections=12)
    return Mesh(torus.vertices, torus.faces)


def test_clusters_pass_all_invariants_and_are_nested_and_balanced():
    mesh = _torus()
    h = ClusterHierarchy(mesh, 4)
    check_hierarchy(h)
    for level in range(1, 4):
        ratio = h.num_nodes(level) / h.num_nodes(level - 1)
        assert 3 < ratio < 6, ratio
        # labels of faces at level-1 are the parents of their level labels
        np.testing.assert_array_equal(h.face_labels(level - 1), h.parents(level).numpy()[h.face_labels(level)])
        mass = h.mass(level - 1).numpy()
        assert mass.max() / mass.mean() < 2.5


def test_clusters_are_connected_and_respect_components():
    mesh = _torus()
    two = Mesh(
        np.concatenate([mesh.vertices, mesh.vertices + 5]), np.concatenate([mesh.faces, mesh.faces + mesh.num_vertices])
    )
    h = ClusterHierarchy(two, 4)
    component = two.face_components
    for level in range(h.num_levels):
        labels = h.face_labels(level)
        for cell in np.unique(labels):
            faces = np.flatnonzero(labels == cell)
            assert len(np.unique(component[faces])) == 1
            sub = Mesh(*_submesh(two, faces))
            assert sub.face_components.max() == 0, f"cluster {cell} at level {level} is disconnected"


def _submesh(mesh, faces):
    used, inverse = np.unique(mesh.faces[faces], return_inverse=True)
    return mesh.vertices[used], inverse.reshape(-1, 3)


def test_graph_features_and_too_many_levels():
    h = ClusterHierarchy(_torus(), 3)
    g = h.graph(1)
    source, target = g.edge_index
    torch.testing.assert_close(g.positions[source] - g.positions[target], g.edge_attr[:, :3])
    torch.testing.assert_close(g.edge_attr[:, 3], g.edge_attr[:, :3].norm(dim=1))
    assert (g.edge_attr[:, 4] > 0).all()
    single = Mesh(np.eye(3), [[0, 1, 2]])
    with pytest.raises(ValueError, match="ask for at most 1 levels"):
        ClusterHierarchy(single, 2)


def test_deterministic_given_seed():
    a, b = ClusterHierarchy(_torus(), 3, seed=1), ClusterHierarchy(_torus(), 3, seed=1)
    np.testing.assert_array_equal(a.face_labels(0), b.face_labels(0))


def test_per_step_passes_match_cell_sizes_across_resolutions():
    """A 4x finer mesh of the torus with 2 more passes in its first coarsening has about the
    coarse cells of the original mesh (2 passes give ~4x, not exactly); without them its
    coarse levels have ~4x as many cells. 0 passes repeat a level."""
    coarse = _torus()
    fine = trimesh.creation.torus(1.0, 0.3, major_sections=48, minor_sections=24)
    fine = Mesh(fine.vertices, fine.faces)
    assert fine.num_faces == 4 * coarse.num_faces
    original = ClusterHierarchy(coarse, 4)
    matched = ClusterHierarchy(fine, 4, passes_per_level=[4, 2, 2])
    check_hierarchy(matched)
    unmatched = ClusterHierarchy(fine, 4)
    for level in (1, 2):
        assert 0.7 < matched.num_nodes(level) / original.num_nodes(level) < 1.4, level
        assert unmatched.num_nodes(level) / original.num_nodes(level) > 3, level
    repeated = ClusterHierarchy(coarse, 3, passes_per_level=[0, 2])
    check_hierarchy(repeated)
    assert repeated.num_nodes(1) == repeated.num_nodes(2) == coarse.num_faces
    x = torch.randn(2, coarse.num_faces, 3, dtype=torch.float64)
    torch.testing.assert_close(repeated.restrict(x, 2), x)  # V_1 = V_2: the projection is the identity
    for bad in ([2, 2], [2, -1, 2], 0):
        with pytest.raises(ValueError, match="passes_per_level"):
            ClusterHierarchy(coarse, 4, passes_per_level=bad)
