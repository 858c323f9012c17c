"""HEALPix Haar hierarchy: piecewise-constant functions on nested equal-area pixels.

Level i is the HEALPix grid at ``nside_i = nside_0 * 2**i`` in NEST order; V_i is the
span of the pixel indicators. The 4 children of NEST pixel ``p`` are ``4p .. 4p + 3``
and all pixels of a level have the same area ``4π / N_i``, so the mass-orthogonal
projection onto V_{i-1} is the plain mean of the children,

    (P x)[p] = (x[4p] + x[4p+1] + x[4p+2] + x[4p+3]) / 4,

which is ``healpy.ud_grade(x, nside_{i-1}, order_in="NEST", power=None)``, and the
inclusion V_{i-1} ⊂ V_i repeats every value 4 times. Both are pure reshapes of the
contiguous NEST layout (no index tensors), which is what makes them run near copy
speed at nside 1024.

Every level carries the 8-neighbour graph of :func:`healpix_level_graph`, built lazily
on first use and cached per hierarchy.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from geounet.geometry.healpix import (
    neighbour_geometry,
    neighbour_table,
    npix,
    pixel_area,
    pixel_vectors,
    validate_nside,
)
from geounet.hierarchy.base import Hierarchy, LevelGraph, validate_dyadic_levels


def healpix_level_graph(nside: int) -> LevelGraph:
    """The 8-neighbour graph of the NEST grid at ``nside`` with edge geometry.

    ``neighbours [N, 8]`` lists the sources of each target pixel in healpy's order
    (SW, W, NW, N, NE, E, SE, S); the 24 pixels next to the 8 three-face vertices have
    only 7 neighbours (at nside 1 each base pixel has 6) and their missing slots point
    at the pixel itself with ``neighbour_mask`` False. ``neighbour_attr [N, 8, 3]`` (float64) holds (east, north,
    great-circle distance) of the source seen from the target's tangent plane
    (:func:`geounet.geometry.healpix.edge_geometry`); ``edge_index`` / ``edge_attr`` are
    the same edges in target-major order; ``positions [N, 3]`` the unit centre vectors.
    """
    positions = pixel_vectors(nside)  # [N, 3]
    table = neighbour_table(nside)  # [N, 8], -1 where absent
    attr = neighbour_geometry(nside, positions, table)  # [N, 8, 3]
    mask = table >= 0
    missing = (~mask).reshape(-1).nonzero().squeeze(1)  # always 24 slots
    num_edges = table.numel() - missing.numel()
    edge_index = torch.empty(2, num_edges, dtype=torch.int64)  # [2, E], target-major
    _drop(table.reshape(-1), missing, out=edge_index[0])
    _drop_arange(table.numel(), missing, out=edge_index[1]).bitwise_right_shift_(3)  # slot // 8
    neighbours = table.clone()
    neighbours.view(-1)[missing] = missing // table.shape[1]  # absent: the node itself
    return LevelGraph(
        edge_index=edge_index,
        edge_attr=_drop(attr.reshape(-1, attr.shape[-1]), missing),
        positions=positions,
        neighbours=neighbours,
        neighbour_mask=mask,
        neighbour_attr=attr,
    )


def _segments(length: int, rows: Tensor) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` ranges of ``range(length)`` between the (sorted, few) ``rows``."""
    bounds = [-1, *rows.tolist(), length]
    return [(lo + 1, hi) for lo, hi in itertools.pairwise(bounds)]


def _drop_arange(length: int, rows: Tensor, out: Tensor) -> Tensor:
    """``arange(length)`` without ``rows``, written into ``out`` without temporaries."""
    position = 0
    for lo, hi in _segments(length, rows):
        torch.arange(lo, hi, out=out[position: position + hi - lo])
        position += hi - lo
    return out


def _drop(flat: Tensor, rows: Tensor, out: Tensor | None = None) -> Tensor:
    """``flat`` without the (sorted, few) ``rows``: a concatenation of the slices between them."""
    return torch.cat([flat[lo:hi] for lo, hi in _segments(flat.shape[0], rows)], out=out)


class HealpixLevels(Hierarchy):
    """Levels on HEALPix NEST grids from ``nside / 2**(num_levels-1)`` to ``nside``.

    The part shared by every HEALPix hierarchy: sizes, equal-area masses ``4π / N_i``
    (the sphere has measure 4π) and the lazily built, cached 8-neighbour graphs.
    Features are ``[..., 12 nside_i², C]`` in NEST order (convert other orderings with
    :func:`geounet.geometry.healpix.to_nest`).

    Args:
        nside: finest nside, a power of two.
        num_levels: number of levels I + 1; the coarsest nside ``nside >> (num_levels - 1)``
            must be at least 1.
    """

    def __init__(self, nside: int, num_levels: int):
        self.nside = validate_nside(nside)
        self._num_levels = validate_dyadic_levels(num_levels, self.nside, f"nside {nside}", "nside 1")
        self._graphs: dict[int, LevelGraph] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nside={self.nside}, num_levels={self.num_levels})"

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def nside_at(self, level: int) -> int:
        """HEALPix nside of ``level``."""
        self._check_level(level)
        return self.nside >> (self.finest_level - level)

    def num_nodes(self, level: int) -> int:
        return npix(self.nside_at(level))

    def mass(self, level: int) -> Tensor:
        area = pixel_area(self.nside_at(level))
        return torch.full((self.num_nodes(level),), area, dtype=self.dtype, device=self.device)

    def num_edge_features(self, level: int) -> int:
        """(east, north, distance): known without building the graph."""
        return 3

    def graph(self, level: int) -> LevelGraph:
        """The level's 8-neighbour graph (:func:`healpix_level_graph`), built once."""
        self._check_level(level)
        if level not in self._graphs:
            self._graphs[level] = healpix_level_graph(self.nside_at(level))
        return self._graphs[level]


class HealpixHaarHierarchy(HealpixLevels):
    """Haar hierarchy on HEALPix NEST grids: restrict = mean of 4 children, prolong = repeat."""

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        return healpix_restrict(x)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return healpix_prolong(x)


def healpix_restrict(x: Tensor) -> Tensor:
    """Mean over the 4 NEST children: ``[..., 4M, C] -> [..., M, C]``."""
    *lead, num, channels = x.shape
    return x.reshape(*lead, num // 4, 4, channels).mean(-2)


def healpix_prolong(x: Tensor) -> Tensor:
    """Repeat each NEST pixel for its 4 children: ``[..., M, C] -> [..., 4M, C]``."""
    *lead, num, channels = x.shape
    return x.unsqueeze(-2).expand(*lead, num, 4, channels).reshape(*lead, 4 * num, channels)
