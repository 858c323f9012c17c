"""Haar restriction and prolongation on block layouts, whose backward passes are the adjoint operators.

On the Haar hierarchies whose children of a coarse cell sit in a regular block pattern of
the fine node order (HEALPix NEST: ``[M, 4]``; HEALPix face images: ``[12, m, 2, m, 2]``;
see ``Hierarchy.prolong_layout``), the L2 projection R onto the coarse space is the mean
over the child axes and the inclusion ι copies each coarse value to its children:

    (R x)_p = (1 / k) Σ_{c ∈ children(p)} x_c,      (ι u)_c = u_{parent(c)},

with k children per cell. Their adjoints in the plain (unweighted) inner product are
R^T g = ι g / k and ι^T g = k R g, so each backward pass is the other operator.

Why not ``x.mean(dims)`` and ``expand``: on the CPU one reduction over the face images' two
child axes ``[..., m, 2, m, 2, C]`` runs 4-8x slower than adding the halves of each axis
(:func:`sum_children`), and autograd's backward of ``expand`` is such a reduction. The sums
round differently from ``mean``'s (by an ulp).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def child_axes(coarse_shape: Sequence[int], fine_shape: Sequence[int]) -> tuple[int, ...]:
    """The child axes of a block layout: where the coarse and fine block shapes differ."""
    return tuple(d for d, (c, f) in enumerate(zip(coarse_shape, fine_shape, strict=True)) if c != f)


def sum_children(x: Tensor, dims: Sequence[int]) -> Tensor:
    """``x`` summed over each axis in ``dims`` (kept with size 1).

    An axis of two children (the face images' row and column pairs) is one addition of its two
    halves: the memory traffic of a reduction without its strided inner loop. Longer axes (NEST's
    4 children) are one reduction, which reads the data once where adding slices would not.
    """
    for dim in dims:
        if x.shape[dim] == 2:
            first, second = x.unbind(dim)
            x = (first + second).unsqueeze(dim)
        else:
            x = x.sum(dim, keepdim=True)
    return x


class _ChildMean(torch.autograd.Function):
    """R: the mean over the child axes ``dims`` of ``x`` (kept with size 1); backward ι g / k."""

    @staticmethod
    def forward(ctx, x: Tensor, dims: tuple[int, ...]) -> Tensor:
        ctx.fine_shape = x.shape
        ctx.scale = 1.0 / torch.Size([x.shape[d] for d in dims]).numel()
        return sum_children(x, dims).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return (grad * ctx.scale).expand(ctx.fine_shape), None


class _ChildRepeat(torch.autograd.Function):
    """ι: ``x`` copied along its size-1 child axes to ``fine_shape`` (a new tensor); backward Σ_children g."""

    @staticmethod
    def forward(ctx, x: Tensor, fine_shape: tuple[int, ...]) -> Tensor:
        ctx.dims = child_axes(x.shape, fine_shape)
        return x.expand(fine_shape).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return sum_children(grad, ctx.dims), None


def child_mean(x: Tensor, dims: Sequence[int]) -> Tensor:
    """R on a block view: ``x [..., fine block axes ..., C]`` averaged over the child axes ``dims``
    (kept with size 1). Differentiable; the backward pass writes ι g / k."""
    return _ChildMean.apply(x, tuple(d % x.dim() for d in dims))


def child_repeat(x: Tensor, fine_shape: Sequence[int]) -> Tensor:
    """ι on a block view: ``x`` with size-1 child axes copied to ``fine_shape`` (a contiguous
    tensor). Differentiable; the backward pass sums each cell's children by adding slices."""
    return _ChildRepeat.apply(x, tuple(fine_shape))
