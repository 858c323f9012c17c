import healpy as hp
import numpy as np
import pytest
import torch

from geounet.geometry.healpix import edge_geometry, missing_neighbours, neighbour_table, pixel_vectors
from geounet.hierarchy.healpix import HealpixHaarHierarchy, healpix_level_graph
from geounet.hierarchy.memory import MemoryLimitError
from geounet.testing import check_device_consistency, check_hierarchy


def test_passes_all_invariants():
    check_hierarchy(HealpixHaarHierarchy(16, 5))


def test_restrict_equals_healpy_ud_grade_exactly():
    h = HealpixHaarHierarchy(16, 3)
    x = torch.randn(2, 12 * 16**2, 3, dtype=torch.float64)
    one_step = h.restrict(x, 2)  # nside 16 -> 8: bitwise healpy
    two_steps = h.project(x, 2, 0)  # nside 16 -> 4: mean of means, equal to round-off
    for b in range(2):
        for c in range(3):
            ref = hp.ud_grade(x[b, :, c].numpy(), 8, order_in="NEST", order_out="NEST", power=None)
            assert np.array_equal(one_step[b, :, c].numpy(), ref)  # bitwise: ((a+b)+c)+d / 4 on both sides
            ref = hp.ud_grade(x[b, :, c].numpy(), 4, order_in="NEST", order_out="NEST", power=None)
            np.testing.assert_allclose(two_steps[b, :, c].numpy(), ref, rtol=0, atol=1e-15)


def test_prolong_equals_healpy_ud_grade_up():
    h = HealpixHaarHierarchy(8, 2)
    x = torch.randn(1, 12 * 16, 1, dtype=torch.float64)
    ref = hp.ud_grade(x[0, :, 0].numpy(), 8, order_in="NEST", order_out="NEST", power=None)
    assert np.array_equal(h.prolong(x, 0)[0, :, 0].numpy(), ref)  # copies only: exact


def test_float32_batched_shapes_and_masses():
    h = HealpixHaarHierarchy(4, 3)
    x = torch.randn(2, 5, h.num_nodes(2), 7)
    assert h.restrict(x, 2).shape == (2, 5, 48, 7)
    assert h.prolong(h.restrict(x, 2), 1).dtype == torch.float32
    assert [h.nside_at(i) for i in range(3)] == [1, 2, 4]
    torch.testing.assert_close(h.mass(1).sum().item(), 4 * np.pi)


@pytest.mark.parametrize("nside", [1, 2, 4, 8, 32])
def test_neighbour_table_equals_healpy(nside):
    ref = hp.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True).T
    assert np.array_equal(neighbour_table(nside).numpy(), ref)


@pytest.mark.parametrize("nside", [1, 2, 16, 128])
def test_int32_table_and_missing_slots(nside):
    """The int32 table is healpy's, and missing_neighbours finds its -1 entries without it."""
    table = neighbour_table(nside, torch.int32)
    assert table.dtype == torch.int32
    ref = hp.get_all_neighbours(nside, np.arange(12 * nside**2), nest=True).T
    assert np.array_equal(table.numpy(), ref)
    pixels, slots = missing_neighbours(nside)
    assert len(pixels) == 24
    assert torch.equal(torch.stack([pixels, slots], 1), (table < 0).nonzero())


def test_graph_stores_the_table_once():
    """Only the int32 table and its mask are stored; edge lists and geometry are derived on
    access, also after .to() and pickling, and agree with the table."""
    import pickle

    h = HealpixHaarHierarchy(8, 2).materialize()
    for graph in (h.graph(1), h.to(dtype=torch.float32).graph(1), pickle.loads(pickle.dumps(h)).graph(1)):
        assert graph.neighbours.dtype == torch.int32
        assert all(graph.stored(name) is None for name in ("edge_index", "edge_attr", "positions", "neighbour_attr"))
        assert graph.num_edges == 768 * 8 - 24
        assert graph.edge_index.shape == (2, graph.num_edges) and graph.edge_attr.shape == (graph.num_edges, 3)
        assert graph.stored("edge_index") is None  # still not stored after being asked for
        torch.testing.assert_close(graph.positions, pixel_vectors(8))


