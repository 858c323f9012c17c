"""The finest levels of a hierarchy as a hierarchy of their own (a shallower U-Net's spaces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy, LevelGraph, ProlongLayout

T = TypeVar("T")


class FinestLevels(Hierarchy):
    """The ``num_levels`` finest levels of ``base`` as a hierarchy of their own.

    Level ``i`` here is level ``i + base.num_levels - num_levels`` of ``base``; restrict,
    prolong, mass, graphs, components, boundaries, capabilities and memoised data are
    delegated, so all invariants carry over and nothing is computed twice.
    """

    def __init__(self, base: Hierarchy, num_levels: int):
        if not isinstance(num_levels, int) or not 1 <= num_levels <= base.num_levels:
            raise GeounetError(f"depth must be an int in [1, {base.num_levels}] for {base!r}, got {num_levels!r}")
        self.base = base
        self.offset = base.num_levels - num_levels
        self._num_levels = num_levels
        self.reproduces_constants = base.reproduces_constants
        self.preserves_integrals = base.preserves_integrals
        self.periodic = base.periodic
        self.device = base.device
        self.dtype = base.dtype

    def __repr__(self) -> str:
        return f"FinestLevels({self.base!r}, num_levels={self.num_levels})"

    @property
    def kind(self) -> str:
        return self.base.kind

    @property
    def dimension(self) -> int:
        return self.base.dimension

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def _base_level(self, level: int) -> int:
        self._check_level(level)
        return level + self.offset

    def num_nodes(self, level: int) -> int:
        return self.base.num_nodes(self._base_level(level))

    def mass(self, level: int) -> Tensor:
        return self.base.mass(self._base_level(level))

    def graph(self, level: int) -> LevelGraph:
        return self.base.graph(self._base_level(level))

    def num_edge_features(self, level: int) -> int:
        return self.base.num_edge_features(self._base_level(level))

    def components(self, level: int) -> list[int]:
        return self.base.components(self._base_level(level))

    def parts(self) -> list[Hierarchy]:
        return [finest_levels(part, self.num_levels) for part in self.base.parts()]

    def boundary_mask(self, level: int) -> Tensor:
        return self.base.boundary_mask(self._base_level(level))

    def space_dimension(self, level: int) -> int:
        return self.base.space_dimension(self._base_level(level))

    def prolong_layout(self, level: int) -> ProlongLayout | None:
        return self.base.prolong_layout(self._base_level(level))

    def healpix_nside(self, level: int) -> int | None:
        return self.base.healpix_nside(self._base_level(level))

    def healpix_face_nside(self, level: int) -> int | None:
        return self.base.healpix_face_nside(self._base_level(level))

    def image_shape(self, level: int) -> tuple[int, int] | None:
        return self.base.image_shape(self._base_level(level))

    def node_symmetries(self) -> dict[str, Tensor]:
        return self.base.node_symmetries()  # the same finest level

    def materialize(self) -> FinestLevels:
        self.base.materialize()
        return self

    def cached(self, name: Any, level: int, build: Callable[[], T]) -> T:
        return self.base.cached(name, self._base_level(level), build)

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        return self.base.restrict(x, level + self.offset)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return self.base.prolong(x, level + self.offset)


def finest_levels(hierarchy: Hierarchy, depth: int) -> Hierarchy:
    """The ``depth`` finest levels of ``hierarchy``: the hierarchy itself when that is all of
    them, else a :class:`FinestLevels` view."""
    return hierarchy if depth == hierarchy.num_levels else FinestLevels(hierarchy, depth)
