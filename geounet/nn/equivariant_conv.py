"""Rotation-equivariant message passing over a level graph, built on e3nn.

Node features carry e3nn irreps (``"Sx0e + Vx1o"``, :class:`~geounet.functional.fields.FieldSpec`).
On a level graph with node positions p, an edge s -> t has the vector r_st = p_s - p_t
(translation invariant; rotated by R when the geometry is). The convolution is

    y_t = W_self x_t + W_mix (1 / deg_t) Σ_{s -> t} x_s ⊗_{w(|r_st| / ρ_t)} Y(r_st / |r_st|),

where Y holds the real spherical harmonics of degree 0..lmax of the edge direction, ⊗_w
is e3nn's tensor product of every input channel with every harmonic into each output
irrep type it reaches (the ``"uvu"`` paths, one weight per channel and path), whose
weights w are a small MLP of the edge length over ρ_t, the RMS edge length of the target's
geometry (a disjoint union of meshes is scaled mesh by mesh), and W_self, W_mix are e3nn
``o3.Linear`` maps (each mixes only channels of one irrep type). Since Y(R r) = D(R) Y(r)
and the tensor product and linear maps intertwine the Wigner matrices D, the layer
satisfies conv(D(R) x; R p) = D(R) conv(x; p) for every rotation (and, with parities,
reflection) R; the checks use e3nn's own ``assert_equivariant``.

The edge geometry of each level (indices, harmonics, radial basis, 1/deg) is computed
once in float64 and memoised on the hierarchy (:meth:`~geounet.hierarchy.base.Hierarchy.cached`),
so it moves and collates with it; the operator holds only parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.e3nn_support import require_e3nn
from geounet.nn.message_passing import feature_scales

#: edge lengths over the RMS length covered by the radial basis (Gaussians centred on 0 .. this)
RADIAL_RANGE = 3.0


@dataclass(frozen=True)
class EdgeGeometry:
    """The rotation-covariant edge data of one level, in the features' dtype."""

    source: Tensor  # [E] int64
    target: Tensor  # [E] int64
    harmonics: Tensor  # [E, (lmax + 1)²] Y(r_st / |r_st|), e3nn "component" normalisation
    radial: Tensor  # [E, num_basis] Gaussian basis of |r_st| / ρ_t
    inverse_degree: Tensor  # [E] 1 / deg of the target


def edge_geometry(hierarchy: Hierarchy, level: int, lmax: int, num_basis: int, dtype: torch.dtype) -> EdgeGeometry:
    """The :class:`EdgeGeometry` of ``level``, memoised on ``hierarchy``."""

    def build() -> EdgeGeometry:
        e3nn = require_e3nn()
        graph = hierarchy.graph(level)
        if graph.positions is None:
            raise GeounetError(f"{hierarchy.kind} gives no node positions on level {level}; the equivariant "
                               "convolution needs them for its edge vectors")
        positions = graph.positions.to(torch.float64)  # [N, D]
        if positions.shape[-1] != 3:
            raise GeounetError(f"the equivariant convolution needs 3-D node positions, {hierarchy.kind} has "
                               f"{positions.shape[-1]}-D ones; embed the geometry in 3-D")
        source, target = graph.edge_index.to(torch.int64)
        vectors = positions[source] - positions[target]  # [E, 3]
        lengths = vectors.norm(dim=-1)  # [E]
        num_nodes = positions.shape[0]
        degree = torch.bincount(target, minlength=num_nodes)  # [N]
        squares = lengths.new_zeros(num_nodes).index_add_(0, target, lengths.square())
        rho = feature_scales(squares, degree, 1, hierarchy.components(level))  # [N]
        irreps_sh = e3nn.o3.Irreps.spherical_harmonics(lmax)
        harmonics = e3nn.o3.spherical_harmonics(irreps_sh, vectors, normalize=True, normalization="component")
        radial = e3nn.math.soft_one_hot_linspace(lengths / rho[target], 0.0, RADIAL_RANGE, num_basis,
                                                 basis="gaussian", cutoff=False)
        inverse_degree = 1.0 / degree.clamp(min=1).to(torch.float64)
        return EdgeGeometry(source, target, harmonics.to(dtype), radial.to(dtype), inverse_degree[target].to(dtype))

    return hierarchy.cached(("equivariant_edges", lmax, num_basis, dtype), level, build)


