"""Normalisation for node features ``[B, N, C]``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geounet.errors import GeounetError


class NodeGroupNorm(nn.Module):
    """Group normalisation over nodes: statistics per sample and channel group.

    The node-list analogue of ``nn.GroupNorm`` on ``[B, C, H, W]``: for each sample and
    each of ``num_groups`` channel groups, normalise over all nodes and the group's
    channels, then apply a per-channel affine map. ``num_groups=1`` is the GroupNorm(1)
    used by the residual blocks of the paper's official code
    (github.com/FabianFalck/unet-design, commit 4f65b2a,
    pdearena/pdearena/modules/twod_unet.py, ``n_groups=1``).

    ``components`` (node counts, in node order, given with each call) splits the nodes
    into independent geometries, e.g. the meshes of a
    :class:`~geounet.hierarchy.BatchedHierarchy`; the statistics are then taken over each
    geometry's nodes separately, so a geometry's output does not depend on which other
    geometries share its batch.
    """

    def __init__(self, num_groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        if channels % num_groups:
            raise GeounetError(f"channels ({channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups = num_groups
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, components: Sequence[int] | None = None) -> Tensor:  # [B, N, C]
        *lead, n, c = x.shape
        grouped = x.reshape(*lead, n, self.num_groups, c // self.num_groups)
        weight, bias = self.weight.view(grouped.shape[-2:]), self.bias.view(grouped.shape[-2:])
        if components is None or len(components) == 1:
            normed = GroupNormFunction.apply(grouped, weight, bias, self.eps)
        elif sum(components) != n:
            raise GeounetError(f"components {list(components)} hold {sum(components)} nodes, got {n} nodes")
        else:
            normed = torch.cat([GroupNormFunction.apply(part, weight, bias, self.eps)
                                for part in grouped.split(list(components), dim=-3)], dim=-3)
        return normed.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"groups={self.num_groups}, channels={self.weight.numel()}"


class GroupNormFunction(torch.autograd.Function):
    """``y = (x - μ) / sqrt(σ² + eps) · γ + β`` on ``x [..., N, G, C/G]``, with the mean μ and
    the biased variance σ² of each sample and group over the nodes and the group's
    channels (dims -3 and -1), and the affine ``γ, β [G, C/G]``.

    It saves only ``x`` and the per-group μ and 1/σ (autograd through the elementwise
    expression would keep three tensors of ``x``'s size) and computes the gradient in
    closed form: with x̂ = (x - μ)/σ, g the output gradient and means over a group,

        dx = (γ g - mean(γ g) - x̂ mean(γ g x̂)) / σ,   dγ = Σ g x̂,   dβ = Σ g.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        # Sums over the centred values (the mean, corrected once by the mean of x - mean,
        # then the sum of squares; :func:`_group_sum`): as accurate as var_mean and on the CPU
        # an order of magnitude faster than its strided reduction (``x.sum((-3, -1))`` in one
        # strided call loses 20x more digits; vector_norm 4e-4).
        count = x.shape[-3] * x.shape[-1]
        mean = _group_sum(x) / count  # [..., 1, G, 1]
        centred = x - mean
        correction = _group_sum(centred) / count  # the first mean's rounding error
        squares = centred.square()
        rstd = torch.rsqrt(_group_sum(squares) / count - correction.square() + eps)
        scale = rstd * weight  # [..., 1, G, C/G]
        ctx.save_for_backward(x, mean + correction, rstd, weight)
        if torch.compiler.is_compiling():  # traced ops must be differentiable (torch.export) and a compiler fuses them
            return torch.addcmul(bias - correction * scale, centred, scale)
        return torch.addcmul(bias - correction * scale, centred, scale, out=squares)  # reuses the buffer

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        x, mean, rstd, weight = ctx.saved_tensors
        normed = torch.sub(x, mean).mul_(rstd)  # x̂
        nodes = tuple(range(x.dim() - 2))  # every dim but the (group, channel) ones
        grad_normed = grad * normed
        grad_weight = grad_normed.sum(nodes[-1], keepdim=True)  # [..., 1, G, C/G]: per sample Σ_n g x̂
        grad_bias = grad.sum(nodes[-1], keepdim=True)
        count = x.shape[-3] * x.shape[-1]
        mean_g = (grad_bias * weight).sum(-1, keepdim=True) / count  # [..., 1, G, 1]: mean(γ g)
        mean_gx = (grad_weight * weight).sum(-1, keepdim=True) / count  # mean(γ g x̂)
        # Fresh tensors of x's size are the cost on the CPU (page faults), so g x̂'s buffer takes dx.
        out = None if torch.compiler.is_compiling() else grad_normed
        grad_x = torch.addcmul(-mean_g * rstd, grad, weight * rstd, out=out).addcmul_(normed, mean_gx * rstd, value=-1)
        per_sample = (-1, *weight.shape)  # summed over the samples for the parameters
        return grad_x, grad_weight.reshape(per_sample).sum(0), grad_bias.reshape(per_sample).sum(0), None


def _group_sum(x: Tensor) -> Tensor:
    """``[..., N, G, C/G] -> [..., 1, G, 1]``: each group's sum over the nodes and its channels.

    One group of contiguous features is one contiguous block per sample, summed in one pass
    (cascade summation, as accurate as the two-step sum and 2-3x faster); otherwise the nodes
    are summed first (a reduction that runs along the contiguous channels), then the channels.
    """
    if x.shape[-2] == 1 and x.is_contiguous():
        lead = x.shape[:-3]
        return x.reshape(*lead, -1).sum(-1).view(*lead, 1, 1, 1)
    return x.sum(-3, keepdim=True).sum(-1, keepdim=True)
