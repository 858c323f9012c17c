"""Message-passing spatial operators: continuous-kernel graph convolutions on one level.

On a level graph with edges s -> t and geometric edge features e_st (F features, e.g.
the displacement in the tangent plane and the distance), the operator is

    y_t = W_0 x_t + b + sum_{m=1}^{M} W_m  (1 / deg_t) sum_{s -> t} phi_m(e_st) x_s,

with learned matrices W_0..W_M (C_in -> C_out) and a kernel phi : R^F -> R^M:

- ``kernel="linear"`` (default): phi(e) = (1, e_1, .., e_F), M = F + 1. Since the W_m are
  free, this is every kernel affine in the edge features (a mean plus first-order,
  gradient-like directional terms). The weights are pure geometry: no gradient flows
  into them, so the backward pass keeps no per-edge activations.
- ``kernel="mlp"``: phi a small learned Linear-GELU-Linear network with M outputs (a
  continuous-kernel convolution); evaluated once per forward call for the whole batch.

The neighbourhood sums are M weighted aggregations A_m x with A_m(s, t) = phi_m(e_st) /
deg_t, and the channel mixing is a matmul over [x_t, agg_1, ..., agg_M].

Edge features are divided by one scalar, their root-mean-square over the level's edges,
so the kernel sees O(1) inputs on every level and vector features keep their directions
(a rotation of the displacements commutes with the scaling). Nodes without edges get
y_t = W_0 x_t + b.

Two implementations of the same mathematics, with identical parameter names:

- :class:`TableKernelConv`: the fast path for fixed-degree graphs (HEALPix, triangle,
  square, subdivision meshes) from the level's ``neighbours [N, K]`` table: one gather
  of the node-major features ``[N, K, B * C_in]`` and one batched ``[M, K] @ [K, B C_in]``
  product per node.
- :class:`PygKernelConv`: a PyTorch Geometric ``MessagePassing`` over ``edge_index`` /
  ``edge_attr`` for general graphs.

:class:`MessagePassingFactory` is an :class:`~geounet.nn.blocks.OperatorFactory` that
picks the table path when the level graph has a neighbour table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from geounet.hierarchy.base import Hierarchy, LevelGraph

BACKENDS = ("auto", "table", "pyg")
KERNELS = ("linear", "mlp")


@dataclass(frozen=True)
class PreparedGraph:
    """Float64 graph tensors of one level in the form the operators consume.

    ``edge_features`` / ``neighbour_features`` are the selected edge features divided by
    their RMS over the edges of the target node's component (see :func:`prepare_graph`);
    ``edge_norm`` / ``neighbour_norm`` hold 1/deg of the target node.
    """

    num_nodes: int
    edge_index: Tensor  # [2, E] int64
    edge_features: Tensor  # [E, F] float64
    edge_norm: Tensor  # [E] float64
    neighbours: Tensor | None = None  # [N, K] int64, padded slots -> the node itself
    neighbour_features: Tensor | None = None  # [N, K, F] float64, zero in padded slots
    neighbour_norm: Tensor | None = None  # [N, K] float64, zero in padded slots

    @property
    def num_features(self) -> int:
        return int(self.edge_features.shape[1])


def table_from_edges(edge_index: Tensor, edge_attr: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pad a general graph into a fixed-degree table (K = the largest in-degree).

    Returns ``neighbours [N, K]`` (sources of each target, in edge order; padded slots
    point at the target itself), ``neighbour_mask [N, K]`` and ``neighbour_attr [N, K, F]``
    (zero in padded slots).
    """
    target = edge_index[1]
    order = torch.argsort(target, stable=True)  # edges grouped by target, edge order kept
    degree = torch.bincount(target, minlength=num_nodes)  # [N]
    width = int(degree.max()) if target.numel() else 0
    first = torch.cumsum(degree, 0) - degree  # [N] position of each target's first edge
    slot = torch.arange(target.numel()) - first[target[order]]  # [E] slot within the row
    neighbours = torch.arange(num_nodes)[:, None].repeat(1, width)
    neighbours[target[order], slot] = edge_index[0, order]
    mask = torch.zeros(num_nodes, width, dtype=torch.bool)
    mask[target[order], slot] = True
    attr = edge_attr.new_zeros(num_nodes, width, edge_attr.shape[1])
    attr[target[order], slot] = edge_attr[order]
    return neighbours, mask, attr


