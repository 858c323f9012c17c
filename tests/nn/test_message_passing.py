import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.hierarchy.base import Hierarchy, LevelGraph
from geounet.nn.message_passing import KernelConv, MessagePassingFactory, prepared_graph, table_from_edges


class OneGraph(Hierarchy):
    """A one-level hierarchy on a given graph: what the operators need to be called."""

    kind = "OneGraph"

    def __init__(self, graph: LevelGraph, num_nodes: int):
        self._graph, self._num_nodes = graph, num_nodes

    num_levels = 1

    def num_nodes(self, level):
        return self._num_nodes

    def mass(self, level):
        return torch.ones(self._num_nodes, dtype=torch.float64)

    def graph(self, level):
        return self._graph

    def _restrict(self, x, level):
        raise NotImplementedError

    _prolong = _restrict


def random_geometric_graph(num_nodes: int, k: int = 4, seed: int = 0) -> LevelGraph:
    """Symmetrised k-nearest-neighbour graph of random points: variable in-degree."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(num_nodes, 2, generator=generator, dtype=torch.float64)
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.topk(k, largest=False).indices  # [N, k]
    pairs = torch.stack([torch.arange(num_nodes).repeat_interleave(k), nearest.reshape(-1)])
    edge_index = torch.unique(torch.cat([pairs, pairs.flip(0)], dim=1), dim=1)  # [2, E]
    offset = points[edge_index[0]] - points[edge_index[1]]  # source seen from target
    edge_attr = torch.cat([offset, offset.norm(dim=1, keepdim=True)], dim=1)
    return LevelGraph(edge_index=edge_index, edge_attr=edge_attr, positions=points)


def pair(graph: LevelGraph, num_nodes: int, cin=3, cout=5, edge_features=None, kernel="mlp"):
    """A table and a PyG operator on ``graph`` with the same (float64) parameters, each
    bound to the one-level hierarchy of the graph (``op(x)`` = ``conv(x, hierarchy)``)."""
    h = OneGraph(graph, num_nodes)
    features = graph.num_edge_features if edge_features is None else len(edge_features)
    table = KernelConv(0, cin, cout, features, kernel, backend="table", edge_features=edge_features).double()
    pyg = KernelConv(0, cin, cout, features, kernel, backend="pyg", edge_features=edge_features).double()
    pyg.load_state_dict(table.state_dict())
    return Bound(table, h), Bound(pyg, h)


class Bound(torch.nn.Module):
    """An operator with its hierarchy fixed, so tests can call it ``op(x)``."""

    def __init__(self, conv: KernelConv, hierarchy: Hierarchy):
        super().__init__()
        self.conv, self.hierarchy = conv, hierarchy

    @property
    def linear(self):
        return self.conv.linear

    def forward(self, x):
        return self.conv(x, self.hierarchy)


@pytest.mark.parametrize("periodic", [False, True])
def test_table_matches_pyg_on_square(periodic):
    torch.manual_seed(0)
    h = SquareHaarHierarchy(8, 2, periodic=periodic)
    table, pyg = pair(h.graph(1), 64)
    x = torch.randn(3, 64, 3, dtype=torch.float64)
    torch.testing.assert_close(table(x), pyg(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "mlp"])
def test_table_matches_pyg_on_padded_general_graph(kernel):
    torch.manual_seed(0)
    graph = random_geometric_graph(40)
    degree = torch.bincount(graph.edge_index[1], minlength=40)
    assert degree.min() < degree.max()  # the padding is exercised
    table, pyg = pair(graph, 40, kernel=kernel)
    x = torch.randn(2, 40, 3, dtype=torch.float64)
    torch.testing.assert_close(table(x), pyg(x), rtol=1e-12, atol=1e-12)


def test_linear_kernel_matches_dense_reference():
    """y = W_0 x + b + sum_m W_m D^-1 A_m x with dense A_0 = adjacency, A_f = adjacency * e_f / rms(e)."""
    torch.manual_seed(0)
    graph = random_geometric_graph(20)
    table, _ = pair(graph, 20, kernel="linear")
    source, target = graph.edge_index
    scaled = graph.edge_attr / graph.edge_attr.pow(2).mean().sqrt()
    degree = torch.bincount(target, minlength=20).double()
    x = torch.randn(2, 20, 3, dtype=torch.float64)
    terms = [x]
    for values in [torch.ones(graph.num_edges, dtype=torch.float64), *scaled.t()]:
        dense = torch.zeros(20, 20, dtype=torch.float64)
        dense[target, source] = values
        terms.append((dense / degree[:, None]) @ x)
    expected = table.linear(torch.cat(terms, dim=-1))
    # A float64 model gets the float64 prepared graph: agreement to round-off.
    torch.testing.assert_close(table(x), expected, rtol=1e-12, atol=1e-12)


def test_table_from_edges_round_trips_edges():
    graph = random_geometric_graph(30)
    neighbours, mask, attr = table_from_edges(graph.edge_index, graph.edge_attr, 30)
    target = torch.arange(30)[:, None].expand_as(neighbours)
    rebuilt = {(int(s), int(t)): tuple(a.tolist())
               for s, t, a in zip(neighbours[mask], target[mask], attr[mask], strict=True)}
    original = {(int(s), int(t)): tuple(a.tolist())
                for (s, t), a in zip(graph.edge_index.t(), graph.edge_attr, strict=True)}
    assert rebuilt == original
    assert (attr[~mask] == 0).all()


def test_pyg_operator_is_permutation_equivariant():
    torch.manual_seed(0)
    graph = random_geometric_graph(50)
    _, op = pair(graph, 50)
    perm = torch.randperm(50)  # new node i is old node perm[i]
    inverse = torch.argsort(perm)
    edge_order = torch.randperm(graph.num_edges)
    permuted = LevelGraph(edge_index=inverse[graph.edge_index][:, edge_order], edge_attr=graph.edge_attr[edge_order])
    _, op_permuted = pair(permuted, 50)
    op_permuted.load_state_dict(op.state_dict())
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    torch.testing.assert_close(op_permuted(x[:, perm]), op(x)[:, perm], rtol=1e-12, atol=1e-12)


def _rot90(x: torch.Tensor, side: int) -> torch.Tensor:
    """Rotate node features [B, side*side, C] of a square by 90 degrees (torch.rot90)."""
    image = x.reshape(x.shape[0], side, side, -1)
    return torch.rot90(image, 1, dims=(1, 2)).reshape(x.shape)


def test_isotropic_kernel_commutes_with_square_rotation():
    """With only the distance feature, the operator is exactly rot90-equivariant on the torus."""
    torch.manual_seed(0)
    h = SquareHaarHierarchy(8, 1, periodic=True)
    op = Bound(MessagePassingFactory(h, edge_features=[2])(0, 3, 4).double(), h)
    x = torch.randn(2, 64, 3, dtype=torch.float64)
    torch.testing.assert_close(op(_rot90(x, 8)), _rot90(op(x), 8), rtol=1e-12, atol=1e-12)


def test_anisotropic_kernel_rotates_with_its_edge_displacements():
    """op_G(R x) = R op_G'(x), where G' is G with every displacement (dy, dx) -> (-dx, dy).

    The kernel sees (dy, dx, distance), so it is not rotation invariant by itself (checked:
    op_G(R x) != R op_G(x)); rotating the grid is the same as rotating the displacement
    features the square hierarchy provides, which this checks.
    """
    torch.manual_seed(0)
    graph = SquareHaarHierarchy(8, 1, periodic=True).graph(0)

    def rotate(attr):
        return torch.stack([-attr[..., 1], attr[..., 0], attr[..., 2]], dim=-1)

    rotated = LevelGraph(
        edge_index=graph.edge_index, edge_attr=rotate(graph.edge_attr), neighbours=graph.neighbours,
        neighbour_mask=graph.neighbour_mask, neighbour_attr=rotate(graph.neighbour_attr),
    )
    op, _ = pair(graph, 64)
    op_rotated, _ = pair(rotated, 64)
    op_rotated.load_state_dict(op.state_dict())
    x = torch.randn(2, 64, 3, dtype=torch.float64)
    torch.testing.assert_close(op(_rot90(x, 8)), _rot90(op_rotated(x), 8), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(op(_rot90(x, 8)), _rot90(op(x), 8), atol=1e-6)


@pytest.mark.parametrize("kernel", ["linear", "mlp"])
@pytest.mark.parametrize("backend", ["table", "pyg"])
def test_gradcheck_float64(backend, kernel):
    torch.manual_seed(0)
    graph = random_geometric_graph(12, k=3)
    op = dict(zip(["table", "pyg"], pair(graph, 12, cin=2, cout=2, kernel=kernel), strict=True))[backend]
    names = [name for name, _ in op.named_parameters()]

    def f(x, *params):
        return torch.func.functional_call(op, dict(zip(names, params, strict=True)), (x,))

    x = torch.randn(2, 12, 2, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True) for p in op.parameters()]
    assert torch.autograd.gradcheck(f, (x, *params))


def test_isolated_nodes_get_only_the_self_term():
    """A node with no edges maps to W_0 x + b on both paths, also when no node has edges."""
    torch.manual_seed(0)
    graph = random_geometric_graph(10, k=2)
    keep = (graph.edge_index != 9).all(0)  # isolate node 9
    graph = LevelGraph(edge_index=graph.edge_index[:, keep], edge_attr=graph.edge_attr[keep])
    empty = LevelGraph(edge_index=torch.zeros(2, 0, dtype=torch.int64),
                       edge_attr=torch.zeros(0, 3, dtype=torch.float64))
    x = torch.randn(2, 10, 3, dtype=torch.float64)
    for g, isolated in ((graph, [9]), (empty, list(range(10)))):
        table, pyg = pair(g, 10)
        self_only = torch.nn.functional.linear(x, table.linear.weight[:, :3], table.linear.bias)
        for op in (table, pyg):
            torch.testing.assert_close(op(x)[:, isolated], self_only[:, isolated])


def test_operators_hold_only_parameters_and_graphs_are_memoised_on_the_hierarchy():
    h = SquareHaarHierarchy(8, 2)
    x = torch.randn(2, 64, 3)
    for backend in ("table", "pyg"):
        factory = MessagePassingFactory(h, backend=backend)
        op, other = factory(1, 3, 4), factory(1, 3, 4)
        assert set(op.state_dict()) == {name for name, _ in op.named_parameters()}
        assert not list(op.buffers())
        op(x, h)
        other(x, h)
        graph = prepared_graph(h, 1, None, backend, torch.float32)
        assert graph is prepared_graph(h, 1, None, backend, torch.float32)  # one copy per hierarchy
        assert (graph.neighbours is not None) == (backend == "table")  # one form of the graph, not both
        assert (graph.edge_index is not None) == (backend == "pyg")
        features = "neighbour_features" if backend == "table" else "edge_features"
        assert getattr(graph, features).dtype == torch.float32
        assert getattr(prepared_graph(h, 1, None, backend, torch.float64), features).dtype == torch.float64


def test_union_of_prepared_graphs_equals_the_prepared_union():
    """A batch of meshes is prepared mesh by mesh and concatenated: same tensors as preparing
    the union graph with per-mesh feature scales."""
    from geounet.hierarchy import batch_hierarchies
    from geounet.hierarchy.finest import FinestLevels
    from geounet.nn.message_passing import prepare_graph

    parts = [SquareHaarHierarchy(8, 2), SquareHaarHierarchy(4, 2, periodic=True)]
    batch = batch_hierarchies([FinestLevels(p, 2) for p in parts])
    for backend in ("table", "pyg"):
        union = prepared_graph(batch, 1, None, backend, torch.float64)
        direct = prepare_graph(batch.graph(1), batch.num_nodes(1), table=backend == "table",
                               components=batch.components(1))
        for name in ("edge_index", "edge_features", "edge_norm", "neighbours", "neighbour_features",
                     "neighbour_norm"):
            if getattr(direct, name) is not None:
                torch.testing.assert_close(getattr(union, name), getattr(direct, name), rtol=1e-12, atol=0)


def test_bf16_autocast_cpu_matches_float32():
    torch.manual_seed(0)
    h = SquareHaarHierarchy(16, 2)
    for backend in ("table", "pyg"):
        op = MessagePassingFactory(h, backend=backend)(1, 8, 8)
        x = torch.randn(2, 256, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = op(x, h)
        assert low.dtype == torch.bfloat16
        torch.testing.assert_close(low.float(), op(x, h), rtol=0.05, atol=0.05)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    h = SquareHaarHierarchy(16, 2)
    for backend in ("table", "pyg"):
        op = MessagePassingFactory(h, backend=backend)(1, 4, 4).double()
        x = torch.randn(2, 256, 4, dtype=torch.float64)
        expected = op(x, h)
        torch.testing.assert_close(op.cuda()(x.cuda(), h.to("cuda")).cpu(), expected)


def test_linear_kernel_sparse_product_equals_the_gather_path_on_healpix():
    """The linear kernel's sparse product (values and gradients) equals the gather + bmm
    path and the PyG path, on a HEALPix level with its 7-neighbour pixels."""
    from geounet.hierarchy.healpix import HealpixHaarHierarchy
    from geounet.nn.message_passing import linear_operator

    torch.manual_seed(0)
    h = HealpixHaarHierarchy(4, 1)
    op = KernelConv(0, 3, 5, 3, "linear", backend="table").double()
    pyg = KernelConv(0, 3, 5, 3, "linear", backend="pyg").double()
    pyg.load_state_dict(op.state_dict())
    graph = prepared_graph(h, 0, None, "table", torch.float64)
    x = torch.randn(2, 192, 3, dtype=torch.float64, requires_grad=True)
    sparse = op._aggregate_sparse(x, linear_operator(graph))
    gathered = op._aggregate_table(x, graph)
    torch.testing.assert_close(sparse, gathered, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(sparse)
    grads = [torch.autograd.grad((a * weights).sum(), x)[0] for a in (sparse, gathered)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op(x, h), pyg(x, h), rtol=1e-12, atol=1e-12)


def test_linear_table_path_saves_no_gathered_features():
    """Autograd keeps the input and the M aggregations for the channel mixing, never the
    K-times larger gathered neighbour features."""
    h = SquareHaarHierarchy(16, 1)
    op = MessagePassingFactory(h, backend="table")(0, 8, 8)
    x = torch.randn(2, 256, 8, requires_grad=True)
    op(x, h)  # builds and memoises the graph tensors outside the count
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        op(x, h)
    activations = x.numel()
    assert sum(saved) <= (op.num_kernels + 2) * activations + op.linear.weight.numel(), saved


@pytest.mark.parametrize("channels", [(6, 3), (4, 4), (3, 5)], ids=["mix-first", "mix-first-equal", "aggregate-first"])
def test_linear_kernel_sparse_paths_equal_pyg_with_gradients(channels):
    """Both sparse orders (channel maps before the aggregation when C_out <= C_in, after it
    otherwise) give the PyG operator's values and gradients."""
    from geounet.hierarchy.healpix import HealpixHaarHierarchy

    torch.manual_seed(0)
    h = HealpixHaarHierarchy(4, 1)
    op = KernelConv(0, *channels, 3, "linear", backend="table").double()
    pyg = KernelConv(0, *channels, 3, "linear", backend="pyg").double()
    pyg.load_state_dict(op.state_dict())
    x = torch.randn(2, 192, channels[0], dtype=torch.float64, requires_grad=True)
    outs = [conv(x, h) for conv in (op, pyg)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(outs[0])
    grads = [torch.autograd.grad((out * weights).sum(), [x, *conv.parameters()])
             for out, conv in zip(outs, (op, pyg), strict=True)]
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
