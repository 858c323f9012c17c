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

The operator :class:`KernelConv` holds only parameters; the geometry comes with each
call, ``conv(x, hierarchy)``, as the level's :class:`PreparedGraph` or sparse operators
memoised on the hierarchy (:func:`prepared_graph`, :func:`linear_operators`). Two
implementations of the same mathematics:

- the table path for fixed-degree graphs (HEALPix, triangle, square, subdivision and
  cluster meshes) from the level's ``neighbours [N, K]`` table. For the linear kernel the
  M aggregations are one constant sparse matrix ``[N M, N]`` (:func:`linear_operator`,
  memoised on the hierarchy; a disjoint union of meshes joins its meshes' memoised
  matrices block-diagonally, :func:`linear_operators`) applied to each sample by
  ``csr_product``, which saves nothing for the backward pass but the matrix's
  transpose; when C_out <= C_in the M + 1 channel maps come first and one sparse matrix
  ``[N, N (M + 1)]`` sums their outputs over each neighbourhood (fewer channels moved,
  only the input kept for the backward pass); for the MLP kernel
  (whose weights are learned) one gather of the node-major features ``[N, K, B * C_in]``
  and one batched ``[M, K] @ [K, B C_in]`` product per node;
- a PyTorch Geometric ``MessagePassing`` over ``edge_index`` / ``edge_attr`` for general
  graphs.

:class:`MessagePassingFactory` is an :class:`~geounet.nn.blocks.OperatorFactory` that
makes them for a hierarchy *kind*.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from geounet.errors import GeounetError
from geounet.functional.block_diagonal import (
    block_diagonal_csr,
    block_diagonal_table,
    offset_cat,
    offsets_of,
    pad_slots,
)
from geounet.hierarchy.base import Hierarchy, LevelGraph

BACKENDS = ("auto", "table", "pyg")
KERNELS = ("linear", "mlp")


@dataclass(frozen=True)
class PreparedGraph:
    """Graph tensors of one level in the form the operators consume: edge lists for the PyG
    path or the neighbour table for the table path, never both.

    ``edge_features`` / ``neighbour_features`` are the selected edge features divided by
    their RMS over the edges of the target node's component (see :func:`prepare_graph`);
    ``edge_norm`` / ``neighbour_norm`` hold 1/deg of the target node.
    """

    num_nodes: int
    num_features: int
    edge_index: Tensor | None = None  # [2, E] int64
    edge_features: Tensor | None = None  # [E, F]
    edge_norm: Tensor | None = None  # [E]
    neighbours: Tensor | None = None  # [N, K] int64 or int32, padded slots -> the node itself
    neighbour_features: Tensor | None = None  # [N, K, F], zero in padded slots
    neighbour_norm: Tensor | None = None  # [N, K], zero in padded slots


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
    slot = torch.arange(target.numel(), device=target.device) - first[target[order]]  # [E] slot within the row
    neighbours = torch.arange(num_nodes, device=target.device)[:, None].repeat(1, width)
    neighbours[target[order], slot] = edge_index[0, order]
    mask = torch.zeros(num_nodes, width, dtype=torch.bool, device=target.device)
    mask[target[order], slot] = True
    attr = edge_attr.new_zeros(num_nodes, width, edge_attr.shape[1])
    attr[target[order], slot] = edge_attr[order]
    return neighbours, mask, attr


def feature_scales(squares: Tensor, edges: Tensor, num_features: int, components: Sequence[int]) -> Tensor:
    """``[N]``: for every node, the RMS of the edge features over the edges whose target lies
    in the node's component (1 where a component has no edges or only zero features), from
    each node's sum of squared features ``squares [N]`` and in-degree ``edges [N]`` over its
    incoming edges. ``components`` are node counts in node order, e.g. the meshes of a
    disjoint union, so each mesh is scaled as it would be on its own."""
    sizes = torch.as_tensor(list(components), device=squares.device)
    component = torch.repeat_interleave(torch.arange(len(sizes), device=squares.device), sizes)  # [N]
    total = squares.new_zeros(len(sizes)).index_add_(0, component, squares)
    entries = squares.new_zeros(len(sizes)).index_add_(0, component, edges.to(squares.dtype)) * num_features
    rms = (total / entries.clamp(min=1.0)).sqrt()
    return torch.where(rms > 0, rms, 1.0)[component]