def feature_scales(attr: Tensor, target: Tensor, components: Sequence[int]) -> Tensor:
    """``[N]``: for every node, the RMS of the edge features ``attr [E, F]`` over the edges
    whose target lies in the node's component (1 where a component has no edges or only
    zero features). ``components`` are node counts in node order, e.g. the meshes of a
    disjoint union, so each mesh is scaled as it would be on its own."""
    sizes = torch.as_tensor(list(components))
    component = torch.repeat_interleave(torch.arange(len(sizes)), sizes)  # [N]
    of_edge = component[target]  # [E]
    squares = attr.new_zeros(len(sizes)).index_add_(0, of_edge, attr.pow(2).sum(dim=1))
    entries = torch.bincount(of_edge, minlength=len(sizes)).to(attr.dtype) * attr.shape[1]
    rms = (squares / entries.clamp(min=1.0)).sqrt()
    return torch.where(rms > 0, rms, 1.0)[component]


def prepare_graph(
    graph: LevelGraph, num_nodes: int, edge_features: Sequence[int] | None = None, table: bool = False,
    components: Sequence[int] | None = None,
) -> PreparedGraph:
    """Select and scale the edge features of ``graph`` and precompute degree normalisation.

    Args:
        edge_features: columns of ``edge_attr`` to use (e.g. only the distance column for
            an isotropic kernel); all columns when None.
        table: build a padded neighbour table from ``edge_index`` when the graph has none.
        components: node counts of the independent geometries, in node order (None: one);
            features are scaled by their RMS within each (:func:`feature_scales`).
    """
    attr = graph.edge_attr.to(torch.float64)
    columns = list(range(attr.shape[1])) if edge_features is None else list(edge_features)
    if any(not 0 <= c < attr.shape[1] for c in columns):
        raise ValueError(f"edge_features {columns} out of range for a graph with {attr.shape[1]} edge features")
    components = [num_nodes] if components is None else list(components)
    if sum(components) != num_nodes:
        raise ValueError(f"components {components} hold {sum(components)} nodes, but the graph has {num_nodes}")
    attr = attr[:, columns]
    target = graph.edge_index[1]
    scale = feature_scales(attr, target, components)  # [N]
    degree = torch.bincount(target, minlength=num_nodes).to(torch.float64)  # [N]
    inverse_degree = 1.0 / degree.clamp(min=1.0)
    prepared = dict(num_nodes=num_nodes, edge_index=graph.edge_index.to(torch.int64),
                    edge_features=attr / scale[target, None], edge_norm=inverse_degree[target])
    if graph.neighbours is not None:
        if graph.neighbour_mask is None or graph.neighbour_attr is None:
            raise ValueError("a LevelGraph with a neighbour table also needs neighbour_mask and neighbour_attr")
        neighbours, mask, slot_attr = graph.neighbours, graph.neighbour_mask, graph.neighbour_attr
    elif table:
        neighbours, mask, slot_attr = table_from_edges(graph.edge_index, graph.edge_attr, num_nodes)
    if graph.neighbours is not None or table:
        self_index = torch.arange(num_nodes)[:, None]
        slot_attr = slot_attr.to(torch.float64)[..., columns] / scale[:, None, None]
        prepared.update(
            neighbours=torch.where(mask, neighbours, self_index).to(torch.int64),
            neighbour_features=torch.where(mask[..., None], slot_attr, 0.0),
            neighbour_norm=mask * inverse_degree[:, None],
        )
    return PreparedGraph(**prepared)


class GraphBuffers(nn.Module):
    """A level's prepared graph tensors as non-persistent buffers, in the default dtype.

    One instance is shared by all operators a factory makes on a level, so the graph is
    stored once per model and follows ``.to(device)`` without entering the state_dict.
    (Moving one model therefore moves the graph of every model sharing the factory.)
    """

    def __init__(self, graph: PreparedGraph):
        super().__init__()
        dtype = torch.get_default_dtype()
        self.num_nodes = graph.num_nodes
        for name in ("edge_index", "edge_features", "edge_norm", "neighbours", "neighbour_features", "neighbour_norm"):
            value = getattr(graph, name)
            if value is not None and value.is_floating_point():
                value = value.to(dtype)
            self.register_buffer(name, value, persistent=False)

    @property
    def has_table(self) -> bool:
        return self.neighbours is not None


