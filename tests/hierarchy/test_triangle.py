import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geounet.geometry.triangle import (
    address_strings,
    address_to_square,
    addresses,
    representative_points,
    square_to_address,
)
from geounet.hierarchy.triangle import TriangleHierarchy
from geounet.testing import check_hierarchy


@pytest.mark.parametrize("coarsest_depth", [0, 2])
def test_triangle_passes_all_invariants(coarsest_depth):
    check_hierarchy(TriangleHierarchy(4, coarsest_depth))


def test_children_are_equal_area_and_cover_the_triangle():
    h = TriangleHierarchy(4)
    for level in range(h.num_levels):
        mass = h.mass(level)
        torch.testing.assert_close(mass, torch.full_like(mass, 0.5 / 4**level), rtol=1e-13, atol=0)


def test_cells_are_the_ifs_images():
    """Cell n of the subdivision is f_{a1} ∘ ... ∘ f_{aJ}(T) (the paper's §3.2), for the centroid."""
    h = TriangleHierarchy(5)
    for level in range(h.num_levels):
        positions = h.graph(level).positions.numpy()
        np.testing.assert_allclose(positions, representative_points(level), atol=1e-15)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_representative_points_pool_like_the_paper(depth):
    """All points inside T and distinct; 2x2 pooling of the square array gives the coarser array."""
    points = representative_points(depth)
    assert (points > 0).all() and (points.sum(1) < 1).all()
    assert len(np.unique(points.round(12), axis=0)) == 4**depth
    side = 2**depth
    image = points[square_to_address(depth)].reshape(side, side, 2)
    pooled = image.reshape(side // 2, 2, side // 2, 2, 2).mean(axis=(1, 3))
    coarse = representative_points(depth - 1)[square_to_address(depth - 1)].reshape(side // 2, side // 2, 2)
    np.testing.assert_allclose(pooled, coarse, atol=1e-15)


def test_square_layout_is_the_string_kronecker_product():
    for depth in range(4):
        strings = address_strings(depth).reshape(-1)
        digits = addresses(depth)
        square = address_to_square(depth)
        for n in range(4**depth):
            assert strings[square[n]] == "".join(map(str, digits[n]))


def test_triangle_restrict_equals_square_restrict_after_relabelling():
    h = TriangleHierarchy(4, coarsest_depth=1)
    square = h.square_hierarchy()
    x = torch.randn(3, h.num_nodes(3), 2, dtype=torch.float64)
    for level in range(3, 0, -1):
        expected = h.to_square(h.restrict(x, level), level - 1)
        torch.testing.assert_close(square.restrict(h.to_square(x, level), level), expected, rtol=0, atol=1e-15)
        c = torch.randn(2, h.num_nodes(level - 1), 2, dtype=torch.float64)
        torch.testing.assert_close(
            square.prolong(h.to_square(c, level - 1), level - 1), h.to_square(h.prolong(c, level - 1), level)
        )
        x = h.restrict(x, level)
    # and the square layout is avg_pool2d of the image
    side = 2**3
    image = torch.randn(1, 1, side, side, dtype=torch.float64)
    nodes = image.permute(0, 2, 3, 1).reshape(1, side * side, 1)
    tri = h.restrict(h.from_square(nodes, 2), 2)
    torch.testing.assert_close(
        h.to_square(tri, 1).reshape(1, side // 2, side // 2, 1).permute(0, 3, 1, 2), F.avg_pool2d(image, 2)
    )


def test_to_square_roundtrip():
    h = TriangleHierarchy(3)
    x = torch.randn(2, 16, 3)
    torch.testing.assert_close(h.from_square(h.to_square(x, 2), 2), x, rtol=0, atol=0)  # an index permutation: exact


def test_graph_is_face_adjacency():
    h = TriangleHierarchy(3)
    g = h.graph(2)
    # 16 cells of a triangle: 3 corner cells have 1 neighbour... every interior edge counted twice
    num_interior_edges = (3 * 16 - 3 * 4) // 2
    assert g.num_edges == 2 * num_interior_edges
    source, target = g.edge_index
    torch.testing.assert_close(g.positions[source] - g.positions[target], g.edge_attr[:, :2])
    lengths = g.edge_attr[:, 3]
    assert set(lengths.numpy().round(12)) == {0.25, round(0.25 * 2**0.5, 12)}
    # every cell edge has length perimeter/4; interior ones are shared by two cells, both directions
    perimeter = 2 + 2**0.5
    assert abs(lengths.sum().item() - (16 * perimeter / 4 - perimeter)) < 1e-12


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_levels"):
        TriangleHierarchy(0)
    with pytest.raises(ValueError, match="coarsest_depth"):
        TriangleHierarchy(2, -1)
