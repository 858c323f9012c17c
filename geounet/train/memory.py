"""Returning the heap's free memory to the system during long training runs.

Mixed-mesh batches allocate tensors of a different size every step. glibc's ``malloc``
serves them from its heap arenas and, once they are freed, keeps the free space (its
mmap threshold rises to the largest freed block, up to 32 MB, so later blocks of that size
come from the heap, not from fresh mappings). The resident set then grows step after
step with memory no tensor uses: experiments/bench/bench_mesh_memory.py shows the growth
vanish after ``malloc_trim(0)``, while the memoised operators and the Python objects stay
constant once every mesh has been seen. :func:`release_free_heap` calls ``malloc_trim(0)``,
which returns the free pages of every arena; :func:`geounet.train.loop.fit` calls it every
:data:`TRIM_EVERY` steps. Elsewhere than glibc it does nothing.

The opposite problem makes large grids slow: glibc serves every block above its mmap
threshold (at most 32 MB) from a fresh mapping and unmaps it when freed, so every such
tensor of every step is new memory whose page faults the step pays (a HEALPix U-Net at
nside 128, batch 4, 16 channels: 50 MB activations, 32 % of the step's CPU time in the
kernel, 470 k page faults a step). :func:`freed_memory_retained` serves every block from the
heap and keeps freed memory for the next step (``train.retain_freed_memory``); the periodic
:func:`release_free_heap` still returns it every :data:`TRIM_EVERY` steps.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import Iterator

#: training steps between two calls of :func:`release_free_heap` in ``fit``
TRIM_EVERY = 100


# mallopt parameters and glibc's defaults (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_LARGEST_INT = 2**31 - 1


@functools.cache
def _glibc(function: str):
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """``malloc_trim(0)``: give the heap's free pages back to the system; False where there is no glibc."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


@contextlib.contextmanager
def freed_memory_retained() -> Iterator[bool]:
    """Inside the block, glibc allocates large blocks from its heap (``M_MMAP_MAX = 0``) and keeps
    freed memory (``M_TRIM_THRESHOLD`` at its largest), so a training step reuses the previous
    step's pages instead of faulting in fresh ones. On exit both are set back to glibc's defaults
    and the free heap is returned (``malloc_trim(0)``). Yields False (and changes nothing) where
    there is no glibc.

    Process-wide while it lasts: other threads' allocations are served the same way. The resident
    memory between two :func:`release_free_heap` calls is then the peak of the steps in between,
    not the memory in use.
    """
    mallopt = _glibc("mallopt")
    if mallopt is None:
        yield False
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, _LARGEST_INT)
    try:
        yield True
    finally:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        release_free_heap()