def prepare_graph(
    graph: LevelGraph, num_nodes: int, edge_features: Sequence[int] | None = None, table: bool = False,
    components: Sequence[int] | None = None, dtype: torch.dtype = torch.float64,
) -> PreparedGraph:
    """Select and scale the edge features of ``graph`` and precompute degree normalisation.

    Computed in float64 and returned in ``dtype``.

    Args:
        edge_features: columns of the edge features to use (e.g. only the distance column
            for an isotropic kernel); all columns when None.
        table: prepare the neighbour table for the table path: the graph's own (its edge
            lists are not touched, so a table-only graph never derives them), or one
            padded from ``edge_index`` when it has none. Without it, only edge lists.
        components: node counts of the independent geometries, in node order (None: one);
            features are scaled by their RMS within each (:func:`feature_scales`).
    """
    components = [num_nodes] if components is None else list(components)
    if sum(components) != num_nodes:
        raise GeounetError(f"components {components} hold {sum(components)} nodes, but the graph has {num_nodes}")
    if table and graph.neighbours is not None:
        neighbours, mask, attr = graph.neighbours, graph.neighbour_mask, graph.neighbour_attr
        if attr is None:
            raise GeounetError("a LevelGraph with a neighbour table also needs neighbour_attr (stored or derived)")
    elif table:
        neighbours, mask, attr = table_from_edges(graph.edge_index, graph.edge_attr, num_nodes)
    else:
        attr = graph.edge_attr
    width = attr.shape[-1]
    columns = list(range(width)) if edge_features is None else list(edge_features)
    if any(not 0 <= c < width for c in columns):
        raise GeounetError(f"edge_features {columns} out of range for a graph with {width} edge features")
    attr = attr.to(torch.float64)[..., columns]
    if table:  # [N, K, F], zero in the padded slots
        attr = torch.where(mask[..., None], attr, 0.0)
        degree = mask.sum(1)  # [N]
        scale = feature_scales(attr.square().sum((1, 2)), degree, len(columns), components)  # [N]
        inverse_degree = 1.0 / degree.clamp(min=1).to(torch.float64)
        self_index = torch.arange(num_nodes, device=neighbours.device, dtype=neighbours.dtype)[:, None]
        return PreparedGraph(
            num_nodes=num_nodes, num_features=len(columns),
            neighbours=torch.where(mask, neighbours, self_index),
            neighbour_features=(attr / scale[:, None, None]).to(dtype),
            neighbour_norm=(mask * inverse_degree[:, None]).to(dtype),
        )
    edge_index = graph.edge_index.to(torch.int64)
    target = edge_index[1]
    degree = torch.bincount(target, minlength=num_nodes)  # [N]
    squares = attr.new_zeros(num_nodes).index_add_(0, target, attr.square().sum(1))
    scale = feature_scales(squares, degree, len(columns), components)  # [N]
    inverse_degree = 1.0 / degree.clamp(min=1).to(torch.float64)
    return PreparedGraph(num_nodes=num_nodes, num_features=len(columns), edge_index=edge_index,
                         edge_features=(attr / scale[target, None]).to(dtype),
                         edge_norm=inverse_degree[target].to(dtype))


def prepared_graph(hierarchy: Hierarchy, level: int, edge_features: Sequence[int] | None, backend: str,
                   dtype: torch.dtype) -> PreparedGraph:
    """The :class:`PreparedGraph` of ``level`` in ``dtype``, memoised on ``hierarchy``.

    A disjoint union of meshes is prepared mesh by mesh (each memoised on its own
    hierarchy, where a data set keeps it across batches) and the parts are concatenated,
    which equals preparing the union: features are scaled per component anyway. The union
    and its parts take the union's path (:func:`graph_path`).
    """
    columns = None if edge_features is None else tuple(edge_features)

    def build() -> PreparedGraph:
        parts = hierarchy.parts()
        path = graph_path(hierarchy, level, backend)
        if len(parts) > 1:
            return concat_prepared([prepared_graph(p, level, columns, path, dtype) for p in parts])
        return prepare_graph(hierarchy.graph(level), hierarchy.num_nodes(level), columns, table=path == "table",
                             components=hierarchy.components(level), dtype=dtype)

    return hierarchy.cached(("prepared_graph", columns, backend, dtype), level, build)


