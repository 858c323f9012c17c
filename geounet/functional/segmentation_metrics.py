"""Segmentation scores of per-node class maps: overlap (IoU, Dice) and boundary distances.

**Overlap.** A weighted confusion matrix C_ij = Σ_n w_n [y_n = i][ŷ_n = j] (weights: node
areas, so scores measure areas, not node counts) gives per class

    IoU_c  = C_cc / (Σ_j C_cj + Σ_i C_ic - C_cc),
    Dice_c = 2 C_cc / (Σ_j C_cj + Σ_i C_ic),

and the mean IoU over the classes present in the truth or the prediction. A class absent
from both has no score (``None``), not a made-up 0 or 1.

**Boundaries.** The boundary of class c in a label map is the set of nodes of class c with a
graph neighbour of another class. Between the true boundary T and the predicted boundary
P, the symmetric surface distances are

    {d(p, T) : p ∈ P} ∪ {d(t, P) : t ∈ T},   d(x, S) = min_{s ∈ S} d(x, s),

with d the great-circle distance on the sphere (node positions are unit vectors,
d = R · 2 asin(|x - s| / 2)) or the Euclidean distance between node positions (cell
centroids on meshes). Their mean is the average symmetric surface distance (ASSD) and
their 95th percentile the HD95 of medical-image segmentation. When only one of T and P is
empty the distance is undefined; :func:`boundary_distances` returns None and callers count
such maps apart.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geounet.errors import GeounetError

#: how :func:`boundary_distances` measures between node positions
METRICS = ("great_circle", "euclidean")


def confusion_matrix(truth: Tensor, predicted: Tensor, weights: Tensor, num_classes: int) -> Tensor:
    """``[K, K]`` float64 C_ij = Σ_n w_n [truth_n = i][predicted_n = j] of integer labels ``[M]``."""
    index = truth.reshape(-1).long() * num_classes + predicted.reshape(-1).long()
    flat = torch.zeros(num_classes * num_classes, dtype=torch.float64, device=weights.device)
    return flat.index_add_(0, index, weights.reshape(-1).double()).reshape(num_classes, num_classes)


def overlap_scores(confusion: Tensor) -> dict[str, list[float | None] | float]:
    """``{"iou": [K], "dice": [K], "mean_iou", "accuracy"}`` of a confusion matrix (see the
    module docstring; None for a class absent from truth and prediction)."""
    hits = confusion.diagonal()
    true_totals, predicted_totals = confusion.sum(1), confusion.sum(0)
    union = true_totals + predicted_totals - hits
    present = union > 0
    iou = [float(hits[c] / union[c]) if present[c] else None for c in range(len(hits))]
    dice = [float(2 * hits[c] / (true_totals[c] + predicted_totals[c])) if present[c] else None
            for c in range(len(hits))]
    scored = [value for value in iou if value is not None]
    return {"iou": iou, "dice": dice, "mean_iou": sum(scored) / len(scored),
            "accuracy": float(hits.sum() / confusion.sum())}


def boundary_mask(labels: Tensor, edge_index: Tensor, label: int) -> Tensor:
    """``[N]`` bool: nodes of class ``label`` with a neighbour (along ``edge_index [2, E]``) of another class."""
    inside = labels == label
    source, target = edge_index
    crossing = inside[source] & ~inside[target]  # [E]
    return torch.zeros_like(inside).index_fill_(0, source[crossing], True)


def boundary_distances(true_boundary: Tensor, predicted_boundary: Tensor, positions: Tensor, metric: str,
                       radius: float = 1.0) -> Tensor | None:
    """The symmetric surface distances ``[|T| + |P|]`` between two boundary masks ``[N]`` of
    nodes at ``positions [N, D]`` (module docstring); empty when both are empty, None when
    only one is. ``metric``: "great_circle" (unit-vector positions, distances times
    ``radius``) or "euclidean"."""
    if metric not in METRICS:
        raise GeounetError(f"metric must be one of {METRICS}, got {metric!r}")
    true_points, predicted_points = positions[true_boundary].double(), positions[predicted_boundary].double()
    if len(true_points) == 0 or len(predicted_points) == 0:
        return torch.zeros(0, dtype=torch.float64) if len(true_points) == len(predicted_points) else None
    distances = torch.cdist(true_points, predicted_points)  # [|T|, |P|] chords or Euclidean
    if metric == "great_circle":
        distances = radius * 2 * torch.asin((distances / 2).clamp(max=1.0))
    return torch.cat([distances.min(dim=1).values, distances.min(dim=0).values])
