"""The equivariant U-Net family: a Multi-ResNet whose every part commutes with rotations.

Built by :func:`build_equivariant_unet` (or :func:`~geounet.models.build_unet` given an
:class:`~geounet.nn.equivariant_conv.EquivariantFactory`), for inputs and outputs typed by
:class:`~geounet.functional.fields.FieldSpec` (S scalars + V world-coordinate vectors,
e3nn irreps ``"Sx0e + Vx1o"``). Every level keeps the hidden irreps
``"width x 0e + vectors x 1o"``; the lift and head are e3nn linear maps, the encoder is the
identity (the skips are the projections P_j of the lifted input), and the bottleneck and
decoders are the irreps-aware blocks of :mod:`geounet.nn.equivariant_blocks`.

Which rotations the whole U-Net commutes with is decided by the hierarchy: every layer
is equivariant under any rotation R of the node positions (edge vectors rotate, lengths
do not), and restriction / prolongation act per component with weights that do not depend
on the embedding. So the model is O(3)-equivariant wherever the hierarchy is built from
intrinsic geometry (cluster and eigenbasis hierarchies of a mesh: rotating the mesh leaves
them unchanged), and on HEALPix under the rotations that permute pixels at every level
(the 90° turns about the polar axis, ``hierarchy.node_symmetries()``).

``tangent_output=True`` (for fields on the unit sphere) projects every output vector onto
the tangent plane at its node, w -> w - (w · p) p, which commutes with the same rotations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.fields import FieldSpec
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.finest import finest_levels
from geounet.hierarchy.vector_fields import tangent_part
from geounet.nn.encoder import IdentityEncoder
from geounet.nn.equivariant_blocks import EquivariantBottleneck, EquivariantDecoder, IrrepsLinear
from geounet.nn.equivariant_conv import EquivariantFactory
from geounet.nn.unet import UNet, geometry_for


class EquivariantUNet(UNet):
    """A :class:`~geounet.nn.unet.UNet` with typed inputs and outputs, ``model(x [B, N, fields_in.dim],
    hierarchy) -> [B, N, fields_out.dim]``; with ``tangent_output`` its output vectors are tangent
    to the unit sphere."""

    def __init__(self, fields_in: FieldSpec, fields_out: FieldSpec, tangent_output: bool = False, **parts):
        super().__init__(**parts)
        self.fields_in, self.fields_out, self.tangent_output = fields_in, fields_out, tangent_output

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        if cond is not None:
            raise GeounetError("the equivariant U-Net takes no cond tensor")
        y = super().forward(x, hierarchy)  # [B, N, S + 3V]
        if not (self.tangent_output and self.fields_out.vectors):
            return y
        levels = geometry_for(self, hierarchy, self.kind, self.num_levels)
        scalars = self.fields_out.scalars
        vectors = tangent_part(levels, y[..., scalars:], levels.finest_level)
        return torch.cat([y[..., :scalars], vectors], dim=-1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.fields_in.irreps} -> {self.fields_out.irreps}"


def as_fields(value: int | FieldSpec, name: str) -> FieldSpec:
    """A :class:`FieldSpec` from itself or from a channel count (that many scalars)."""
    if isinstance(value, FieldSpec):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GeounetError(f"{name} must be a FieldSpec or a positive int (that many scalars), got {value!r}")
    return FieldSpec(scalars=value)


def build_equivariant_unet(
    hierarchy: Hierarchy,
    fields_in: int | FieldSpec,
    fields_out: int | FieldSpec,
    factory: EquivariantFactory | None = None,
    *,
    width: int = 16,
    vectors: int | None = None,
    depth: int | None = None,
    decoder_blocks: int = 0,
    bottleneck_blocks: int = 1,
    tangent_output: bool = False,
) -> EquivariantUNet:
    """An equivariant Multi-ResNet for hierarchies of ``hierarchy``'s kind (read only for its kind
    and number of levels; the model is called ``model(x, h)`` with any hierarchy of that kind).

    Args:
        fields_in, fields_out: the typed input and output features (an int: that many scalars).
        factory: the level operators (None: :class:`EquivariantFactory` with harmonics up to l = 1).
        width: scalar channels (0e) of every level's hidden features.
        vectors: vector channels (1o) of the hidden features (None: ``width // 2``).
        depth: number of levels, the finest ones of the hierarchy (None: all).
        decoder_blocks: extra residual blocks per decoder; bottleneck_blocks: blocks of U_0.
        tangent_output: project the output vectors onto the unit sphere's tangent planes.
    """
    if depth is not None:
        hierarchy = finest_levels(hierarchy, depth)
    factory = EquivariantFactory(hierarchy.kind) if factory is None else factory
    if factory.kind != hierarchy.kind:
        raise GeounetError(f"factory makes operators for {factory.kind} hierarchies, not {hierarchy.kind}")
    fields_in, fields_out = as_fields(fields_in, "fields_in"), as_fields(fields_out, "fields_out")
    hidden = FieldSpec(width, width // 2 if vectors is None else vectors).irreps
    levels = range(1, hierarchy.num_levels)
    return EquivariantUNet(
        fields_in, fields_out, tangent_output,
        kind=hierarchy.kind,
        num_levels=hierarchy.num_levels,
        lift=IrrepsLinear(fields_in.irreps, hidden),
        encoders={i: IdentityEncoder() for i in levels},
        bottleneck=EquivariantBottleneck(factory, hidden, hidden, bottleneck_blocks),
        decoders={i: EquivariantDecoder(factory, i, hidden, hidden, hidden, decoder_blocks) for i in levels},
        head=IrrepsLinear(hidden, fields_out.irreps),
    )