def graph_path(hierarchy: Hierarchy, level: int, backend: str) -> str:
    """``"table"`` or ``"pyg"``: the path of ``level`` under ``backend`` (memoised on ``hierarchy``
    for ``"auto"``). Under ``"auto"`` a disjoint union takes the table path only when every
    part would (:func:`uses_table`); its parts then take the union's path."""
    if backend != "auto":
        return backend

    def build() -> str:
        parts = hierarchy.parts()
        if len(parts) > 1:
            return "table" if all(graph_path(part, level, "auto") == "table" for part in parts) else "pyg"
        return "table" if uses_table(hierarchy, level, "auto") else "pyg"

    return hierarchy.cached("graph_path", level, build)


def selected_features(hierarchy: Hierarchy, level: int, edge_features: Sequence[int] | None) -> int:
    """F, the number of edge features the kernels of ``level`` see: ``len(edge_features)``, or
    the width of the level's edge features (memoised: they may be derived on access)."""
    if edge_features is not None:
        return len(edge_features)
    return hierarchy.cached("num_edge_features", level, lambda: hierarchy.num_edge_features(level))


def uses_table(hierarchy: Hierarchy, level: int, backend: str) -> bool:
    """Whether ``level`` gets the table path under ``backend``.

    ``"auto"`` takes it when the level graph has a neighbour table, or when padding its
    edges into one wastes at most a third of the slots (max in-degree <= 1.5 x the mean),
    which covers meshes and dense spectral graphs.
    """
    if backend != "auto":
        return backend == "table"
    graph = hierarchy.graph(level)
    if graph.neighbours is not None:
        return True
    degree = torch.bincount(graph.edge_index[1], minlength=hierarchy.num_nodes(level))
    return graph.num_edges > 0 and int(degree.max()) <= 1.5 * graph.num_edges / degree.numel()


def concat_prepared(parts: Sequence[PreparedGraph]) -> PreparedGraph:
    """The block-diagonal union of prepared graphs (node indices shifted, tables padded)."""
    sizes = [part.num_nodes for part in parts]
    union = dict(num_nodes=sum(sizes), num_features=parts[0].num_features)
    if all(p.edge_index is not None for p in parts):
        union.update(
            edge_index=offset_cat([p.edge_index for p in parts], offsets_of(sizes), dim=1),  # [2, E]
            edge_features=torch.cat([p.edge_features for p in parts]),
            edge_norm=torch.cat([p.edge_norm for p in parts]),
        )
    if all(p.neighbours is not None for p in parts):
        neighbours = block_diagonal_table([p.neighbours for p in parts], sizes)  # [N, K]
        features, norm = (torch.cat([pad_slots(getattr(p, name), neighbours.shape[1]) for p in parts])
                          for name in ("neighbour_features", "neighbour_norm"))
        union.update(neighbours=neighbours, neighbour_features=features, neighbour_norm=norm)
    return PreparedGraph(**union)


@dataclass(frozen=True)
class SparseOperator:
    """A constant CSR matrix ``A [R, C]`` and its transpose, as their dense index and value tensors,
    which ``csr_product`` applies (the transpose in the backward pass).

    Dense parts rather than sparse tensors: torch.compile traces no sparse tensor, so the
    compiled region reads these and the sparse matrices exist only inside the opaque
    ``csr_product``. A frozen dataclass rather than a tuple: torch.compile traces code
    that adds entries to a hierarchy's memo holding these.
    """

    crow_indices: Tensor  # [R + 1] int32 or int64
    col_indices: Tensor  # [nnz]
    values: Tensor  # [nnz]
    transpose_crow_indices: Tensor  # [C + 1]
    transpose_col_indices: Tensor  # [nnz]
    transpose_values: Tensor  # [nnz]

    @classmethod
    def from_csr(cls, matrix: Tensor, transpose: Tensor) -> SparseOperator:
        """From a CSR ``matrix [R, C]`` and its CSR ``transpose [C, R]`` (parts copied: ``values()``
        is a view whose base, the sparse tensor, torch.compile would have to trace)."""
        return cls(*(part.clone() for csr in (matrix, transpose)
                     for part in (csr.crow_indices(), csr.col_indices(), csr.values())))

    @property
    def parts(self) -> tuple[Tensor, ...]:
        """The six tensors, in ``csr_product``'s argument order."""
        return (self.crow_indices, self.col_indices, self.values,
                self.transpose_crow_indices, self.transpose_col_indices, self.transpose_values)

    def matrix(self) -> Tensor:
        """A as a sparse CSR tensor."""
        return _csr(self.crow_indices, self.col_indices, self.values, self.transpose_crow_indices.numel() - 1)

    def transpose(self) -> Tensor:
        """A^T as a sparse CSR tensor."""
        return _csr(self.transpose_crow_indices, self.transpose_col_indices, self.transpose_values,
                    self.crow_indices.numel() - 1)


