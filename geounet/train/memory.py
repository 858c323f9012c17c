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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

#: training steps between two calls of :func:`release_free_heap` in ``fit``
TRIM_EVERY = 100


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """``malloc_trim(0)``: give the heap's free pages back to the system; False where there is no glibc."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