class EdgeKernel(nn.Module):
    """phi : R^F -> R^M, the continuous kernel evaluated on edge features.

    The output bias starts at 1 so that a fresh operator aggregates neighbour means
    (a smoothing graph convolution) plus a small learned anisotropic part.
    """

    def __init__(self, num_features: int, num_kernels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.GELU(), nn.Linear(hidden, num_kernels))
        nn.init.ones_(self.net[2].bias)

    def forward(self, features: Tensor) -> Tensor:  # [..., F] -> [..., M]
        return self.net(features)


class _KernelConvMixin:
    """Parameters and channel mixing shared by the table and PyG implementations."""

    def _init_parameters(
        self, in_channels: int, out_channels: int, num_features: int, kernel: str, num_kernels: int, hidden: int
    ) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("num_kernels", num_kernels), ("kernel_hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_kernels = num_kernels if kernel == "mlp" else num_features + 1
        self.kernel = EdgeKernel(num_features, num_kernels, hidden) if kernel == "mlp" else None
        self.linear = nn.Linear((self.num_kernels + 1) * in_channels, out_channels)

    def _edge_weights(self, features: Tensor, norm: Tensor) -> Tensor:
        """A_m(s, t) = phi_m(e_st) / deg_t for features ``[..., F]`` and norms ``[...]``: ``[..., M]``."""
        features = features.to(self.linear.weight.dtype)
        if self.kernel is None:  # fixed affine basis (1, e_1 .. e_F): no gradient, nothing saved
            phi = torch.cat([torch.ones_like(features[..., :1]), features], dim=-1)
        else:
            phi = self.kernel(features)
        return phi * norm[..., None].to(phi.dtype)

    def _check_features(self, x: Tensor, num_nodes: int) -> None:
        if x.dim() != 3 or x.shape[1] != num_nodes or x.shape[2] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects features [batch, {num_nodes}, {self.in_channels}], "
                f"got {tuple(x.shape)}"
            )

    def _mix(self, x: Tensor, aggregated: Tensor) -> Tensor:
        """[W_0 | W_1 .. W_M] applied to [x, agg_1 .. agg_M]: ``[B, N, C_in]``, ``[B, N, M, C_in]``.

        Two matmuls on column blocks of ``linear.weight`` instead of one on the
        concatenation, which would copy the (M + 1) C_in wide input.
        """
        weight, channels = self.linear.weight, self.in_channels
        neighbour_part = nn.functional.linear(aggregated.flatten(2).to(x.dtype), weight[:, channels:], self.linear.bias)
        return neighbour_part + nn.functional.linear(x, weight[:, :channels])  # [B, N, C_out]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, num_kernels={self.num_kernels}"


class TableKernelConv(_KernelConvMixin, nn.Module):
    """The continuous-kernel convolution over a fixed-degree neighbour table.

    Uses the table buffers of ``graph``: ``neighbours [N, K]`` (padded slots point at the
    node itself), ``neighbour_features [N, K, F]`` (scaled, zero in padded slots) and
    ``neighbour_norm [N, K]`` (1/deg_t in real slots, 0 in padded ones).
    """

    def __init__(self, graph: GraphBuffers, in_channels: int, out_channels: int, kernel: str = "linear",
                 num_kernels: int = 4, kernel_hidden: int = 16):
        super().__init__()
        if not graph.has_table:
            raise ValueError("TableKernelConv needs a level graph with a neighbour table; use PygKernelConv")
        self._init_parameters(in_channels, out_channels, graph.neighbour_features.shape[-1], kernel,
                              num_kernels, kernel_hidden)
        self.graph = graph

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C_in]
        neighbours = self.graph.neighbours  # [N, K]
        n, k = neighbours.shape
        self._check_features(x, n)
        batch, channels = x.shape[0], x.shape[2]
        weights = self._edge_weights(self.graph.neighbour_features, self.graph.neighbour_norm)  # [N, K, M]
        node_major = x.transpose(0, 1).reshape(n, batch * channels)  # [N, B C]
        gathered = node_major.index_select(0, neighbours.reshape(-1)).view(n, k, batch * channels)
        aggregated = torch.bmm(weights.transpose(1, 2).to(gathered.dtype), gathered)  # [N, M, B C]
        aggregated = aggregated.view(n, self.num_kernels, batch, channels).permute(2, 0, 1, 3)
        return self._mix(x, aggregated)  # [B, N, C_out]


