"""The memory a run needs, estimated from its config before anything large is allocated.

For a U-Net with ``P`` parameters on a hierarchy with ``N_l`` nodes and ``C_l`` decoder
channels on level ``l`` (``C_l = width * channel_mult[I - l]``), batch size ``B``, ``c_in``
input and ``c_out`` output channels, float32 throughout:

- parameters, their gradients and AdamW's two moments: ``16 P`` bytes;
- activations kept for the backward pass: ``4 * 12 * B * sum_l k N_l C_l`` bytes, where a
  block keeps about four tensors ``[B, N_l, C_l]`` (input, normalised, activated, output)
  and one neighbour gather ``[B, N_l, 8, C_l]`` (twelve in all), and level ``l`` has
  ``k = decoder_blocks + encoder_blocks + 1`` blocks (the ``+ 1`` the level's lift or skip);
- the data held in memory: ``4 (n_train + n_test) N_I (c_in + c_out)`` bytes for tasks
  that generate ``num_train`` / ``num_test`` samples (files on disk, like a forecast
  task's archive, are read row by row and count one batch);
- the hierarchy's arrays: ``64 sum_l N_l`` bytes (neighbour tables, masses, positions).

Baselines are sized to the U-Net's parameter count, so the U-Net's ``P`` stands for
theirs. The parameter count comes from the model built on PyTorch's ``meta`` device
(shapes without storage). The estimate is a floor, not a bound: it leaves out the
framework's own memory and temporaries, so a run it passes may still not fit, but a run
it refuses cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geounet.experiment.config import ExperimentConfig
from geounet.hierarchy.memory import check_fits, gib
from geounet.models.sizing import count_parameters
from geounet.models.unet import level_channels
from geounet.tasks import TaskStructure

FLOAT = 4
#: tensors of a block's width kept for the backward pass (4) plus its neighbour gather (8)
ACTIVATION_TENSORS = 12
HIERARCHY_BYTES_PER_NODE = 64


@dataclass(frozen=True)
class RunMemory:
    """The estimated bytes of each part of a run (module docstring)."""

    parameters: int  # P
    optimiser: int  # 16 P bytes: weights, gradients, two AdamW moments
    activations: int
    data: int
    hierarchy: int

    @property
    def total(self) -> int:
        return self.optimiser + self.activations + self.data + self.hierarchy

    def describe(self) -> str:
        return (f"{self.parameters:,} parameters with gradients and optimiser state {gib(self.optimiser)}, "
                f"activations {gib(self.activations)}, data {gib(self.data)}, hierarchy {gib(self.hierarchy)}")


def estimate_run_memory(cfg: ExperimentConfig, structure: TaskStructure) -> RunMemory:
    """The memory of training ``cfg`` on ``structure`` (module docstring); allocates nothing large."""
    from geounet.experiment.runner import build_configured_unet  # the runner checks memory with this module

    hierarchy, model = structure.hierarchy, cfg.model
    nodes = [hierarchy.num_nodes(level) for level in range(hierarchy.num_levels)]  # coarsest first
    channels = level_channels(hierarchy.num_levels, model.width, model.channel_mult)  # finest last
    with torch.device("meta"):
        parameters = count_parameters(build_configured_unet(cfg, structure))
    blocks = model.decoder_blocks + model.encoder_blocks + 1
    activations = FLOAT * ACTIVATION_TENSORS * cfg.train.batch_size * blocks * sum(
        n * c for n, c in zip(nodes, channels, strict=True))
    fields = structure.in_channels + structure.out_channels
    samples = getattr(cfg.task, "num_train", 0) + getattr(cfg.task, "num_test", 0) or cfg.train.batch_size
    return RunMemory(parameters, 16 * parameters, activations, FLOAT * samples * nodes[-1] * fields,
                     HIERARCHY_BYTES_PER_NODE * sum(nodes))


def check_run_memory(cfg: ExperimentConfig, structure: TaskStructure) -> RunMemory:
    """Refuse (:class:`~geounet.hierarchy.memory.MemoryLimitError`) a run whose estimate exceeds
    the memory available on its device; the message says how the estimate adds up."""
    memory = estimate_run_memory(cfg, structure)
    check_fits(memory.total, f"this run ({memory.describe()}, batch {cfg.train.batch_size})",
               "use a smaller grid or mesh, model.width, model.channel_mult or train.batch_size, or pass --force to "
               "try anyway",
               cfg.train.device)
    return memory
