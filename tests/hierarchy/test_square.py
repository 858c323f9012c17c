import pytest
import torch
import torch.nn.functional as F

from geounet.hierarchy import SquareHaarHierarchy
from geounet.testing import check_hierarchy


@pytest.mark.parametrize("periodic", [False, True])
def test_square_passes_all_invariants(periodic):
    check_hierarchy(SquareHaarHierarchy(16, 5, periodic=periodic))


def test_restrict_is_bitwise_avg_pool2d():
    h = SquareHaarHierarchy(16, 3)
    image = torch.randn(3, 2, 16, 16)  # [B, C, H, W]
    nodes = image.permute(0, 2, 3, 1).reshape(3, 256, 2)
    restricted = h.restrict(nodes, 2).reshape(3, 8, 8, 2).permute(0, 3, 1, 2)
    assert torch.equal(restricted, F.avg_pool2d(image, 2))  # bitwise: avg_pool2d itself, the same 4 values in order


def test_prolong_is_nearest_upsampling():
    h = SquareHaarHierarchy(16, 3)
    image = torch.randn(2, 3, 8, 8)
    nodes = image.permute(0, 2, 3, 1).reshape(2, 64, 3)
    up = h.prolong(nodes, 1).reshape(2, 16, 16, 3).permute(0, 3, 1, 2)
    assert torch.equal(up, F.interpolate(image, scale_factor=2, mode="nearest"))  # copies only: exact
    assert torch.equal(up, image.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_multilevel_projection_is_block_mean():
    h = SquareHaarHierarchy(16, 4)
    image = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    nodes = image.permute(0, 2, 3, 1).reshape(1, 256, 1)
    coarse = h.project(nodes, 3, 0).reshape(1, 2, 2, 1).permute(0, 3, 1, 2)
    torch.testing.assert_close(coarse, F.avg_pool2d(image, 8), rtol=0, atol=1e-14)


def test_graph_stencil_geometry():
    h = SquareHaarHierarchy(4, 1)
    graph = h.graph(0)
    # interior node (1, 1) has 8 neighbours, corner (0, 0) has 3 on a bounded square
    assert int(graph.neighbour_mask[5].sum()) == 8
    assert int(graph.neighbour_mask[0].sum()) == 3
    periodic = SquareHaarHierarchy(4, 1, periodic=True).graph(0)
    assert bool(periodic.neighbour_mask.all())
    source, target = graph.edge_index
    displacement = graph.positions[source] - graph.positions[target]
    torch.testing.assert_close(displacement, graph.edge_attr[:, :2])


@pytest.mark.parametrize("size", [0, 3, 48, -4])
def test_size_must_be_power_of_two(size):
    with pytest.raises(ValueError, match="power of two"):
        SquareHaarHierarchy(size, 1)


def test_too_many_levels():
    with pytest.raises(ValueError, match="allows 1 to 5 levels"):
        SquareHaarHierarchy(16, 6)


def test_wrong_node_count_is_rejected():
    h = SquareHaarHierarchy(16, 3)
    with pytest.raises(ValueError, match=r"\[\.\.\., 256, channels\]"):
        h.restrict(torch.randn(1, 255, 1), 2)
    with pytest.raises(ValueError, match="level must be an int in"):
        h.restrict(torch.randn(1, 4, 1), 0)
