"""Haar prolongation fused into the decoder's concatenation and residual sum.

On a Haar hierarchy whose children of a coarse cell sit in a regular block pattern of
the fine node order, the inclusion ι : V_{i-1} -> V_i copies each coarse value to its
children, so the fine node axis can be viewed as ``[coarse cells, children]`` and ι is
a broadcast along the children axis:

- HEALPix NEST: the children of pixel ``p`` are ``4p .. 4p + 3``: fine ``[M, 4]``,
  coarse ``[M, 1]``;
- the square's row-major ``2s x 2s`` grid: fine ``[s, 2, s, 2]``, coarse ``[s, 1, s, 1]``.

The decoder's ``cat([ι u, skip])`` and ``ι u + r`` then read ``u`` through that
broadcast view and never write ``ι u`` as a tensor of its own (:func:`prolong_concat`,
:func:`prolong_add_`); both give exactly the values of the unfused expressions. Other
hierarchies (eigenbases, clusters, unions of meshes) have no such layout: each hierarchy
says which views it has through ``Hierarchy.prolong_layout``, None for no such layout.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.functional.children import child_axes, sum_children
from geounet.hierarchy.base import ProlongLayout


def _child_dims(layout: ProlongLayout) -> tuple[int, ...]:
    """The child axes of ``[B, *fine_shape, C]``: where the coarse and fine block shapes differ."""
    return tuple(1 + d for d in child_axes(*layout))


class _ProlongConcat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coarse: Tensor, fine: Tensor, layout: ProlongLayout) -> Tensor:
        (batch, _, channels), (coarse_shape, fine_shape) = coarse.shape, layout
        ctx.channels, ctx.layout = channels, layout
        repeated = coarse.view(batch, *coarse_shape, channels).expand(batch, *fine_shape, channels)
        joined = torch.cat([repeated, fine.view(batch, *fine_shape, fine.shape[-1])], dim=-1)
        return joined.view(batch, fine.shape[1], joined.shape[-1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # grad [B, N, C + C_f]
        batch, (_, fine_shape) = grad.shape[0], ctx.layout
        blocks = grad.reshape(batch, *fine_shape, grad.shape[-1])  # a view unless autograd hands a strided grad
        grad_coarse = sum_children(blocks[..., : ctx.channels], _child_dims(ctx.layout))
        return grad_coarse.reshape(batch, -1, ctx.channels), grad[..., ctx.channels :], None


class _ProlongAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fine: Tensor, coarse: Tensor, layout: ProlongLayout) -> Tensor:
        (batch, _, channels), (coarse_shape, fine_shape) = coarse.shape, layout
        ctx.layout = layout
        fine.view(batch, *fine_shape, channels).add_(coarse.view(batch, *coarse_shape, channels))
        ctx.mark_dirty(fine)
        return fine

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # grad [B, N, C]
        batch, channels, (_, fine_shape) = grad.shape[0], grad.shape[-1], ctx.layout
        grad_coarse = sum_children(grad.reshape(batch, *fine_shape, channels), _child_dims(ctx.layout))
        return grad, grad_coarse.reshape(batch, -1, channels), None


def prolong_concat(coarse: Tensor, fine: Tensor, layout: ProlongLayout) -> Tensor:
    """``cat([prolong(coarse), fine], -1)`` written in one pass: ``[B, M, C]``, ``[B, N, C_f]``
    -> ``[B, N, C + C_f]``. The backward pass sums each cell's children for ``coarse``
    (:func:`~geounet.functional.children.sum_children`)."""
    return _ProlongConcat.apply(coarse, fine, layout)


def prolong_add_(fine: Tensor, coarse: Tensor, layout: ProlongLayout) -> Tensor:
    """``fine += prolong(coarse)`` in place, as a broadcast sum: ``[B, N, C]``, ``[B, M, C]``.

    In place because a fresh ``[B, N, C]`` result costs more than the sum itself on the
    CPU (page faults on the new memory); ``fine`` must be a tensor nothing else reads,
    such as a branch output (autograd raises if it saved it). The backward pass sums each
    cell's children for ``coarse``."""
    return _ProlongAdd.apply(fine, coarse, layout)
