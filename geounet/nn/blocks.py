"""Residual building blocks over one level of a hierarchy.

A block is generic over the geometry: the only geometric part is the *spatial
operator*, an ``nn.Module`` called ``op(x, hierarchy)`` that maps ``[B, N, C_in] ->
[B, N, C_out]`` on its level of the hierarchy it is given (a 3x3 convolution on the
square, message passing on a graph). Spatial operators are made by an
:class:`OperatorFactory`, ``factory(level, in_channels, out_channels)``. Blocks hold only
parameters: the hierarchy comes with every call, and also says which nodes form
independent geometries (``hierarchy.components(level)``), over which the group norms
take their statistics separately.

Blocks can trade compute for memory (:func:`set_checkpointing`): a checkpointed block
keeps only its inputs for the backward pass and recomputes its branch's activations
there (one more forward pass of the branch), instead of keeping every intermediate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.norm import NodeGroupNorm


class OperatorFactory(Protocol):
    """Makes the spatial operator of a level, called ``op(x [B, N, C_in], hierarchy) -> [B, N, C_out]``,
    for hierarchies of the kind ``kind``."""

    kind: str

    def __call__(self, level: int, in_channels: int, out_channels: int) -> nn.Module: ...


class ResidualBranch(nn.Module):
    """The residual branch R(x) = op2(act(norm2(op1(act(norm1(x)))) ⊙ (1+s) + t)).

    ``(s, t)`` is a FiLM modulation computed from an optional conditioning vector
    ``cond [B, cond_dim]`` (e.g. a diffusion time or forecast lead-time embedding).
    """

    def __init__(
        self,
        factory: OperatorFactory,
        level: int,
        in_channels: int,
        out_channels: int,
        cond_dim: int | None = None,
        num_groups: int = 1,
    ):
        super().__init__()
        self.level = level
        self.norm1 = NodeGroupNorm(_groups(num_groups, in_channels), in_channels)
        self.op1 = factory(level, in_channels, out_channels)
        self.norm2 = NodeGroupNorm(_groups(num_groups, out_channels), out_channels)
        self.op2 = factory(level, out_channels, out_channels)
        self.act = nn.GELU()
        self.film = nn.Linear(cond_dim, 2 * out_channels) if cond_dim else None

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:  # [B, N, C_in]
        components = hierarchy.components(self.level)
        h = self.op1(self.act(self.norm1(x, components)), hierarchy)
        h = self.norm2(h, components)  # [B, N, C_out]
        if self.film is not None:
            if cond is None:
                raise GeounetError("this block was built with cond_dim, so it needs a cond tensor")
            scale, shift = self.film(cond)[:, None, :].chunk(2, dim=-1)  # [B, 1, C_out] each
            h = h * (1 + scale) + shift
        return self.op2(self.act(h), hierarchy)  # [B, N, C_out]


class Checkpointable(nn.Module):
    """A module whose expensive part may run under activation checkpointing (``self.checkpoint``,
    off by default; switched for a whole model by :func:`set_checkpointing`)."""

    checkpoint: bool = False

    def _run(self, fn: Callable[..., Tensor], *args) -> Tensor:
        """``fn(*args)``; with checkpointing on and gradients recorded, its intermediate
        activations are recomputed in the backward pass instead of kept."""
        if self.checkpoint and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)


def set_checkpointing(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch activation checkpointing of every residual branch in ``model`` on or off
    (returns ``model``). Outputs and gradients are unchanged; the backward pass keeps
    each block's inputs instead of its activations and recomputes the branch once more."""
    for module in model.modules():
        if isinstance(module, Checkpointable):
            module.checkpoint = enabled
    return model


class ResidualBlock(Checkpointable):
    """x + R(x) on one level, channels preserved."""

    def __init__(
        self,
        factory: OperatorFactory,
        level: int,
        channels: int,
        cond_dim: int | None = None,
        num_groups: int = 1,
    ):
        super().__init__()
        self.branch = ResidualBranch(factory, level, channels, channels, cond_dim, num_groups)

    def forward(self, x: Tensor, hierarchy: Hierarchy, cond: Tensor | None = None) -> Tensor:
        return x + self._run(self.branch, x, hierarchy, cond)


def _groups(requested: int, channels: int) -> int:
    """The largest divisor of ``channels`` not above ``requested``."""
    for groups in range(min(requested, channels), 0, -1):
        if channels % groups == 0:
            return groups
    return 1
