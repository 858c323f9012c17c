"""How much memory there is, and a refusal of what will not fit, before it is allocated.

Hierarchies, runs (:mod:`geounet.experiment.memory`) and forecasts estimate the bytes they
are about to allocate and call :func:`check_fits` first, so a configuration that cannot
fit (``task.nside = 8192``, ``model.width = 1000000``, ``--steps 100000000``) ends in one
line naming the estimate and the limit instead of an allocator traceback minutes later.

The limit is the memory available now: ``MemAvailable`` of ``/proc/meminfo`` (free memory
plus what the kernel can reclaim), else the physical memory; on a CUDA device, the free
memory the driver reports.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from geounet.errors import GeounetError

GIB = 2**30


class MemoryLimitError(GeounetError):
    """An estimate of the memory something needs exceeds the memory available."""


def available_memory(device: str | torch.device = "cpu") -> int:
    """The bytes that can be allocated now on ``device`` (module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(needed: float, what: str, fix: str, device: str | torch.device = "cpu") -> None:
    """Refuse (:class:`MemoryLimitError`) when ``needed`` bytes exceed :func:`available_memory`;
    ``what`` says what needs them (and how they add up), ``fix`` how to need less."""
    limit = available_memory(device)
    if needed > limit:
        raise MemoryLimitError(f"{what} needs about {gib(needed)} of memory, more than the {gib(limit)} available on "
                               f"{torch.device(device)}; {fix}")


def gib(size: float) -> str:
    """``size`` bytes as ``"1.5 GiB"`` (``"2.1e+05 GiB"`` when huge)."""
    value = size / GIB
    return f"{value:.3g} GiB"