def _csr(crow_indices: Tensor, col_indices: Tensor, values: Tensor, num_columns: int) -> Tensor:
    with warnings.catch_warnings():  # torch's notice that sparse CSR support is in beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow_indices, col_indices, values, (crow_indices.numel() - 1, num_columns),
                                       check_invariants=False)


def linear_operators(hierarchy: Hierarchy, level: int, edge_features: Sequence[int] | None, backend: str,
                     dtype: torch.dtype, mixed_first: bool) -> SparseOperator:
    """:func:`linear_operator` of ``level``'s :func:`prepared_graph` (prepared with a neighbour
    table), memoised on ``hierarchy``.

    A disjoint union of meshes joins its meshes' operators, each memoised on its own
    hierarchy, into block-diagonal matrices (:func:`block_diagonal_csr`): both the plain
    ``[N M, N]`` and the mixed-first ``[N, N (M + 1)]`` operator of a union are
    ``diag(A^0, A^1, ..)`` of its meshes' (rows ``t M + m`` and columns ``s (M + 1) + m`` of
    mesh j shift by whole blocks). That is the union's own operator up to the explicit zeros
    of padded slots (each mesh pads its table to its own width), with no sort or coalesce
    per batch.
    """
    columns = None if edge_features is None else tuple(edge_features)

    def build() -> SparseOperator:
        parts = hierarchy.parts()
        if len(parts) > 1:
            path = graph_path(hierarchy, level, backend)
            blocks = [linear_operators(p, level, columns, path, dtype, mixed_first) for p in parts]
            return SparseOperator.from_csr(block_diagonal_csr([b.matrix() for b in blocks]),
                                           block_diagonal_csr([b.transpose() for b in blocks]))
        return linear_operator(prepared_graph(hierarchy, level, columns, backend, dtype), mixed_first)

    return hierarchy.cached(("linear_operator", columns, backend, dtype, mixed_first), level, build)


def linear_operator(graph: PreparedGraph, mixed_first: bool = False) -> SparseOperator:
    """The M aggregations of the linear kernel as one sparse matrix and its transpose.

    With phi = (1, e_1 .. e_F), ``A[t M + m, s] = phi_m(e_st) / deg_t`` stacks A_1 .. A_M
    row-interleaved, so ``A @ x`` for node-major ``x [N, B C]`` is ``[N, M, B C]``.

    ``mixed_first``: the matrix ``[N, N (M + 1)]`` that sums channel-mixed features
    ``z [N, M + 1, C]`` (``z[s, 0] = W_0 x_s``, ``z[s, m] = W_m x_s``) into
    ``y_t = z[t, 0] + sum_m sum_s A_m(t, s) z[s, m]``: entries ``phi_m(e_st) / deg_t`` at
    column ``s (M + 1) + m`` and 1 at ``t (M + 1)``.

    Both are CSR with K entries a row (+ 1 for the mixed-first self term; padded slots
    hold zeros), in the graph's dtype, with int32 indices where they fit.
    """
    neighbours, features, norm = graph.neighbours, graph.neighbour_features, graph.neighbour_norm
    n, k = neighbours.shape
    phi = torch.cat([torch.ones_like(features[..., :1]), features], dim=-1) * norm[..., None]  # [N, K, M]
    m = phi.shape[-1]
    device = neighbours.device
    targets = torch.arange(n, device=device)[:, None, None].expand(n, m, k)
    kernels = torch.arange(m, device=device)[None, :, None].expand(n, m, k)
    sources = neighbours.to(torch.int64)[:, None, :].expand(n, m, k)
    values = phi.transpose(1, 2).reshape(-1)  # [N M K], target-major, slot order
    if mixed_first:
        self_index = torch.arange(n, device=device)
        rows = torch.cat([targets.reshape(-1), self_index])
        columns = torch.cat([(sources * (m + 1) + kernels + 1).reshape(-1), self_index * (m + 1)])
        values, size = torch.cat([values, values.new_ones(n)]), (n, n * (m + 1))
    else:
        rows, columns, size = (targets * m + kernels).reshape(-1), sources.reshape(-1), (n * m, n)
    index_dtype = torch.int32 if values.numel() < 2**31 else torch.int64  # int32: faster sparse products
    operators = []
    with warnings.catch_warnings():  # torch's notice that sparse CSR support is in beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for index, shape in ((torch.stack([rows, columns]), size), (torch.stack([columns, rows]), size[::-1])):
            csr = torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce().to_sparse_csr()
            operators.append(torch.sparse_csr_tensor(csr.crow_indices().to(index_dtype),
                                                     csr.col_indices().to(index_dtype), csr.values(), shape,
                                                     check_invariants=True))
    return SparseOperator.from_csr(*operators)


