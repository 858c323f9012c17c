"""The face-ordered HEALPix Haar hierarchy: the NEST hierarchy's spaces with its nodes renumbered."""

import healpy as hp
import numpy as np
import pytest
import torch

from geounet.geometry.healpix import from_nest, nest_of_face
from geounet.hierarchy import (
    HealpixFaceHierarchy,
    HealpixHaarHierarchy,
    face_nodes_from_nest,
    finest_levels,
    load_hierarchy,
    nest_from_face_nodes,
    save_hierarchy,
)
from geounet.nn.fused_prolong import prolong_concat
from geounet.testing import check_hierarchy


def test_passes_all_invariants():
    check_hierarchy(HealpixFaceHierarchy(16, 5))


def test_node_order_is_the_flattened_face_layout_of_dlwp():
    """Node f n² + h n + w is image[f, h, w] of the "face" layout, so a [B, N, C] tensor is the
    channels-last face images [B, 12, n, n, C] without a copy."""
    nest = torch.randn(2, 12 * 16, 3, dtype=torch.float64)
    nodes = face_nodes_from_nest(nest)
    images = from_nest(nest, "face", channels_last=True)  # [2, 12, 4, 4, 3]
    assert torch.equal(nodes.view(2, 12, 4, 4, 3), images)
    assert torch.equal(nest_from_face_nodes(nodes), nest)


@pytest.mark.parametrize("level", [1, 2, 3])
def test_restrict_and_prolong_equal_the_nest_hierarchys_after_reordering(level):
    face, nest = HealpixFaceHierarchy(8, 4), HealpixHaarHierarchy(8, 4)
    x = torch.randn(2, nest.num_nodes(level), 3, dtype=torch.float64)
    restricted = face.restrict(face_nodes_from_nest(x), level)
    torch.testing.assert_close(restricted, face_nodes_from_nest(nest.restrict(x, level)), rtol=0, atol=1e-15)
    coarse = torch.randn(2, nest.num_nodes(level - 1), 3, dtype=torch.float64)
    assert torch.equal(face.prolong(face_nodes_from_nest(coarse), level - 1),
                       face_nodes_from_nest(nest.prolong(coarse, level - 1)))  # copies only: exact


def test_restrict_is_the_l2_projection_and_inverts_prolong():
    """P ι = id, and <P x, u>_coarse = <x, ι u>_fine (P is the adjoint of ι in the mass inner products)."""
    h = HealpixFaceHierarchy(8, 3)
    x = torch.randn(3, h.num_nodes(2), 2, dtype=torch.float64)
    u = torch.randn(3, h.num_nodes(1), 2, dtype=torch.float64)
    assert torch.equal(h.restrict(h.prolong(u, 1), 2), u)
    torch.testing.assert_close(h.inner(h.restrict(x, 2), u, 1), h.inner(x, h.prolong(u, 1), 2), rtol=1e-13, atol=0)


def test_restrict_equals_healpy_ud_grade_in_face_order():
    h = HealpixFaceHierarchy(8, 2)
    x = torch.randn(1, h.num_nodes(1), 1, dtype=torch.float64)
    ref = hp.ud_grade(nest_from_face_nodes(x)[0, :, 0].numpy(), 4, order_in="NEST", power=None)
    np.testing.assert_allclose(nest_from_face_nodes(h.restrict(x, 1))[0, :, 0].numpy(), ref, rtol=0, atol=1e-15)


def test_level_graph_is_the_nest_graph_renumbered():
    face, nest = HealpixFaceHierarchy(4, 2), HealpixHaarHierarchy(4, 2)
    order = nest_of_face(4, "face").reshape(-1)  # node -> NEST pixel
    node = torch.argsort(order)
    graph, ref = face.graph(1), nest.graph(1)
    assert torch.equal(order[graph.neighbours.long()], ref.neighbours[order].long())
    assert torch.equal(graph.neighbour_mask, ref.neighbour_mask[order])
    assert torch.equal(graph.positions, ref.positions[order])
    assert torch.equal(graph.neighbour_attr, ref.neighbour_attr[order])
    assert torch.equal(node[order], torch.arange(order.numel()))


def test_prolong_layout_is_the_fused_decoders_view():
    h = HealpixFaceHierarchy(8, 3)
    coarse, fine = torch.randn(2, h.num_nodes(1), 3), torch.randn(2, h.num_nodes(2), 5)
    joined = prolong_concat(coarse, fine, h.prolong_layout(1))
    assert torch.equal(joined, torch.cat([h.prolong(coarse, 1), fine], -1))


def test_capabilities_name_the_face_layout_not_nest():
    h = HealpixFaceHierarchy(8, 3)
    assert [h.healpix_face_nside(i) for i in range(3)] == [2, 4, 8]
    assert h.healpix_nside(2) is None
    assert finest_levels(h, 2).healpix_face_nside(0) == 4
    assert HealpixHaarHierarchy(8, 3).healpix_face_nside(2) is None


def test_rotation_symmetry_moves_whole_faces():
    """rotate_90 about the polar axis in face order: the same face permutation as NEST's, and it
    commutes with restriction."""
    h = HealpixFaceHierarchy(4, 2)
    perm = h.node_symmetries()["rotate_90"]
    nest_perm = HealpixHaarHierarchy(4, 2).node_symmetries()["rotate_90"]
    order = nest_of_face(4, "face").reshape(-1)
    assert torch.equal(order[perm], nest_perm[order])
    x = torch.randn(1, 192, 2, dtype=torch.float64)
    coarse_perm = HealpixFaceHierarchy(2, 1).node_symmetries()["rotate_90"]
    assert torch.equal(h.restrict(x[:, perm], 1), h.restrict(x, 1)[:, coarse_perm])


def test_saves_and_loads_as_data(tmp_path):
    h = HealpixFaceHierarchy(4, 2).materialize()
    save_hierarchy(h, tmp_path / "face.pt")
    loaded = load_hierarchy(tmp_path / "face.pt")
    assert loaded.kind == "HealpixFaceHierarchy"
    assert torch.equal(loaded.graph(1).neighbours, h.graph(1).neighbours)
    assert torch.equal(loaded.graph(1).neighbour_attr, h.graph(1).neighbour_attr)