class EquivariantConv(nn.Module):
    """The e3nn convolution above on one level, ``conv(x [B, N, irreps_in.dim], hierarchy)
    -> [B, N, irreps_out.dim]``."""

    def __init__(self, level: int, irreps_in: str, irreps_out: str, lmax: int = 1, num_basis: int = 8,
                 radial_hidden: int = 16):
        super().__init__()
        o3 = require_e3nn().o3
        self.level, self.lmax, self.num_basis = level, lmax, num_basis
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        wanted = {ir for _, ir in self.irreps_out}
        paths, instructions = [], []
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir in ir_in * ir_sh:
                    if ir in wanted:
                        instructions.append((i, j, len(paths), "uvu", True))
                        paths.append((mul, ir))
        if not paths:
            raise GeounetError(f"no tensor-product path from {self.irreps_in} with harmonics up to l={lmax} "
                               f"reaches {self.irreps_out}")
        irreps_messages = o3.Irreps(paths)
        self.product = o3.TensorProduct(self.irreps_in, irreps_sh, irreps_messages, instructions,
                                        shared_weights=False, internal_weights=False)
        self.radial = nn.Sequential(nn.Linear(num_basis, radial_hidden), nn.SiLU(),
                                    nn.Linear(radial_hidden, self.product.weight_numel))
        self.mix = o3.Linear(irreps_messages, self.irreps_out)
        self.self_interaction = o3.Linear(self.irreps_in, self.irreps_out)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:  # [B, N, C_in]
        edges = edge_geometry(hierarchy, self.level, self.lmax, self.num_basis, x.dtype)
        weights = self.radial(edges.radial) * edges.inverse_degree[:, None]  # [E, W]: 1/deg folded in (linear)
        batch, num_edges = x.shape[0], edges.source.numel()
        messages = self.product(x[:, edges.source],  # [B, E, C_msg]
                                edges.harmonics.expand(batch, num_edges, -1),
                                weights.expand(batch, num_edges, -1))
        summed = messages.new_zeros(batch, x.shape[1], messages.shape[-1]).index_add_(1, edges.target, messages)
        return self.self_interaction(x) + self.mix(summed)  # [B, N, C_out]

    def extra_repr(self) -> str:
        return f"level={self.level}, {self.irreps_in} -> {self.irreps_out}, lmax={self.lmax}"


class EquivariantFactory:
    """An :class:`~geounet.nn.blocks.OperatorFactory` of :class:`EquivariantConv` for hierarchies
    of ``kind``, called ``factory(level, irreps_in, irreps_out)`` with e3nn irreps strings.

    Given to :func:`~geounet.models.build_unet` it selects the equivariant family (irreps-aware
    lift, norms, gates, decoders and head; :mod:`geounet.models.equivariant`)."""

    def __init__(self, kind: str, lmax: int = 1, num_basis: int = 8, radial_hidden: int = 16):
        for name, value in (("lmax", lmax), ("num_basis", num_basis), ("radial_hidden", radial_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GeounetError(f"EquivariantFactory.{name} must be a positive int, got {value!r}")
        self.kind, self.lmax, self.num_basis, self.radial_hidden = kind, lmax, num_basis, radial_hidden

    def __call__(self, level: int, irreps_in: str, irreps_out: str) -> EquivariantConv:
        return EquivariantConv(level, irreps_in, irreps_out, self.lmax, self.num_basis, self.radial_hidden)
