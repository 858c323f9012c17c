"""A check for zero-boundary constraints that leave nothing free.

A constraint that sets every cell touching the boundary to zero makes the output
identically zero on a mesh (or on one mesh of a batch) whose cells *all* touch the
boundary: a thin strip one cell wide, a coarse mesh of a small domain, a soup of
separate triangles. The model then cannot fit anything there, and nothing says why.
"""

from __future__ import annotations

import warnings

import numpy as np


class AllBoundaryWarning(UserWarning):
    """Every cell of a mesh is constrained to zero."""


def warn_if_all_boundary(mask, components=None, what: str = "the constrained output") -> bool:
    """Warn (:class:`AllBoundaryWarning`) when ``mask`` covers a whole component.

    Args:
        mask: boolean ``[N]``, the cells the constraint sets to zero (numpy, or a CPU tensor).
        components: ``[N]`` component (or batch) label of every cell; ``None``: one component.
        what: what is zero, for the message.

    Returns whether it warned.
    """
    mask = np.asarray(mask, dtype=bool)
    labels = np.zeros(len(mask), dtype=np.int64) if components is None else np.asarray(components, dtype=np.int64)
    if labels.shape != mask.shape:
        raise ValueError(f"components must label every cell of the mask {mask.shape}, got shape {labels.shape}")
    cells = np.bincount(labels)
    masked = np.bincount(labels, weights=mask, minlength=len(cells))
    full = np.flatnonzero((cells > 0) & (masked == cells))
    if len(full) == 0:
        return False
    where = "the mesh" if components is None else f"{len(full)} of {int((cells > 0).sum())} components (e.g. {full[0]})"
    warnings.warn(
        f"every cell of {where} touches the boundary, so {what} is identically zero there; refine the mesh "
        "or constrain a finer level",
        AllBoundaryWarning,
        stacklevel=2,
    )
    return True
