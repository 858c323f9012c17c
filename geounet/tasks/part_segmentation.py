"""Part segmentation of procedural shapes: label every face of a randomly posed body as body, leg or head.

The shapes are :class:`~geounet.datagen.part_shapes.PartShapeFamily` meshes (a randomly
deformed ellipsoidal body with 2-4 legs and a head, each part a face label, in a random
pose; ``num_meshes`` shapes, split by shape with ``test_fraction``: test shapes are never
trained on). The inputs are two pose-invariant face features (distance from the centroid,
normal against the radial direction), standardised with the training statistics; legs
and head differ only in their size, i.e. in the neighbourhood of a face. Each shape gets
its own area-weighted Haar hierarchy of nested face clusters
(:class:`~geounet.hierarchy.ClusterHierarchy`, cached on disk), and every training batch
is a disjoint union of shapes. Boundary distances are Euclidean distances between face
centroids (shape units; the shapes are about 3 units across). Besides ``predictions.png``
a run writes ``test_shape_<j>.vtu`` for the first ``export_meshes`` test shapes (class
probabilities, predicted and true class as cell data) and ``class_iou.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.mesh_dataset import Clusters, MeshDataset, MeshSample
from geounet.data.mesh_fields import write_mesh_fields
from geounet.datagen.mesh_families import generate_family
from geounet.datagen.part_shapes import PART_CLASSES, PART_FEATURES, PartShapeFamily
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.segmentation import plot_class_iou, plot_mesh_classes
from geounet.tasks import PreparedTask, TaskStructure
from geounet.tasks.segmentation import Segmentation, SegmentationConfig, per_sample, trivial_baselines


@dataclass(frozen=True)
class Config(SegmentationConfig):
    name: ClassVar[str] = "part_segmentation"
    num_meshes: int = 120
    #: fraction of the shapes held out for testing
    test_fraction: float = 0.25
    #: Loop subdivisions of the icosphere the shapes are built on (20 * 4^s faces)
    subdivisions: int = 3
    #: matching passes per hierarchy level (2 passes ~ 4x fewer cells)
    passes_per_level: int = 2
    #: test shapes written as .vtu with their predictions
    export_meshes: int = 4
    #: processes that generate shapes and build hierarchies (0: this one)
    workers: int = 0
    seed: int = 0
    cache_dir: str = "data"

    def validate(self) -> None:
        super().validate()
        for name in ("num_meshes", "passes_per_level"):
            if getattr(self, name) < 1:
                raise GeounetError(f"task.{name} must be >= 1, got {getattr(self, name)}")
        if self.export_meshes < 0 or self.workers < 0:
            raise GeounetError(f"task.export_meshes and task.workers must be >= 0, got {self.export_meshes}, "
                               f"{self.workers}")
        family(self)  # checks subdivisions and test_fraction


def family(config: Config) -> PartShapeFamily:
    return PartShapeFamily(seed=config.seed, num_meshes=config.num_meshes, test_fraction=config.test_fraction,
                           subdivisions=config.subdivisions)


def recipe(config: Config, num_levels: int) -> Clusters:
    return Clusters(num_levels, config.passes_per_level, seed=config.seed)


def structure(config: Config, num_levels: int) -> TaskStructure:
    shapes = family(config)
    first = shapes.sample(int(shapes.split()[0][0]))
    template = recipe(config, num_levels).build(Mesh(first["vertices"], first["faces"]))
    return TaskStructure(template, MessagePassingFactory(template), len(PART_FEATURES), len(PART_CLASSES))


def load_split(config: Config, ids) -> list[MeshSample]:
    """One sample per shape ``ids``: physical inputs ``[F, 2]`` and class labels ``[F, 1]`` (as floats)."""
    samples = []
    for data in generate_family(config.cache_dir, family(config), ids, workers=max(1, config.workers)):
        samples.append(MeshSample(Mesh(data["vertices"], data["faces"]), torch.from_numpy(data["inputs_face"]).float(),
                                  torch.from_numpy(data["labels_face"]).float()[:, None]))
    return samples


def prepare(config: Config, num_levels: int) -> PreparedTask:
    train_ids, test_ids = family(config).split()
    raw = {"train": load_split(config, train_ids), "test": load_split(config, test_ids)}
    features = torch.cat([s.inputs for s in raw["train"]])
    mean, std = features.mean(0), features.std(0)  # [C]

    def dataset(samples: list[MeshSample]) -> MeshDataset:
        scaled = [MeshSample(s.mesh, (s.inputs - mean) / std, s.targets) for s in samples]
        return MeshDataset(scaled, recipe(config, num_levels), cache_dir=config.cache_dir).build_all(config.workers)

    train, test = dataset(raw["train"]), dataset(raw["test"])
    segmentation = Segmentation.from_training_data(PART_CLASSES, config, train, "euclidean", unit="shape units")
    baselines = trivial_baselines(train, test, len(PART_CLASSES))

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        batch = test.batch(torch.arange(min(2, len(test))))  # the samples plot_test_predictions took
        labels = [(t[:, 0].long().numpy(), p.argmax(-1).numpy())
                  for (_, t), (_, p) in zip(per_sample(batch, targets), per_sample(batch, predictions), strict=True)]
        plot_mesh_classes([s.mesh for s in test.samples[: len(labels)]], [t for t, _ in labels],
                          [p for _, p in labels], PART_CLASSES, path)

    def write_outputs(model: nn.Module, device: torch.device, out_dir: Path, report: dict) -> list[Path]:
        written = []
        exported = test.samples[: config.export_meshes]
        if exported:
            shapes = MeshDataset(exported, test.recipe, cache_dir=config.cache_dir)
            index = 0
            for batch, probabilities in segmentation.predictions(model, shapes, device):
                for _, p in per_sample(batch, probabilities):
                    sample = exported[index]
                    fields = {f"probability_{name}": p[:, c].numpy() for c, name in enumerate(PART_CLASSES)}
                    fields |= {"predicted_class": p.argmax(-1).numpy(), "true_class": sample.targets[:, 0].numpy()}
                    written.append(write_mesh_fields(out_dir / f"test_shape_{index}.vtu", sample.mesh, fields, "face"))
                    index += 1
        bars = out_dir / "class_iou.png"
        plot_class_iou(segmentation.class_iou(report), report["mean_iou"], PART_CLASSES, str(bars), Config.name)
        return [*written, bars]

    shares = np.bincount(torch.cat([s.targets[:, 0] for s in raw["train"]]).long().numpy(),
                         minlength=len(PART_CLASSES))
    log = [f"{len(train)} train / {len(test)} test shapes (split by shape); face shares "
           + ", ".join(f"{n} {s / shares.sum():.3f}" for n, s in zip(PART_CLASSES, shares, strict=True)),
           *segmentation.log(),
           f"trivial baselines (test mean IoU): majority class {baselines['majority_class_mean_iou']:.3f}, "
           f"best pointwise classifier of the face features {baselines['pointwise_baseline_mean_iou']:.3f}"]
    return PreparedTask(structure(config, num_levels), train, test, plot,
                        evaluate_extra=lambda model, device: dict(baselines), log=log, loss=segmentation.loss,
                        test_metrics=segmentation.test_metrics, write_outputs=write_outputs)
