import numpy as np
import pytest
import torch
from torch import nn

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.constraints import AllBoundaryWarning, FunctionConstraint
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy
from geounet.models.constrained import ConstrainedUNet
from geounet.models.unet import build_unet


class NeighbourMean(nn.Module):
    """Test-only operator: Linear(x) + Linear(mean of graph neighbours), [B, N, Cin] -> [B, N, Cout]."""

    def __init__(self, level, in_ch, out_ch):
        super().__init__()
        self.level = level
        self.self_map, self.neighbour_map = nn.Linear(in_ch, out_ch), nn.Linear(in_ch, out_ch, bias=False)

    def forward(self, x, hierarchy):
        source, target = hierarchy.graph(self.level).edge_index
        degree = torch.zeros(x.shape[-2], dtype=x.dtype).index_add_(0, target, torch.ones_like(target, dtype=x.dtype))
        summed = torch.zeros_like(x).index_add_(-2, target, x.index_select(-2, source))
        return self.self_map(x) + self.neighbour_map(summed / degree.clamp(min=1)[:, None])


class NeighbourMeanFactory:
    def __init__(self, hierarchy):
        self.kind = hierarchy.kind

    def __call__(self, level, in_ch, out_ch):
        return NeighbourMean(level, in_ch, out_ch)


def _square_plate():
    return Mesh(np.array([[0, 0], [1, 0], [1, 1], [0, 1.0]]), [[0, 1, 2], [0, 2, 3]])


def _disc():
    from skfem import MeshTri

    fem = MeshTri.init_circle(2)
    return Mesh(fem.p.T, fem.t.T)


HIERARCHIES = {
    "subdivision": lambda: SubdivisionHierarchy(_square_plate(), 4),
    "clusters": lambda: ClusterHierarchy(_disc(), 3),
    "spectral": lambda: MeshSpectralHierarchy(_disc(), [1, 6, 15], use_cache=False),
}
CONSTRAINTS = {
    "zero_mean": {"integral": 0.0},
    "integral": {"integral": [1.5, -2.0]},
    "dirichlet": {"zero_boundary": True},
    "dirichlet_and_integral": {"zero_boundary": True, "integral": [0.25, 0.5]},
}


@pytest.mark.parametrize("name", HIERARCHIES)
@pytest.mark.parametrize("constraint_kwargs", CONSTRAINTS.values(), ids=CONSTRAINTS.keys())
def test_unet_output_satisfies_constraint_for_random_weights(name, constraint_kwargs):
    torch.manual_seed(0)
    h = HIERARCHIES[name]()
    constraint = FunctionConstraint(h, **constraint_kwargs)
    model = ConstrainedUNet(build_unet(h, 3, 2, NeighbourMeanFactory(h), width=8), **constraint_kwargs).double()
    for p in model.parameters():  # arbitrary weights, not just the initialisation
        nn.init.normal_(p, std=0.5)
    x = torch.randn(2, h.num_nodes(h.finest_level), 3, dtype=torch.float64)
    y = model(x, h)
    assert constraint.violation(y, h.finest_level) < 1e-12
    # the projection changed something and is idempotent
    raw = model.unet(x, h)
    assert constraint.violation(raw, h.finest_level) > 1e-3
    torch.testing.assert_close(constraint.project(y, h.finest_level), y)


@pytest.mark.parametrize("name", ["subdivision", "clusters"])
def test_projection_is_mass_orthogonal_and_sets_are_nested(name):
    h = HIERARCHIES[name]()
    constraint = FunctionConstraint(h, zero_boundary=True, integral=1.0)
    with pytest.raises(ValueError, match="level 0 has no free nodes"):
        constraint.project(torch.zeros(1, h.num_nodes(0), 1), 0)
    level = h.finest_level
    x = torch.randn(1, h.num_nodes(level), 1, dtype=torch.float64)
    px = constraint.project(x, level)
    # x - Πx is orthogonal to differences of constrained vectors (directions of K)
    d = constraint.project(torch.randn_like(x), level) - constraint.project(torch.randn_like(x), level)
    assert abs(h.inner(x - px, d, level).item()) < 1e-12
    # prolong maps K_{i-1} into K_i
    for level in range(h.finest_level):
        if h.boundary_mask(level).all():
            continue
        c = constraint.project(torch.randn(1, h.num_nodes(level), 1, dtype=torch.float64), level)
        assert constraint.violation(h.prolong(c, level), level + 1) < 1e-12


def test_haar_boundary_cells_are_nested():
    h = SubdivisionHierarchy(_square_plate(), 4)
    for level in range(1, h.num_levels):
        parent_is_boundary = h.boundary_mask(level - 1)[h.parents(level)]
        child_is_boundary = h.boundary_mask(level)
        assert not (child_is_boundary & ~parent_is_boundary).any()
    # level 3: 8x8 grid of squares cut in 2 triangles, boundary ring touches the edges
    assert 0 < int(h.boundary_mask(3).sum()) < h.num_nodes(3)


def test_a_constraint_that_zeroes_every_output_warns():
    """On the two-triangle plate every cell of the coarse levels touches the boundary."""
    h = SubdivisionHierarchy(_square_plate(), 3)
    constraint = FunctionConstraint(h, zero_boundary=True)
    with pytest.warns(AllBoundaryWarning, match="every one of the 2 nodes of level 0"):
        assert constraint.project(torch.ones(1, 2, 1), 0).abs().max() == 0  # exact: multiplied by 0
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert constraint.project(torch.ones(1, 32, 1), 2).abs().max() == 1  # interior cells at level 2


def test_dirichlet_spectral_coefficients_need_no_projection():
    h = MeshSpectralHierarchy(_disc(), [3, 8, 15], boundary="dirichlet", vertex_level=False, use_cache=False)
    model = build_unet(h, 1, 1, NeighbourMeanFactory(h), width=4).double()
    for p in model.parameters():
        nn.init.normal_(p)
    coefficients = model(torch.randn(2, 15, 1, dtype=torch.float64), h)
    values = h.synthesize(coefficients, h.finest_level)
    assert values[:, h.mesh.boundary_vertices].abs().max() < 1e-12


def test_errors():
    h = MeshSpectralHierarchy(_disc(), [3, 8], boundary="dirichlet", use_cache=False)
    with pytest.raises(ValueError, match="does not contain the constants"):
        FunctionConstraint(h, integral=0.0)
    with pytest.raises(ValueError, match="needs zero_boundary"):
        FunctionConstraint(h)
    neumann = MeshSpectralHierarchy(_disc(), [3, 8], use_cache=False)
    with pytest.raises(ValueError, match="boundary='dirichlet'"):
        FunctionConstraint(neumann, zero_boundary=True).project(torch.zeros(1, 3, 1), 0)


@pytest.mark.cuda
@pytest.mark.parametrize("name", HIERARCHIES)
def test_constrained_unet_on_cuda_matches_cpu(name):
    torch.manual_seed(0)
    h = HIERARCHIES[name]()
    constraint = FunctionConstraint(h, integral=[0.5, 1.0])
    model = ConstrainedUNet(build_unet(h, 3, 2, NeighbourMeanFactory(h), width=8), integral=[0.5, 1.0]).double()
    x = torch.randn(2, h.num_nodes(h.finest_level), 3, dtype=torch.float64)
    expected = model(x, h)
    actual = model.cuda()(x.cuda(), h.to("cuda"))
    assert constraint.violation(actual, h.finest_level) < 1e-12
    torch.testing.assert_close(actual.cpu(), expected)
