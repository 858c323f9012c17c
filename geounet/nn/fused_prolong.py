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

from geounet.hierarchy.base import ProlongLayout


def prolong_concat(coarse: Tensor, fine: Tensor, layout: ProlongLayout) -> Tensor:
    """``cat([prolong(coarse), fine], -1)`` written in one pass: ``[B, M, C]``, ``[B, N, C_f]``
    -> ``[B, N, C + C_f]``. The backward pass sums each cell's children for ``coarse``."""
    (batch, _, channels), (coarse_shape, fine_shape) = coarse.shape, layout
    repeated = coarse.view(batch, *coarse_shape, channels).expand(batch, *fine_shape, channels)
    joined = torch.cat([repeated, fine.view(batch, *fine_shape, fine.shape[-1])], dim=-1)
    return joined.view(batch, fine.shape[1], joined.shape[-1])


def prolong_add_(fine: Tensor, coarse: Tensor, layout: ProlongLayout) -> Tensor:
    """``fine += prolong(coarse)`` in place, as a broadcast sum: ``[B, N, C]``, ``[B, M, C]``.

    In place because a fresh ``[B, N, C]`` result costs more than the sum itself on the
    CPU (page faults on the new memory); ``fine`` must be a tensor nothing else reads,
    such as a branch output (autograd raises if it saved it)."""
    (batch, _, channels), (coarse_shape, fine_shape) = coarse.shape, layout
    fine.view(batch, *fine_shape, channels).add_(coarse.view(batch, *coarse_shape, channels))
    return fine
