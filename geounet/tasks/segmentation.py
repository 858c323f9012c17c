"""Segmentation as a task type: per-node classes, their loss, scores and baselines.

A segmentation task's data hold class labels as targets ``[S, N, 1]`` (class indices
stored as floats) and its model has one output channel per class (logits ``[B, N, K]``).
The task modules (:mod:`geounet.tasks.vortex_segmentation` on HEALPix,
:mod:`geounet.tasks.part_segmentation` on meshes) build a :class:`Segmentation` and hand
its hooks to the one training loop through :class:`~geounet.tasks.PreparedTask`:

- **loss** (``task.loss``): node-weighted cross-entropy (focal with ``task.focal_gamma`` > 0),
  soft Dice, or their sum (:mod:`geounet.functional.losses`); node weights are
  :func:`~geounet.data.samples.node_weights` (areas, every geometry counting alike);
- **class imbalance** (``task.class_weighting = "frequency"``): the cross-entropy weights
  class c by α_c = 1 / (K f_c), f_c the area share of class c in the training labels
  (:func:`~geounet.functional.losses.class_frequency_weights`), so every class carries the
  same total weight;
- **scores** (``task.test_metrics``): pooled over the test set with every sample weighing 1
  (its nodes by area): per-class IoU and Dice, mean IoU and accuracy, and per class the
  mean and 95th percentile of the symmetric boundary distances
  (:mod:`geounet.functional.segmentation_metrics`) pooled over the samples where both the
  true and the predicted boundary exist (``boundary_unmatched_<class>`` counts those where
  only one does);
- **trivial baselines** (``task.evaluate_extra``): the mean IoU of the majority class
  everywhere and of the best *pointwise* classifier, a lookup table from the node's own
  inputs to a class (:class:`PointwiseClassifier`): what a model gains over these it gets
  from the neighbourhood.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.samples import Batch, node_weights
from geounet.errors import GeounetError
from geounet.functional.losses import class_frequency_weights, segmentation_cross_entropy, soft_dice_loss
from geounet.functional.segmentation_metrics import (
    boundary_distances,
    boundary_mask,
    confusion_matrix,
    overlap_scores,
)

LOSSES = ("cross_entropy", "dice", "cross_entropy+dice")
CLASS_WEIGHTINGS = ("frequency", "none")
#: samples per evaluation batch
EVAL_BATCH = 8


@dataclass(frozen=True)
class SegmentationConfig:
    """The ``[task]`` keys every segmentation task has (a task adds its data's own)."""

    #: "cross_entropy", "dice" (soft Dice) or "cross_entropy+dice" (their sum)
    loss: str = "cross_entropy"
    #: "frequency": cross-entropy class weights 1 / (K f_c) from the training labels; "none": all 1
    class_weighting: str = "frequency"
    #: focusing exponent γ of the focal loss (0: plain cross-entropy)
    focal_gamma: float = 0.0

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise GeounetError(f"task.loss must be one of {LOSSES}, got {self.loss!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise GeounetError(f"task.class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        if self.focal_gamma < 0:
            raise GeounetError(f"task.focal_gamma must be >= 0, got {self.focal_gamma}")


@dataclass(frozen=True)
class LabelledNodes:
    """Nodes of many samples in one list: ``inputs [M, C]``, ``labels [M]``, ``weights [M]``
    (each sample's weights summing to 1)."""

    inputs: Tensor
    labels: Tensor
    weights: Tensor


def batch_labels(batch: Batch) -> Tensor:
    """The integer class labels ``[B, N]`` of a batch whose targets ``[B, N, 1]`` hold class indices."""
    return batch.targets[..., 0].long()


def sample_weights(batch: Batch) -> Tensor:
    """``[N]`` node weights of a batch's geometry summing to 1 over each of its parts (meshes)."""
    return node_weights(batch.hierarchy) * len(batch.hierarchy.components(batch.hierarchy.finest_level))


def per_sample(batch: Batch, values: Tensor) -> Iterator[tuple[slice, Tensor]]:
    """``(node slice, values[b, slice])`` of every sample of ``batch``: ``[B, N, ...]`` of a shared
    grid (B samples) or ``[1, Σ N_j, ...]`` of a union of meshes (one sample per mesh)."""
    sizes = batch.hierarchy.components(batch.hierarchy.finest_level)
    starts = np.cumsum([0, *sizes])
    for b in range(values.shape[0]):
        for start, stop in zip(starts[:-1], starts[1:], strict=True):
            yield slice(int(start), int(stop)), values[b, start:stop]


def labelled_nodes(data) -> LabelledNodes:
    """Every node of every sample of ``data`` (any data set) with its sample's weights."""
    inputs, labels, weights = [], [], []
    for start in range(0, len(data), EVAL_BATCH):
        batch = data.batch(torch.arange(start, min(start + EVAL_BATCH, len(data))))
        node = sample_weights(batch).expand(batch.inputs.shape[:2])  # [B, N]
        inputs.append(batch.inputs.reshape(-1, batch.inputs.shape[-1]))
        labels.append(batch_labels(batch).reshape(-1))
        weights.append(node.reshape(-1))
    return LabelledNodes(torch.cat(inputs), torch.cat(labels), torch.cat(weights).double())


@dataclass
class Segmentation:
    """Loss and scores of a segmentation task (module docstring).

    ``metric`` is how boundary distances are measured ("great_circle": unit-vector node
    positions times ``radius``; "euclidean": node positions as they are) in ``unit``.
    """

    classes: tuple[str, ...]
    config: SegmentationConfig
    class_weights: Tensor | None
    metric: str
    radius: float = 1.0
    unit: str = ""

    @classmethod
    def from_training_data(cls, classes: tuple[str, ...], config: SegmentationConfig, train, metric: str,
                           radius: float = 1.0, unit: str = "") -> Segmentation:
        """With the class weights of ``config.class_weighting`` from ``train``'s labels."""
        weights = None
        if config.class_weighting == "frequency":
            nodes = labelled_nodes(train)
            weights = class_frequency_weights(nodes.labels, nodes.weights, len(classes)).float()
        return cls(classes, config, weights, metric, radius, unit)

    def loss(self, model: nn.Module, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """The training loss of ``config.loss`` of ``model`` on ``batch`` (a ``fit`` loss hook)."""
        logits = model(batch.inputs, batch.hierarchy)  # [B, N, K]
        labels, weights = batch_labels(batch), node_weights(batch.hierarchy)
        value = logits.new_zeros(())
        if "cross_entropy" in self.config.loss:
            value = value + segmentation_cross_entropy(logits, labels, weights, self.class_weights,
                                                       self.config.focal_gamma)
        if "dice" in self.config.loss:
            value = value + soft_dice_loss(logits, labels, weights)
        return value

    def log(self) -> list[str]:
        """What the task derived from the training data, one line each."""
        if self.class_weights is None:
            return [f"classes {', '.join(self.classes)}; unweighted {self.config.loss}"]
        weights = ", ".join(f"{n} {w:.3g}" for n, w in zip(self.classes, self.class_weights.tolist(), strict=True))
        return [f"class weights 1 / (K f_c) from the training labels: {weights}"]

    @torch.no_grad()
    def predictions(self, model: nn.Module, data, device: torch.device) -> Iterator[tuple[Batch, Tensor]]:
        """``(batch, class probabilities [B, N, K])`` of ``data`` in evaluation batches, on the CPU."""
        model.eval()
        data = data.to(device)
        for start in range(0, len(data), EVAL_BATCH):
            batch = data.batch(torch.arange(start, min(start + EVAL_BATCH, len(data))))
            logits = model(batch.inputs.to(device), batch.hierarchy)
            yield batch, torch.softmax(logits.float(), dim=-1).cpu()
        model.train()

    def test_metrics(self, model: nn.Module, data, device: torch.device) -> dict[str, float]:
        """Overlap and boundary scores of ``model`` on ``data`` (module docstring), flat
        ``{name: value}``; ``<score>_<class>`` per class (absent where a class has no score)."""
        num_classes = len(self.classes)
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        distances: list[list[Tensor]] = [[] for _ in self.classes]
        unmatched = [0] * num_classes
        for batch, probabilities in self.predictions(model, data, device):
            truth, predicted = batch_labels(batch), probabilities.argmax(-1)  # [B, N]
            weights = sample_weights(batch).cpu().expand(truth.shape)
            confusion += confusion_matrix(truth, predicted, weights, num_classes)
            graph = batch.hierarchy.graph(batch.hierarchy.finest_level)
            edges, positions = graph.edge_index.cpu(), graph.positions.cpu()
            for c in range(num_classes):
                true_edges = torch.stack([boundary_mask(t, edges, c) for t in truth])[..., None]  # [B, N, 1]
                predicted_edges = torch.stack([boundary_mask(p, edges, c) for p in predicted])[..., None]
                both = torch.cat([true_edges, predicted_edges], dim=-1)  # [B, N, 2]
                for nodes, masks in per_sample(batch, both):
                    found = boundary_distances(masks[:, 0], masks[:, 1], positions[nodes], self.metric, self.radius)
                    if found is None:
                        unmatched[c] += 1
                    else:
                        distances[c].append(found)
        scores = overlap_scores(confusion)
        report = {"mean_iou": scores["mean_iou"], "accuracy": scores["accuracy"]}
        for c, name in enumerate(self.classes):
            for score in ("iou", "dice"):
                if scores[score][c] is not None:
                    report[f"{score}_{name}"] = scores[score][c]
            pooled = torch.cat(distances[c]) if distances[c] else torch.zeros(0)
            if len(pooled):
                report[f"boundary_mean_{name}"] = pooled.mean().item()
                report[f"boundary_p95_{name}"] = torch.quantile(pooled, 0.95).item()
            report[f"boundary_unmatched_{name}"] = float(unmatched[c])
        return report

    def class_iou(self, report: dict) -> list[float | None]:
        """The per-class IoU of a :meth:`test_metrics` report, None for a class without one."""
        return [report.get(f"iou_{name}") for name in self.classes]


@dataclass(frozen=True)
class PointwiseClassifier:
    """A lookup table from a node's own inputs to a class: per-channel bin edges ``[C, bins - 1]``
    and one class per cell of the C-dimensional bin grid, ``table [bins^C]``."""

    edges: Tensor
    table: Tensor

    def __call__(self, inputs: Tensor) -> Tensor:
        """The classes ``[M]`` of nodes ``inputs [M, C]``."""
        return self.table[_cells(inputs, self.edges)]


def pointwise_classifier(train: LabelledNodes, num_classes: int, bins: int = 16) -> PointwiseClassifier:
    """The best pointwise classifier on ``train``: per-channel quantile bins, and of the two rules
    "most frequent class of the cell" and "class of largest frequency-weighted count α_c n_c"
    (which favours rare classes), the one with the larger mean IoU on ``train``."""
    channels = train.inputs.shape[1]
    if bins**channels > 1_000_000:
        raise GeounetError(f"a pointwise table of {bins}^{channels} cells is too big; use fewer bins")
    quantiles = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    edges = torch.quantile(train.inputs.double().T, quantiles, dim=1).T.contiguous()  # [C, bins - 1]
    cells = _cells(train.inputs, edges)
    counts = torch.zeros(bins**channels, num_classes, dtype=torch.float64)
    counts.index_put_((cells, train.labels), train.weights, accumulate=True)  # [cells, K]
    frequency = counts.sum(0) / counts.sum()
    balanced = counts / frequency.clamp_min(torch.finfo(torch.float64).tiny)

    def train_iou(table: Tensor) -> float:
        return overlap_scores(confusion_matrix(train.labels, table[cells], train.weights, num_classes))["mean_iou"]

    return PointwiseClassifier(edges, max([counts.argmax(1), balanced.argmax(1)], key=train_iou))


def _cells(inputs: Tensor, edges: Tensor) -> Tensor:
    """The table cell ``[M]`` of every node: its per-channel bins as digits in base ``bins``."""
    bins = edges.shape[1] + 1
    digits = torch.stack([torch.bucketize(inputs[:, c].double(), edges[c]) for c in range(inputs.shape[1])], dim=1)
    return (digits * bins ** torch.arange(inputs.shape[1])).sum(1)


def trivial_baselines(train, test, num_classes: int) -> dict[str, float]:
    """Test mean IoU of the majority class everywhere and of the best pointwise classifier of the inputs."""
    train_nodes, test_nodes = labelled_nodes(train), labelled_nodes(test)
    frequency = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, train_nodes.labels, train_nodes.weights)
    majority = torch.full_like(test_nodes.labels, int(frequency.argmax()))
    pointwise = pointwise_classifier(train_nodes, num_classes)(test_nodes.inputs)

    def mean_iou(predicted: Tensor) -> float:
        return overlap_scores(confusion_matrix(test_nodes.labels, predicted, test_nodes.weights, num_classes))[
            "mean_iou"]

    return {"majority_class_mean_iou": mean_iou(majority), "pointwise_baseline_mean_iou": mean_iou(pointwise)}
