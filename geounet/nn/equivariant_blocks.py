"""Irreps-aware building blocks of the equivariant U-Net family.

The generic blocks (:mod:`geounet.nn.blocks`) break rotation equivariance three ways on
vector features: group norm centres and scales vector components like scalars, GELU acts
on each component, and a pointwise ``nn.Linear`` mixes vector components with scalars.
Their counterparts here act on e3nn irreps ``"Sx0e + Vx1o"``:

- :class:`IrrepsNorm`: scalars are centred and scaled as in GroupNorm(1); every l > 0
  block is only divided by its root-mean-square norm, sqrt(mean |v|² / (2l + 1)) over the
  geometry's nodes and the block's channels (a rotation-invariant number), with a
  learned per-channel gain and no shift;
- a gated nonlinearity (e3nn ``Gate``): SiLU on the scalars, each vector multiplied by
  the sigmoid of a scalar gate computed with it;
- :class:`IrrepsLinear`: e3nn ``o3.Linear``, which mixes channels only within one irrep
  type (bias on the scalars only).

:class:`EquivariantBranch` is R(x) = conv₂(gate(conv₁(norm(x)))); the residual block, the
decoder D_i(w, v) = ι(L w) + R([ι(L w), v]) and the bottleneck follow the generic ones.
Restriction and prolongation stay the hierarchy's own, per component: on meshes they
commute with rotations (:mod:`geounet.hierarchy.vector_fields`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.e3nn_support import require_e3nn
from geounet.nn.equivariant_conv import EquivariantFactory


class IrrepsLinear(nn.Module):
    """A pointwise equivariant linear map ``[..., irreps_in.dim] -> [..., irreps_out.dim]`` (e3nn
    ``o3.Linear``), with the ``in_features`` / ``out_features`` of an ``nn.Linear``."""

    def __init__(self, irreps_in: str, irreps_out: str):
        super().__init__()
        o3 = require_e3nn().o3
        self.linear = o3.Linear(o3.Irreps(irreps_in), o3.Irreps(irreps_out), biases=True)
        self.in_features, self.out_features = self.linear.irreps_in.dim, self.linear.irreps_out.dim

    @property
    def weight(self) -> Tensor:
        return self.linear.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class IrrepsNorm(nn.Module):
    """Normalisation over nodes that respects irreps (see the module docstring), per sample
    and per independent geometry (``hierarchy.components(level)``)."""

    def __init__(self, irreps: str, eps: float = 1e-5):
        super().__init__()
        o3 = require_e3nn().o3
        self.irreps = o3.Irreps(irreps)
        self.eps = eps
        self.blocks = [(s.start, s.stop, mul, ir.l, ir.is_scalar()) for s, (mul, ir) in
                       zip(self.irreps.slices(), self.irreps, strict=True)]
        self.weight = nn.Parameter(torch.ones(self.irreps.num_irreps))
        self.bias = nn.Parameter(torch.zeros(sum(mul for _, _, mul, _, scalar in self.blocks if scalar)))

    def forward(self, x: Tensor, components: Sequence[int]) -> Tensor:  # [B, N, C]
        if sum(components) != x.shape[-2]:
            raise GeounetError(f"components {list(components)} hold {sum(components)} nodes, got {x.shape[-2]}")
        return torch.cat([self._normalise(part) for part in x.split(list(components), dim=-2)], dim=-2)

    def _normalise(self, x: Tensor) -> Tensor:  # [B, N, C], one geometry
        out, gain, shift = [], 0, 0
        for start, stop, mul, degree, scalar in self.blocks:
            block = x[..., start:stop].unflatten(-1, (mul, 2 * degree + 1))  # [B, N, mul, 2l+1]
            if scalar:
                block = block - block.mean(dim=(-3, -2, -1), keepdim=True)
            power = block.square().mean(dim=(-3, -2, -1), keepdim=True)  # [B, 1, 1, 1], invariant
            block = block * torch.rsqrt(power + self.eps) * self.weight[gain:gain + mul, None]
            if scalar:
                block = block + self.bias[shift:shift + mul, None]
                shift += mul
            gain += mul
            out.append(block.flatten(-2))
        return torch.cat(out, dim=-1)


def gated_irreps(irreps_out: str) -> tuple[nn.Module, str]:
    """``(gate, irreps_in)``: e3nn's Gate producing ``irreps_out`` (scalars ``0e`` through SiLU,
    every l > 0 irrep times the sigmoid of its own gate scalar) and the irreps it consumes."""
    e3nn = require_e3nn()
    o3 = e3nn.o3
    irreps = o3.Irreps(irreps_out).simplify()
    scalars = o3.Irreps([(mul, ir) for mul, ir in irreps if ir.l == 0])
    gated = o3.Irreps([(mul, ir) for mul, ir in irreps if ir.l > 0])
    if any(ir.p != 1 for _, ir in scalars):
        raise GeounetError(f"the gated nonlinearity takes even scalars (0e) only, got {irreps_out}")
    gates = o3.Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else o3.Irreps("")
    gate = e3nn.nn.Gate(scalars, [torch.nn.functional.silu] * len(scalars), gates,
                        [torch.sigmoid] * len(gates), gated)
    return gate, str(gate.irreps_in)


class EquivariantBranch(nn.Module):
    """R(x) = conv₂(gate(conv₁(norm(x)))): ``[B, N, irreps_in.dim] -> [B, N, irreps_out.dim]`` on a level."""

    def __init__(self, factory: EquivariantFactory, level: int, irreps_in: str, irreps_out: str):
        super().__init__()
        self.level = level
        self.norm = IrrepsNorm(irreps_in)
        self.gate, gate_in = gated_irreps(irreps_out)
        self.op1 = factory(level, irreps_in, gate_in)
        self.op2 = factory(level, str(self.gate.irreps_out), irreps_out)

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        h = self.op1(self.norm(x, hierarchy.components(self.level)), hierarchy)
        return self.op2(self.gate(h), hierarchy)


class EquivariantBlock(nn.Module):
    """x + R(x) on one level, irreps preserved."""

    def __init__(self, factory: EquivariantFactory, level: int, irreps: str):
        super().__init__()
        self.branch = EquivariantBranch(factory, level, irreps, irreps)

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        return x + self.branch(x, hierarchy)


class EquivariantDecoder(nn.Module):
    """D_i(w, v) = ι(L w) + R_i([ι(L w), v]), then ``extra_blocks`` residual blocks, with
    ``L`` an :class:`IrrepsLinear` and ι the hierarchy's prolongation (per component)."""

    def __init__(self, factory: EquivariantFactory, level: int, coarse_irreps: str, skip_irreps: str, irreps: str,
                 extra_blocks: int = 0):
        super().__init__()
        if level < 1:
            raise GeounetError(f"decoders exist for levels >= 1, got level {level}")
        self.level = level
        self.channel_map = IrrepsLinear(coarse_irreps, irreps)
        self.merge = EquivariantBranch(factory, level, f"{irreps}+{skip_irreps}", irreps)
        self.blocks = nn.ModuleList(EquivariantBlock(factory, level, irreps) for _ in range(extra_blocks))

    def forward(self, coarse: Tensor, skip: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        # coarse: [B, N_{i-1}, C_{i-1}], skip: [B, N_i, C_v]
        up = hierarchy.prolong(self.channel_map(coarse), self.level - 1)  # [B, N_i, C_i]
        h = up + self.merge(torch.cat([up, skip], dim=-1), hierarchy)
        for block in self.blocks:
            h = block(h, hierarchy)
        return h  # [B, N_i, C_i]


class EquivariantBottleneck(nn.Module):
    """U_0 : V_0 -> W_0, an :class:`IrrepsLinear` followed by residual blocks on the coarsest level."""

    def __init__(self, factory: EquivariantFactory, irreps_in: str, irreps: str, num_blocks: int = 1):
        super().__init__()
        self.channel_map = IrrepsLinear(irreps_in, irreps)
        self.blocks = nn.ModuleList(EquivariantBlock(factory, 0, irreps) for _ in range(num_blocks))

    def forward(self, v: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:  # [B, N_0, C_v]
        h = self.channel_map(v)
        for block in self.blocks:
            h = block(h, hierarchy)
        return h  # [B, N_0, C_0]
