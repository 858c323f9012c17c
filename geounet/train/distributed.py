"""Multi-process training with ``torchrun``: process-group set-up and rank helpers.

    torchrun --standalone --nproc_per_node 2 -m geounet.cli train --config ...   # gloo on CPU
    torchrun --standalone --nproc_per_node 8 -m geounet.cli train --set train.device=cuda   # NCCL

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` joins the
group (NCCL for CUDA devices, gloo otherwise) and gives each process its own GPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist

from geounet.train.device import usable_device


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str) -> str:
    """Check ``device`` (:func:`~geounet.train.device.usable_device`) and join the process group if
    launched by torchrun; returns this process's device."""
    usable_device(device)
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.startswith("cuda"):
        local_rank = int(os.environ["LOCAL_RANK"])
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


@contextmanager
def main_process_first():
    """Run the body on rank 0 first (e.g. data generation into the cache), then on the others."""
    if not is_main_process():
        dist.barrier()
    yield
    if dist.is_initialized() and is_main_process():
        dist.barrier()
