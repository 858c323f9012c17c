"""Mass-weighted losses and errors of node fields ``[B, N, C]``.

Nodes carry quadrature weights (masses), so sums over nodes are integrals: the losses
below measure functions, not node vectors, whatever the mesh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def weighted_mse(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean squared error Σ_n w_n |ŷ_n - y_n|², averaged over batch and channels.

    ``weights [N]`` are normalised to sum to one here. With per-geometry normalised masses
    (:func:`geounet.data.samples.node_weights`) this is ∫ |ŷ - y|² / |domain| averaged over
    the geometries of the batch.
    """
    weights = (weights / weights.sum()).to(prediction.dtype)
    return torch.einsum("bnc,n->", (prediction - target) ** 2, weights) / (prediction.shape[0] * prediction.shape[2])


def relative_l2(prediction: Tensor, target: Tensor, mass: Tensor, components: Sequence[int] | None = None) -> Tensor:
    """Relative L2 errors ‖ŷ - y‖_M / ‖y‖_M over nodes and channels: one per sample, ``[B]``, or
    with ``components`` (node counts of the geometries of a union) one per sample and geometry,
    ``[B * len(components)]``."""
    weights = mass.to(prediction.dtype)
    error = torch.einsum("bnc,n->bn", (prediction - target) ** 2, weights)  # [B, N]
    norm = torch.einsum("bnc,n->bn", target**2, weights)
    if components is None:
        error, norm = error.sum(1), norm.sum(1)
    else:
        error = torch.stack([part.sum(1) for part in error.split(list(components), dim=1)], dim=1).reshape(-1)
        norm = torch.stack([part.sum(1) for part in norm.split(list(components), dim=1)], dim=1).reshape(-1)
    return torch.sqrt(error / norm.clamp_min(torch.finfo(norm.dtype).tiny))
