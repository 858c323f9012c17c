"""Learning tasks: each turns a config into a geometry, data and plots.

A task module defines a frozen config dataclass (with a ``name`` class attribute),
``structure(config, num_levels) -> TaskStructure`` (cheap: no data) and
``prepare(config, num_levels) -> PreparedTask`` (generates or loads the data).
Register it in ``_registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from geounet.data.samples import Dataset
from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.blocks import OperatorFactory
from geounet.train.stages import LossFn

#: ``(model, test data, device) -> {name: value}``: a task's own report on test data
TaskMetrics = Callable[[nn.Module, Dataset, torch.device], dict[str, float]]

#: Test data are generated with this offset on the data seed, so they never overlap training data.
TEST_SEED_OFFSET = 10_000


def data_splits(config) -> dict[str, tuple[int, int]]:
    """``{"train": (num_train, seed), "test": (num_test, seed + TEST_SEED_OFFSET)}`` of a task
    config with ``num_train``, ``num_test`` and ``seed`` fields; rejects empty splits."""
    if config.num_train < 1 or config.num_test < 1:
        raise GeounetError(f"task.num_train and task.num_test must be >= 1, got {config.num_train}, {config.num_test}")
    return {"train": (config.num_train, config.seed), "test": (config.num_test, config.seed + TEST_SEED_OFFSET)}


@dataclass
class TaskStructure:
    """The geometry of a task: a hierarchy of the task's kind (models are built from its
    kind and sizes), the operator factory and channel counts."""

    hierarchy: Hierarchy
    factory: OperatorFactory
    in_channels: int
    out_channels: int
    #: optional wrapper applied to every model built for the task (e.g. a constraint projection)
    wrap_model: Callable[[nn.Module], nn.Module] | None = None
    #: size of the conditioning vector ``cond [B, cond_dim]`` the U-Net's FiLM layers take (None: unconditioned)
    cond_dim: int | None = None


@dataclass
class TransferTest:
    """Test data on a geometry the model was not trained on (a held-out mesh, a refined one).

    The trained model is applied as it is: it holds no geometry, and ``data.hierarchy``
    is passed to it with every batch.
    """

    data: Dataset
    #: optional ``(inputs, targets, predictions, path)`` -> PNG of test samples on this geometry
    plot: Callable[[Tensor, Tensor, Tensor, str], None] | None = None


@dataclass
class PreparedTask:
    """A task's structure plus its data (in normalised model units) and plotting."""

    structure: TaskStructure
    train: Dataset
    test: Dataset
    #: ``(inputs, targets, predictions, path)`` -> writes a PNG of a few test samples
    plot: Callable[[Tensor, Tensor, Tensor, str], None]
    #: optional task-specific evaluation ``(model, device) -> metrics`` (e.g. rollouts)
    evaluate_extra: Callable[[nn.Module, torch.device], dict] | None = None
    #: named tests on other geometries, reported as ``test[name]`` (see :class:`TransferTest`)
    transfer: dict[str, TransferTest] = field(default_factory=dict)
    #: what the task picked up from the data, one line each (printed by ``geounet train``, kept in metrics.json)
    log: list[str] = field(default_factory=list)
    #: what predicting on new data needs besides the model (tensors and plain containers), kept in the checkpoint
    checkpoint_state: dict = field(default_factory=dict)
    #: optional training loss ``(model, batch, generator) -> scalar`` (default: the weighted MSE)
    loss: LossFn | None = None
    #: optional report on test data replacing the relative L2 error (e.g. segmentation scores)
    test_metrics: TaskMetrics | None = None
    #: optional ``(model, device, out_dir, test metrics) -> written paths``: the task's own output files
    write_outputs: Callable[[nn.Module, torch.device, Path, dict], list[Path]] | None = None


def _registry() -> dict[str, ModuleType]:
    from geounet.tasks import (
        darcy_mesh,
        forecast,
        mesh_files,
        navier_stokes_forced,
        navier_stokes_square,
        part_segmentation,
        shallow_water_healpix,
        surface_poisson,
        triangle_poisson,
        vortex_segmentation,
    )

    modules = [darcy_mesh, forecast, mesh_files, navier_stokes_forced, navier_stokes_square, shallow_water_healpix,
               surface_poisson, triangle_poisson]
    modules += [part_segmentation, vortex_segmentation]
    return {module.Config.name: module for module in modules}


def task_names() -> list[str]:
    return sorted(_registry())


def _task(name: str) -> ModuleType:
    registry = _registry()
    if name not in registry:
        raise GeounetError(f"unknown task {name!r}; available tasks: {', '.join(sorted(registry))}")
    return registry[name]


def task_config_class(name: str) -> type:
    return _task(name).Config


def task_structure(config, num_levels: int) -> TaskStructure:
    """The hierarchy, operator factory and channels of ``config``'s task (no data)."""
    return _task(config.name).structure(config, num_levels)


def prepare_task(config, num_levels: int) -> PreparedTask:
    """Build the data, hierarchy and operator factory of ``config``'s task."""
    return _task(config.name).prepare(config, num_levels)