class PygKernelConv(_KernelConvMixin, MessagePassing):
    """The same convolution as a PyTorch Geometric ``MessagePassing`` over ``edge_index``.

    Uses the edge buffers of ``graph``: ``edge_index [2, E]``, ``edge_features [E, F]``
    (scaled) and ``edge_norm [E]`` (1/deg of each edge's target).
    """

    def __init__(self, graph: GraphBuffers, in_channels: int, out_channels: int, kernel: str = "linear",
                 num_kernels: int = 4, kernel_hidden: int = 16):
        MessagePassing.__init__(self, aggr="add", node_dim=-2)
        self._init_parameters(in_channels, out_channels, graph.edge_features.shape[-1], kernel,
                              num_kernels, kernel_hidden)
        self.graph = graph

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C_in]
        self._check_features(x, self.graph.num_nodes)
        weights = self._edge_weights(self.graph.edge_features, self.graph.edge_norm)  # [E, M]
        aggregated = self.propagate(self.graph.edge_index, x=x, weights=weights.to(x.dtype), size=None)
        aggregated = aggregated.view(*x.shape[:2], self.num_kernels, x.shape[2])  # [B, N, M, C_in]
        return self._mix(x, aggregated)  # [B, N, C_out]

    def message(self, x_j: Tensor, weights: Tensor) -> Tensor:  # [B, E, C_in], [E, M]
        return (weights[:, :, None] * x_j[..., None, :]).flatten(-2)  # [B, E, M C_in]


class MessagePassingFactory:
    """:class:`~geounet.nn.blocks.OperatorFactory` of continuous-kernel graph convolutions.

    Args:
        hierarchy: provides ``graph(level)`` and ``num_nodes(level)``.
        backend: ``"table"`` (neighbour-table fast path; a graph without a table is
            padded into one), ``"pyg"`` (``MessagePassing`` over ``edge_index``) or
            ``"auto"`` (see :meth:`uses_table`).
        kernel: ``"linear"`` (phi = (1, e_1 .. e_F), fixed, M = F + 1: the fast default)
            or ``"mlp"`` (phi a learned Linear-GELU-Linear network with M outputs).
        num_kernels: M for ``kernel="mlp"``.
        kernel_hidden: hidden width of the ``"mlp"`` kernel network.
        edge_features: columns of ``edge_attr`` fed to phi (None: all). Selecting only
            rotation-invariant features (the distance) gives isotropic kernels.
    """

    def __init__(self, hierarchy: Hierarchy, backend: str = "auto", kernel: str = "linear", num_kernels: int = 4,
                 kernel_hidden: int = 16, edge_features: Sequence[int] | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        self.kernel = kernel
        self.hierarchy = hierarchy
        self.backend = backend
        self.num_kernels = num_kernels
        self.kernel_hidden = kernel_hidden
        self.edge_features = None if edge_features is None else tuple(edge_features)
        self._graphs: dict[int, GraphBuffers] = {}

    def uses_table(self, level: int) -> bool:
        """Whether ``level`` gets the table path.

        ``"auto"`` takes it when the level graph has a neighbour table, or when padding
        its edges into one wastes at most a third of the slots (max in-degree <= 1.5 x
        the mean), which covers meshes and dense spectral graphs.
        """
        if self.backend != "auto":
            return self.backend == "table"
        graph = self.hierarchy.graph(level)
        if graph.neighbours is not None:
            return True
        degree = torch.bincount(graph.edge_index[1], minlength=self.hierarchy.num_nodes(level))
        return graph.num_edges > 0 and int(degree.max()) <= 1.5 * graph.num_edges / degree.numel()

    def graph(self, level: int) -> GraphBuffers:
        """The graph buffers of ``level``, built once and shared by this factory's operators."""
        if level not in self._graphs:
            prepared = prepare_graph(
                self.hierarchy.graph(level), self.hierarchy.num_nodes(level), self.edge_features,
                table=self.uses_table(level), components=self.hierarchy.components(level),
            )
            self._graphs[level] = GraphBuffers(prepared)
        return self._graphs[level]

    def __call__(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        conv = TableKernelConv if self.uses_table(level) else PygKernelConv
        return conv(self.graph(level), in_channels, out_channels, self.kernel, self.num_kernels, self.kernel_hidden)
