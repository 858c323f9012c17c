"""The reference triangle T = {x, y >= 0, x + y <= 1}, its IFS and address layouts.

The paper's construction (Williams, Falck et al. 2023, §3.2): four similarity maps

    f0(x) = x/2,   f1(x) = x/2 + (0, 1/2),   f2(x) = x/2 + (1/2, 0),
    f3(x) = -x/2 + (1/2, 1/2)          (the inverted middle triangle)

split T into four congruent children of area |T|/4. A level-J cell is the image
``f_{a1} ∘ ... ∘ f_{aJ}(T)`` of an address ``a1 .. aJ`` in {0,1,2,3}^J (a1 coarsest).

Two node orders are used:

- *address order*: cell index ``n = Σ_l a_l 4^(J-l)`` (base-4 digits, coarsest most
  significant), so the children of cell p are ``4p .. 4p+3`` (like HEALPix NEST);
- *square order*: the paper's ``2^J x 2^J`` array, built by the string-Kronecker
  product of ``[['0','1'],['2','3']]``: digit a contributes the bit ``a >> 1`` to the row
  and ``a & 1`` to the column at its scale, so the 4 children of a cell occupy an aligned
  2x2 block. Nodes of the array are numbered row-major, ``r * 2^J + c``.
"""

from __future__ import annotations

import numpy as np

from geounet.errors import GeounetError

#: Vertices of T in the order (v0, v1, v2) for which child d is the corner child at v_d.
REFERENCE_VERTICES = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
#: Linear parts and offsets of f0..f3.
IFS_MATRICES = np.array([np.eye(2), np.eye(2), np.eye(2), -np.eye(2)]) / 2
IFS_OFFSETS = np.array([[0.0, 0.0], [0.0, 0.5], [0.5, 0.0], [0.5, 0.5]])


def addresses(level: int) -> np.ndarray:
    """Digits ``[4^J, J]`` of every cell in address order (column 0 is a1, the coarsest)."""
    _check_level(level)
    index = np.arange(4**level)
    shifts = 2 * np.arange(level - 1, -1, -1)
    return (index[:, None] >> shifts[None, :]) & 3  # [4^J, J]


def address_to_square(level: int) -> np.ndarray:
    """``square_index [4^J]``: the row-major position in the 2^J x 2^J array of each cell."""
    digits = addresses(level)
    weights = 2 ** np.arange(level - 1, -1, -1)
    rows = (digits >> 1) @ weights
    cols = (digits & 1) @ weights
    return (rows << level) + cols


def square_to_address(level: int) -> np.ndarray:
    """The inverse permutation of :func:`address_to_square`."""
    forward = address_to_square(level)
    inverse = np.empty_like(forward)
    inverse[forward] = np.arange(len(forward))
    return inverse


def address_strings(level: int) -> np.ndarray:
    """The paper's 2^J x 2^J array of address strings (string-Kronecker product)."""
    _check_level(level)
    block = np.array([["0", "1"], ["2", "3"]], dtype=object)
    array = np.array([[""]], dtype=object)
    for _ in range(level):
        array = _kron(array, block)
    return array


def _kron(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """String Kronecker product: ``out[2i + r, 2j + c] = outer[i, j] + inner[r, c]``."""
    n = outer.shape[0]
    out = np.empty((2 * n, 2 * n), dtype=object)
    for r in range(2):
        for c in range(2):
            out[r::2, c::2] = outer + inner[r, c]
    return out


def cell_maps(level: int) -> tuple[np.ndarray, np.ndarray]:
    """``(A [4^J, 2, 2], b [4^J, 2])`` with cell ``n`` = ``{A_n x + b_n : x in T}``."""
    _check_level(level)
    linear, offset = np.eye(2)[None], np.zeros((1, 2))
    for _ in range(level):  # child d of g: g ∘ f_d, i.e. A A_d and A b_d + b
        linear_child = np.einsum("pij,djk->pdik", linear, IFS_MATRICES).reshape(-1, 2, 2)
        offset = (np.einsum("pij,dj->pdi", linear, IFS_OFFSETS) + offset[:, None]).reshape(-1, 2)
        linear = linear_child
    return linear, offset


def representative_points(level: int, point=(1 / 3, 1 / 3)) -> np.ndarray:
    """``f_{a1} ∘ ... ∘ f_{aJ}(point)`` for every cell, ``[4^J, 2]`` in address order."""
    linear, offset = cell_maps(level)
    return linear @ np.asarray(point, dtype=np.float64) + offset


def _check_level(level: int) -> None:
    if not isinstance(level, (int, np.integer)) or level < 0:
        raise GeounetError(f"subdivision level must be a non-negative int, got {level!r}")