@torch.library.custom_op("geounet::csr_product", mutates_args=())
def csr_product(x: Tensor, crow_indices: Tensor, col_indices: Tensor, values: Tensor, transpose_crow_indices: Tensor,
                transpose_col_indices: Tensor, transpose_values: Tensor) -> Tensor:
    """``y[b] = A @ x[b]`` for every sample ``b`` of ``x [B, C, D]``: ``[B, R, D]``, with a
    constant CSR ``A [R, C]`` given by its parts and those of ``A^T`` (:class:`SparseOperator`),
    which the backward pass applies, ``dx[b] = A^T dy[b]``.

    A torch.library custom op, so torch.compile keeps it as one opaque call (it traces no
    sparse tensor) with a fake kernel for shapes. It saves nothing of ``x`` and never
    materialises gathered neighbour features; working sample by sample on the contiguous
    ``[C, D]`` slices needs no node-major transpose of ``x`` and gives ``y`` in the layout
    the channel mixing reads.
    """
    matrix = _csr(crow_indices, col_indices, values, transpose_crow_indices.numel() - 1)
    return _per_sample_product(matrix, x)


@csr_product.register_fake
def _csr_product_shape(x: Tensor, crow_indices: Tensor, col_indices: Tensor, values: Tensor,
                       *transpose: Tensor) -> Tensor:
    return x.new_empty(x.shape[0], crow_indices.shape[0] - 1, x.shape[2], dtype=values.dtype)  # [B, R, D]


def _csr_product_setup(ctx, inputs: tuple[Tensor, ...], output: Tensor) -> None:
    ctx.operator = inputs[1:]  # constant geometry held by the hierarchy: not saved as an activation


def _csr_product_backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
    crow, col, values, transpose_crow, transpose_col, transpose_values = ctx.operator
    return (csr_product(grad, transpose_crow, transpose_col, transpose_values, crow, col, values),
            None, None, None, None, None, None)


csr_product.register_autograd(_csr_product_backward, setup_context=_csr_product_setup)


