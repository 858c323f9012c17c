"""Typed node features: how many scalars and 3-D vectors a field holds, and their layout.

A :class:`FieldSpec` of S scalars and V vectors describes features ``[..., N, S + 3V]``:
the S scalar channels first, then vector v in channels ``S + 3v .. S + 3v + 2`` as
world-coordinate (x, y, z) components. That is e3nn's layout of the irreps
``"Sx0e + Vx1o"`` (scalars even under inversion, vectors odd), so the spec's
:attr:`~FieldSpec.irreps` string is what an equivariant model reads; models without
symmetry see plain channels. A rotation R acts by leaving the scalars alone and
rotating each vector, :meth:`FieldSpec.rotate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from geounet.errors import GeounetError


@dataclass(frozen=True)
class FieldSpec:
    """S scalars and V 3-D vectors per node, laid out ``[..., S + 3V]`` (scalars first)."""

    scalars: int = 0
    vectors: int = 0

    def __post_init__(self) -> None:
        for name in ("scalars", "vectors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise GeounetError(f"FieldSpec.{name} must be an int >= 0, got {value!r}")
        if self.dim == 0:
            raise GeounetError("a FieldSpec needs at least one scalar or vector")

    @property
    def dim(self) -> int:
        """Channels of the feature tensor, S + 3V."""
        return self.scalars + 3 * self.vectors

    @property
    def irreps(self) -> str:
        """The e3nn irreps of the layout, e.g. ``"2x0e+1x1o"``."""
        parts = [f"{self.scalars}x0e"] * bool(self.scalars) + [f"{self.vectors}x1o"] * bool(self.vectors)
        return "+".join(parts)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(scalars [..., S], vectors [..., V, 3])`` of ``x [..., S + 3V]``."""
        if x.shape[-1] != self.dim:
            raise GeounetError(f"{self} has {self.dim} channels, got features of shape {tuple(x.shape)}")
        return x[..., : self.scalars], x[..., self.scalars:].unflatten(-1, (self.vectors, 3))

    def rotate(self, x: Tensor, rotation: Tensor) -> Tensor:
        """``x [..., S + 3V]`` with every vector rotated by ``rotation [3, 3]`` (scalars unchanged)."""
        scalars, vectors = self.split(x)
        return torch.cat([scalars, (vectors @ rotation.to(x).T).flatten(-2)], dim=-1)
