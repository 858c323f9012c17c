"""Mass-weighted losses and errors of node fields ``[B, N, C]``, and of per-node class scores
(segmentation: cross-entropy, focal and soft Dice losses, class weights).

Nodes carry quadrature weights (masses), so sums over nodes are integrals: the losses
below measure functions, not node vectors, whatever the mesh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.errors import GeounetError


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


def class_frequency_weights(labels: Tensor, weights: Tensor, num_classes: int) -> Tensor:
    """Inverse-frequency class weights α_c = 1 / (K f_c), ``[K]`` float64.

    f_c = Σ_n w_n [y_n = c] / Σ_n w_n is the weighted share of class c among ``labels [M]``
    (integer classes; ``weights [M]`` node weights, e.g. areas), K = ``num_classes``. Then
    Σ_c f_c α_c = 1: a node weighs 1 on average, and every class contributes the same
    total weight 1 / K to a weighted loss. A class absent from ``labels`` has no frequency
    to invert and is refused.
    """
    labels, weights = labels.reshape(-1).long(), weights.reshape(-1).double()
    totals = torch.zeros(num_classes, dtype=torch.float64, device=weights.device).index_add_(0, labels, weights)
    if (totals <= 0).any():
        missing = (totals <= 0).nonzero().flatten().tolist()
        raise GeounetError(f"class(es) {missing} never occur in the training labels, so they have no frequency to "
                           "weight by; use more training data or class_weighting = 'none'")
    return totals.sum() / (num_classes * totals)


def segmentation_cross_entropy(logits: Tensor, labels: Tensor, weights: Tensor, class_weights: Tensor | None = None,
                               focal_gamma: float = 0.0) -> Tensor:
    """Node-weighted (focal) cross-entropy of per-node class scores, averaged over the batch.

        L = (1 / B) Σ_b Σ_n ŵ_n α_{y_bn} (1 - p_bn)^γ (-log p_bn),   p_bn = softmax(logits_bn)[y_bn],

    with ``logits [B, N, K]``, integer ``labels [B, N]``, ``weights [N]`` normalised here to
    ŵ summing to one (so the sum over nodes is an area average), ``class_weights`` α (default
    1) and γ = ``focal_gamma`` (0: plain cross-entropy; Lin et al.'s focal loss for γ > 0,
    which down-weights nodes already classified with confidence).
    """
    weights = (weights / weights.sum()).to(logits.dtype)
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, labels.long()[..., None])[..., 0]  # [B, N]
    per_node = -log_p
    if focal_gamma > 0:
        per_node = per_node * (1 - log_p.exp()).pow(focal_gamma)
    if class_weights is not None:
        per_node = per_node * class_weights.to(logits)[labels.long()]
    return torch.einsum("bn,n->", per_node, weights) / logits.shape[0]


def soft_dice_loss(logits: Tensor, labels: Tensor, weights: Tensor, smooth: float = 1e-6) -> Tensor:
    """1 - mean over classes of the soft Dice coefficient of the batch (Milletari et al.'s V-Net loss,
    node-weighted):

        D_c = (2 Σ_{b,n} ŵ_n p_bnc g_bnc + ε) / (Σ_{b,n} ŵ_n (p_bnc + g_bnc) + ε),

    p = softmax(``logits [B, N, K]``), g the one-hot ``labels [B, N]``, ŵ ``weights [N]``
    normalised to sum to one, ε = ``smooth`` (a class absent from both prediction and target
    scores D_c = 1). Every class counts alike whatever its area, which is what makes Dice a
    remedy for class imbalance.
    """
    weights = (weights / weights.sum()).to(logits.dtype)
    probabilities = torch.softmax(logits, dim=-1)  # [B, N, K]
    truth = torch.nn.functional.one_hot(labels.long(), logits.shape[-1]).to(logits)  # [B, N, K]
    overlap = torch.einsum("bnk,bnk,n->k", probabilities, truth, weights)
    total = torch.einsum("bnk,n->k", probabilities + truth, weights)
    return 1 - ((2 * overlap + smooth) / (total + smooth)).mean()
