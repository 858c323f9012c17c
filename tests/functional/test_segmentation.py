"""Segmentation losses, class weights and scores on cases worked out by hand."""

import math

import pytest
import torch

from geounet.errors import GeounetError
from geounet.functional.losses import class_frequency_weights, segmentation_cross_entropy, soft_dice_loss
from geounet.functional.segmentation_metrics import (
    boundary_distances,
    boundary_mask,
    confusion_matrix,
    overlap_scores,
)


def _path_graph(n: int) -> torch.Tensor:
    """Edges i <-> i + 1 of a path of ``n`` nodes, ``[2, 2 (n - 1)]``."""
    forward = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    return torch.cat([forward, forward.flip(0)], dim=1)


def test_iou_and_dice_of_hand_made_masks():
    truth = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 2])
    scores = overlap_scores(confusion_matrix(truth, predicted, torch.ones(6), 3))
    # class 0: 1 hit, union {0, 1}; class 1: hits {2, 3}, union {1, .., 4}; class 2: hit {5}, union {4, 5}
    assert scores["iou"] == pytest.approx([1 / 2, 2 / 4, 1 / 2])
    assert scores["dice"] == pytest.approx([2 / 3, 4 / 6, 2 / 3])
    assert scores["mean_iou"] == pytest.approx(0.5)
    assert scores["accuracy"] == pytest.approx(4 / 6)


def test_scores_weigh_nodes_by_area_and_skip_absent_classes():
    truth, predicted = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1])
    scores = overlap_scores(confusion_matrix(truth, predicted, torch.tensor([3.0, 1.0, 2.0]), 3))
    assert scores["iou"][:2] == pytest.approx([3 / 4, 2 / 3])
    assert scores["iou"][2] is None and scores["dice"][2] is None  # neither true nor predicted anywhere
    assert scores["mean_iou"] == pytest.approx((3 / 4 + 2 / 3) / 2)


def test_boundary_distances_on_a_line_by_hand():
    positions = torch.arange(10.0)[:, None]  # nodes at x = 0 .. 9
    edges = _path_graph(10)
    truth = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0, 0, 0])  # class 1 on 3..6: boundary nodes 3, 6
    predicted = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # class 1 on 4..8: boundary nodes 4, 8
    true_boundary, predicted_boundary = boundary_mask(truth, edges, 1), boundary_mask(predicted, edges, 1)
    assert true_boundary.nonzero().flatten().tolist() == [3, 6]
    assert predicted_boundary.nonzero().flatten().tolist() == [4, 8]
    distances = boundary_distances(true_boundary, predicted_boundary, positions, "euclidean")
    # from 3: 1 (to 4), from 6: 2 (to 4 or 8); from 4: 1 (to 3), from 8: 2 (to 6)
    assert sorted(distances.tolist()) == [1.0, 1.0, 2.0, 2.0]
    assert distances.mean().item() == pytest.approx(1.5)


def test_great_circle_boundary_distance():
    angles = torch.tensor([0.0, 0.5, math.pi / 2])
    positions = torch.stack([angles.cos(), angles.sin(), torch.zeros(3)], dim=1)  # on the equator
    true_boundary, predicted_boundary = torch.tensor([True, False, False]), torch.tensor([False, False, True])
    distances = boundary_distances(true_boundary, predicted_boundary, positions, "great_circle", radius=2.0)
    assert distances.tolist() == pytest.approx([math.pi, math.pi])  # a quarter circle of radius 2


def test_boundary_distance_undefined_when_one_boundary_is_missing():
    positions, nothing, some = torch.zeros(3, 3), torch.zeros(3, dtype=torch.bool), torch.tensor([True, False, False])
    assert boundary_distances(some, nothing, positions, "euclidean") is None
    assert len(boundary_distances(nothing, nothing, positions, "euclidean")) == 0
    with pytest.raises(GeounetError, match="metric must be one of"):
        boundary_distances(some, some, positions, "manhattan")


def test_class_frequency_weights():
    labels, weights = torch.tensor([0, 0, 0, 1]), torch.ones(4)
    alpha = class_frequency_weights(labels, weights, 2)
    assert alpha.tolist() == pytest.approx([1 / (2 * 0.75), 1 / (2 * 0.25)])
    frequency = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert (frequency * alpha).sum().item() == pytest.approx(1.0)  # the mean weight of a node is 1
    # areas, not node counts: one big node of class 1 outweighs three small ones of class 0
    assert class_frequency_weights(labels, torch.tensor([1.0, 1, 1, 3]), 2).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(GeounetError, match=r"class\(es\) \[2\] never occur"):
        class_frequency_weights(labels, weights, 3)


def test_cross_entropy_matches_torch_and_weights_classes():
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(2, 5, 3, generator=generator), torch.randint(0, 3, (2, 5), generator=generator)
    reference = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1))
    assert segmentation_cross_entropy(logits, labels, torch.ones(5)).item() == pytest.approx(reference.item())
    alpha = torch.tensor([0.5, 1.0, 2.0])
    per_node = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), reduction="none")
    weighted = (alpha[labels.reshape(-1)] * per_node).mean()  # Σ ŵ α CE / B: no renormalisation by Σ α
    assert segmentation_cross_entropy(logits, labels, torch.ones(5), alpha).item() == pytest.approx(weighted.item())
    focal = segmentation_cross_entropy(logits, labels, torch.ones(5), focal_gamma=2.0)
    p = torch.exp(-per_node)
    assert focal.item() == pytest.approx(((1 - p) ** 2 * per_node).mean().item())


def test_soft_dice_is_zero_for_a_perfect_prediction_and_one_for_a_wrong_one():
    labels = torch.tensor([[0, 1, 1, 2]])
    one_hot = torch.nn.functional.one_hot(labels, 3).double()
    assert soft_dice_loss(50 * one_hot, labels, torch.ones(4)).item() == pytest.approx(0.0, abs=1e-6)
    wrong = torch.nn.functional.one_hot((labels + 1) % 3, 3).double()
    assert soft_dice_loss(50 * wrong, labels, torch.ones(4)).item() == pytest.approx(1.0, abs=1e-5)  # up to ε


@pytest.mark.parametrize("loss", ["cross_entropy", "focal", "dice"])
def test_segmentation_losses_gradcheck_and_descend(loss):
    generator = torch.Generator().manual_seed(1)
    labels, weights = torch.randint(0, 3, (2, 6), generator=generator), torch.rand(6, generator=generator).double()
    alpha = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    fn = {"cross_entropy": lambda x: segmentation_cross_entropy(x, labels, weights, alpha),
          "focal": lambda x: segmentation_cross_entropy(x, labels, weights, alpha, focal_gamma=2.0),
          "dice": lambda x: soft_dice_loss(x, labels, weights)}[loss]
    logits = torch.randn(2, 6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (logits,))
    (gradient,) = torch.autograd.grad(fn(logits), logits)
    true_slot = torch.nn.functional.one_hot(labels, 3).bool()
    assert (gradient[true_slot] <= 0).all()  # raising the true class's score never raises the loss
