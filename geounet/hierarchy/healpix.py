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

import functools

import torch
from torch import Tensor

from geounet.functional.children import child_mean, child_repeat
from geounet.geometry.healpix import (
    missing_neighbours,
    neighbour_geometry,
    neighbour_table,
    npix,
    pixel_area,
    pixel_vectors,
    validate_nside,
)
from geounet.hierarchy.base import Hierarchy, LevelGraph, ProlongLayout, validate_dyadic_levels
from geounet.hierarchy.memory import check_fits


def healpix_level_graph(nside: int) -> LevelGraph:
    """The 8-neighbour graph of the NEST grid at ``nside``, stored as its neighbour table only.

    ``neighbours [N, 8]`` (int32) lists the sources of each target pixel in healpy's order
    (SW, W, NW, N, NE, E, SE, S), pure arithmetic on NEST indices
    (:func:`geounet.geometry.healpix.neighbour_table`); the 24 pixels next to the 8
    three-face vertices have only 7 neighbours (at nside 1 each base pixel has 6) and
    their missing slots point at the pixel itself with ``neighbour_mask`` False. The rest
    is computed on each access, never stored: ``positions [N, 3]`` the unit centre vectors
    (float64), ``neighbour_attr [N, 8, 3]`` (east, north, great-circle distance) of the
    source seen from the target's tangent plane
    (:func:`geounet.geometry.healpix.neighbour_geometry`), and ``edge_index`` /
    ``edge_attr`` the same edges in target-major order. At nside 1024 the stored graph is
    0.5 GB (int32 table and mask), against 7.3 GB for the same graph as float64 edge lists
    and table together.
    """
    table = neighbour_table(nside, torch.int32)  # [N, 8], -1 where absent
    pixels, slots = missing_neighbours(nside)
    table[pixels, slots] = pixels.to(torch.int32)  # absent: the pixel itself
    mask = torch.ones(table.shape, dtype=torch.bool)
    mask[pixels, slots] = False
    return LevelGraph(neighbours=table, neighbour_mask=mask, derive=functools.partial(_healpix_geometry, nside))


def _healpix_geometry(nside: int, graph: LevelGraph, name: str) -> Tensor | None:
    """``positions`` / ``neighbour_attr`` of the HEALPix graph at ``nside``, on the table's device."""
    if name not in ("positions", "neighbour_attr"):
        return None
    positions = pixel_vectors(nside).to(graph.neighbours.device)  # [N, 3]
    if name == "positions":
        return positions
    return neighbour_geometry(nside, positions, graph.neighbours, graph.neighbour_mask)  # [N, 8, 3]


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

    #: bytes per pixel of the finest level's arrays at least: the neighbour table (int32 [N, 8]),
    #: the mass and the pixel positions (float64 [N] and [N, 3])
    BYTES_PER_PIXEL = 4 * 8 + 8 + 8 * 3

    def __init__(self, nside: int, num_levels: int):
        self.nside = validate_nside(nside)
        self._num_levels = validate_dyadic_levels(num_levels, self.nside, f"nside {nside}", "nside 1")
        check_fits(self.BYTES_PER_PIXEL * npix(self.nside), f"a HEALPix hierarchy at nside {self.nside} "
                   f"({npix(self.nside):,} pixels x {self.BYTES_PER_PIXEL} bytes on its finest level)",
                   "choose a smaller nside")
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

    def healpix_nside(self, level: int) -> int:
        return self.nside_at(level)

    def node_symmetries(self) -> dict[str, Tensor]:
        """Rotation by 90° about the polar axis: each base pixel moves to its neighbour in
        longitude (base pixels 4r .. 4r + 3 form ring r), NEST positions inside it unchanged."""
        nside = self.nside_at(self.finest_level)
        base = torch.arange(12)
        rotated = (base // 4) * 4 + (base + 3) % 4  # the base pixel that lands on each base pixel
        inside = torch.arange(nside * nside)
        return {"rotate_90": (rotated[:, None] * nside * nside + inside[None, :]).reshape(-1)}


class HealpixHaarHierarchy(HealpixLevels):
    """Haar hierarchy on HEALPix NEST grids: restrict = mean of 4 children, prolong = repeat."""

    kind = "HealpixHaarHierarchy"

    def prolong_layout(self, level: int) -> ProlongLayout | None:
        """The 4 children of NEST pixel p are 4p .. 4p + 3: coarse ``[M, 1]``, fine ``[M, 4]``
        (None for a subclass with a prolong of its own)."""
        if type(self)._prolong is not HealpixHaarHierarchy._prolong:
            return None
        cells = self.num_nodes(level)
        return (cells, 1), (cells, 4)

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        return healpix_restrict(x)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return healpix_prolong(x)


def healpix_restrict(x: Tensor) -> Tensor:
    """Mean over the 4 NEST children: ``[..., 4M, C] -> [..., M, C]``."""
    *lead, num, channels = x.shape
    return child_mean(x.reshape(*lead, num // 4, 4, channels), (-2,)).reshape(*lead, num // 4, channels)


def healpix_prolong(x: Tensor) -> Tensor:
    """Repeat each NEST pixel for its 4 children: ``[..., M, C] -> [..., 4M, C]``."""
    *lead, num, channels = x.shape
    return child_repeat(x.unsqueeze(-2), (*lead, num, 4, channels)).reshape(*lead, 4 * num, channels)