@pytest.mark.parametrize("nside", [2, 8])
def test_seven_neighbour_pixels(nside):
    """24 pixels (3 around each of the 8 three-face vertices) have 7 neighbours."""
    graph = healpix_level_graph(nside)
    degree = graph.neighbour_mask.sum(1)
    assert int((degree == 7).sum()) == 24 and int((degree == 8).sum()) == 12 * nside**2 - 24
    # a missing slot points at the node itself and carries no geometry
    rows, slots = (~graph.neighbour_mask).nonzero().unbind(1)
    assert torch.equal(graph.neighbours[rows, slots], rows)
    assert (graph.neighbour_attr[rows, slots] == 0).all()  # filled with zeros, not computed
    # the 3 pixels at one vertex are mutual neighbours and touch the same 3 faces
    x, y, f = hp.pix2xyf(nside, rows.numpy(), nest=True)
    corners = {(0, 0), (nside - 1, nside - 1), (0, nside - 1), (nside - 1, 0)}
    assert set(zip(x.tolist(), y.tolist(), strict=True)) <= corners


def test_base_pixels_have_six_neighbours():
    graph = healpix_level_graph(1)
    assert torch.equal(graph.neighbour_mask.sum(1), torch.full((12,), 6))
    for pixel in range(12):  # no duplicates, never the pixel itself
        real = graph.neighbours[pixel][graph.neighbour_mask[pixel]]
        assert len(set(real.tolist())) == 6 and pixel not in real.tolist()


def test_edge_index_matches_neighbour_table():
    graph = healpix_level_graph(4)
    rows, slots = graph.neighbour_mask.nonzero().unbind(1)  # target-major order
    assert torch.equal(graph.edge_index[1], rows)
    assert torch.equal(graph.edge_index[0], graph.neighbours[rows, slots])
    assert torch.equal(graph.edge_attr, graph.neighbour_attr[rows, slots])


def test_edge_geometry_against_spherical_trigonometry():
    """east = sin θ' sin(φ' - φ), north = sin θ cos θ' - cos θ sin θ' cos(φ' - φ)."""
    nside = 8
    graph = healpix_level_graph(nside)
    source, target = graph.edge_index.numpy()
    theta_t, phi_t = hp.pix2ang(nside, target, nest=True)
    theta_s, phi_s = hp.pix2ang(nside, source, nest=True)
    east = np.sin(theta_s) * np.sin(phi_s - phi_t)
    north = np.sin(theta_t) * np.cos(theta_s) - np.cos(theta_t) * np.sin(theta_s) * np.cos(phi_s - phi_t)
    distance = hp.rotator.angdist(np.stack([theta_t, phi_t]), np.stack([theta_s, phi_s]))
    np.testing.assert_allclose(graph.edge_attr.numpy(), np.stack([east, north, distance], 1), atol=1e-12)
    # neighbours are close: within 2 pixel sizes
    assert graph.edge_attr[:, 2].max() < 2 * hp.nside2resol(nside)


def test_row_symmetry_of_edge_geometry():
    """neighbour_attr (built on faces 0, 4, 8 and repeated) equals the direct computation."""
    nside = 4
    positions, table = pixel_vectors(nside), neighbour_table(nside)
    direct = edge_geometry(positions, positions, table, table >= 0)
    torch.testing.assert_close(healpix_level_graph(nside).neighbour_attr, direct, rtol=0, atol=1e-13)


def test_graph_is_built_lazily_and_cached():
    h = HealpixHaarHierarchy(8, 4)
    assert h._graphs == {}
    assert h.graph(1) is h.graph(1)
    assert list(h._graphs) == [1]
    assert h.describe()[3] == {"level": 3, "nodes": 768, "edges": 768 * 8 - 24}


@pytest.mark.parametrize("nside", [0, 3, 48, -4])
def test_nside_must_be_power_of_two(nside):
    with pytest.raises(ValueError, match="nside must be a power of two"):
        HealpixHaarHierarchy(nside, 1)


@pytest.mark.parametrize("nside", [32.0, "32", True])
def test_nside_must_be_an_int(nside):
    with pytest.raises(ValueError, match="nside must be an int"):
        HealpixHaarHierarchy(nside, 3)


def test_a_hierarchy_that_cannot_fit_in_memory_is_refused_at_construction():
    with pytest.raises(MemoryLimitError, match=r"nside 1048576 .* needs about .* GiB of memory, more than the"):
        HealpixHaarHierarchy(2**20, 2)
    HealpixHaarHierarchy(2**10, 2)  # 12.6 M pixels x 64 bytes = 0.8 GB: fits a CI machine


def test_too_many_levels_and_wrong_pixel_count():
    with pytest.raises(ValueError, match="allows 1 to 4 levels"):
        HealpixHaarHierarchy(8, 5)
    h = HealpixHaarHierarchy(8, 2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 768, channels\]"):
        h.restrict(torch.randn(1, 767, 1), 1)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    check_device_consistency(HealpixHaarHierarchy(32, 4), "cuda")