def _per_sample_product(matrix: Tensor, x: Tensor) -> Tensor:
    """``[B, R, D]``: ``matrix [R, N]`` (sparse) times each ``x[b] [N, D]``, outside autocast (sparse
    products have no bf16 kernels).

    Each product is written in place by ``addmm_`` with ``beta=0`` (the uninitialised output
    is ignored, NaN included): ``torch.mm(matrix, sample, out=result)`` would zero a
    temporary of the output's size, accumulate into it and copy it over, 3x the time of
    the product itself on the CPU.
    """
    x = x.to(matrix.dtype).contiguous()
    out = x.new_empty(x.shape[0], matrix.shape[0], x.shape[2])
    with torch.autocast(x.device.type, enabled=False):
        for sample, result in zip(x, out, strict=True):
            result.addmm_(matrix, sample, beta=0)
    return out


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
            raise GeounetError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("num_kernels", num_kernels), ("kernel_hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise GeounetError(f"{name} must be a positive int, got {value!r}")
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
            raise GeounetError(
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


class KernelConv(_KernelConvMixin, MessagePassing):
    """The continuous-kernel convolution on level ``level`` of the hierarchy it is called with.

    It holds only parameters. ``forward(x, hierarchy)`` takes the level's geometry from the
    hierarchy, memoised there, and uses

    - the table path when the level takes it (:func:`graph_path`): for the linear kernel
      a sparse product per sample (``csr_product``) with the level's
      :func:`linear_operators`, else (under bf16 autocast, and under ``torch.export``, whose
      program then holds only standard operators: the same sums, equal up to rounding) the level's
      :class:`PreparedGraph` (:func:`prepared_graph`) with ``neighbours [N, K]`` (padded
      slots point at the node itself), ``neighbour_features [N, K, F]`` and
      ``neighbour_norm [N, K]`` (1/deg_t, 0 in padded slots): one gather of the
      node-major features ``[N, K, B * C_in]`` and one batched ``[M, K] @ [K, B C_in]``;
    - else PyTorch Geometric's ``MessagePassing`` over ``edge_index`` / ``edge_features``
      / ``edge_norm``.

    Args:
        level: the level it runs on (counted in the hierarchy given to the model).
        num_features: F, the number of selected edge features of that level.
        backend: ``"auto"``, ``"table"`` or ``"pyg"`` (see :func:`uses_table`).
        edge_features: columns of the level's ``edge_attr`` to use (None: all).
    """

    def __init__(self, level: int, in_channels: int, out_channels: int, num_features: int, kernel: str = "linear",
                 num_kernels: int = 4, kernel_hidden: int = 16, backend: str = "auto",
                 edge_features: Sequence[int] | None = None):
        MessagePassing.__init__(self, aggr="add", node_dim=-2)
        if backend not in BACKENDS:
            raise GeounetError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        self._init_parameters(in_channels, out_channels, num_features, kernel, num_kernels, kernel_hidden)
        self.level = level
        self.num_features = num_features
        self.backend = backend
        self.edge_features = None if edge_features is None else tuple(edge_features)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        num_features = selected_features(hierarchy, self.level, self.edge_features)
        if num_features != self.num_features:
            raise GeounetError(
                f"level {self.level} of this {hierarchy.kind} has {num_features} edge features, but the "
                f"model was built for {self.num_features}; edge features hold the displacement between neighbours, "
                "so their number follows the dimension of the coordinates (2-D mesh points give one fewer than 3-D "
                "ones): build the model from a hierarchy whose points have the same dimension (e.g. give 2-D points "
                "a zero z coordinate)"
            )
        self._check_features(x, hierarchy.num_nodes(self.level))
        dtype = self.linear.weight.dtype
        table = graph_path(hierarchy, self.level, self.backend) == "table"
        sparse_ok = not torch.compiler.is_exporting()  # an exported program (and ONNX) holds no custom op
        if table and self.kernel is None and x.dtype == dtype and sparse_ok:  # no prepared graph of a union needed
            mixed_first = self.out_channels <= self.in_channels
            operator = linear_operators(hierarchy, self.level, self.edge_features, self.backend, dtype, mixed_first)
            if mixed_first:
                return self._mix_then_aggregate(x, operator)
            return self._mix(x, self._aggregate_sparse(x, operator))
        graph = prepared_graph(hierarchy, self.level, self.edge_features, self.backend, dtype)
        if table:
            aggregated = self._aggregate_table(x, graph)
        else:
            weights = self._edge_weights(graph.edge_features, graph.edge_norm)  # [E, M]
            aggregated = self.propagate(graph.edge_index, x=x, weights=weights.to(x.dtype), size=None)
            aggregated = aggregated.view(*x.shape[:2], self.num_kernels, x.shape[2])  # [B, N, M, C_in]
        return self._mix(x, aggregated)  # [B, N, C_out]

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Memoise on ``hierarchy`` every tensor :meth:`forward` reads on either path (the sparse
        operators eagerly, the :class:`PreparedGraph` under tracing), so a traced or compiled
        call only reads tensors and builds no geometry."""
        dtype = self.linear.weight.dtype
        selected_features(hierarchy, self.level, self.edge_features)
        table = graph_path(hierarchy, self.level, self.backend) == "table"
        if table and self.kernel is None:
            linear_operators(hierarchy, self.level, self.edge_features, self.backend, dtype,
                             self.out_channels <= self.in_channels)
        prepared_graph(hierarchy, self.level, self.edge_features, self.backend, dtype)

    def _aggregate_table(self, x: Tensor, graph: PreparedGraph) -> Tensor:
        """``[B, N, M, C_in]`` neighbourhood sums from the fixed-degree table."""
        neighbours = graph.neighbours  # [N, K]
        n, k = neighbours.shape
        batch, channels = x.shape[0], x.shape[2]
        weights = self._edge_weights(graph.neighbour_features, graph.neighbour_norm)  # [N, K, M]
        node_major = x.transpose(0, 1).reshape(n, batch * channels)  # [N, B C]
        gathered = node_major.index_select(0, neighbours.reshape(-1)).view(n, k, batch * channels)
        aggregated = torch.bmm(weights.transpose(1, 2).to(gathered.dtype), gathered)  # [N, M, B C]
        return aggregated.view(n, self.num_kernels, batch, channels).permute(2, 0, 1, 3)

    def _aggregate_sparse(self, x: Tensor, operator: SparseOperator) -> Tensor:
        """``[B, N, M, C_in]`` neighbourhood sums of the linear kernel as one sparse product per sample."""
        batch, n, channels = x.shape
        return csr_product(x, *operator.parts).view(batch, n, self.num_kernels, channels)

    def _mix_then_aggregate(self, x: Tensor, operator: SparseOperator) -> Tensor:
        """The linear kernel with the channel maps first: ``z = [W_0 | W_1 .. W_M] x`` per node,
        then one sparse product sums ``z`` over each node and its neighbours
        (:func:`linear_operator` with ``mixed_first``). The same sums as aggregating first;
        the sparse product then moves C_out instead of C_in channels and autograd keeps
        only ``x`` (not its M aggregations). Taken when C_out <= C_in: in an interleaved
        micro-benchmark (nside 64, forward + backward, CPU time) 1.8x faster for 64 -> 32
        channels and 1.1x for 32 -> 32."""
        batch, n, channels = x.shape
        weight = self.linear.weight.view(self.out_channels, self.num_kernels + 1, channels)
        blocks = weight.transpose(0, 1).reshape(-1, channels)  # [(M + 1) C_out, C_in], W_0 first
        mixed = nn.functional.linear(x, blocks).view(batch, n * (self.num_kernels + 1), self.out_channels)
        summed = csr_product(mixed, *operator.parts)
        summed = summed.to(mixed.dtype)  # autocast's dtype, as the other paths
        return summed.add_(self.linear.bias)  # [B, N, C_out]

    def message(self, x_j: Tensor, weights: Tensor) -> Tensor:  # [B, E, C_in], [E, M]
        return (weights[:, :, None] * x_j[..., None, :]).flatten(-2)  # [B, E, M C_in]


class MessagePassingFactory:
    """:class:`~geounet.nn.blocks.OperatorFactory` of continuous-kernel graph convolutions.

    Args:
        hierarchy: a hierarchy of the kind the model will run on, read only for its
            kind and each level's number of edge features (the model keeps no geometry).
        backend: ``"table"`` (neighbour-table fast path; a graph without a table is
            padded into one), ``"pyg"`` (``MessagePassing`` over ``edge_index``) or
            ``"auto"`` (see :func:`uses_table`).
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
            raise GeounetError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        if kernel not in KERNELS:
            raise GeounetError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        self.kind = hierarchy.kind
        self.num_levels = hierarchy.num_levels
        self.edge_features = None if edge_features is None else tuple(edge_features)
        widths = [hierarchy.num_edge_features(level) for level in range(hierarchy.num_levels)]
        for level, width in enumerate(widths):
            if self.edge_features is not None and any(not 0 <= c < width for c in self.edge_features):
                raise GeounetError(f"edge_features {list(self.edge_features)} out of range for level {level}, "
                                 f"which has {width} edge features")
        self._num_features = [width if edge_features is None else len(self.edge_features) for width in widths]
        self.kernel = kernel
        self.backend = backend
        self.num_kernels = num_kernels
        self.kernel_hidden = kernel_hidden

    def __call__(self, level: int, in_channels: int, out_channels: int) -> KernelConv:
        return KernelConv(level, in_channels, out_channels, self._num_features[level], self.kernel,
                          self.num_kernels, self.kernel_hidden, self.backend, self.edge_features)
