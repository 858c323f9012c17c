"""Haar hierarchies of nested partitions: piecewise-constant spaces on cells.

Level i partitions the domain into cells; every cell of level i is the union of its
children at level i+1 (``parents[i+1][child] = parent``). V_i is the span of the cell
indicators. With cell measures ``m``, the L2-orthogonal projection onto V_{i-1} is the
mass-weighted mean over children,

    (P x)[p] = sum_{c : parent(c) = p} m_c x_c / M_p,      M_p = sum_{c -> p} m_c,

and the inclusion V_{i-1} ⊂ V_i copies each parent value to its children. This covers
HEALPix NEST pixels, triangle and mesh subdivisions and mesh partitions alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.block_diagonal import offset_cat, offsets_of
from geounet.hierarchy.base import Hierarchy, LevelGraph


class PartitionHaarHierarchy(Hierarchy):
    """Area-weighted Haar hierarchy defined by parent indices and finest-level masses.

    Args:
        parents: ``parents[i]`` (for i = 1..I) maps each node of level i to its parent
            at level i-1, ``[num_nodes(i)]`` int64; ``parents[0]`` must be ``None``.
        finest_mass: cell measures at the finest level ``[num_nodes(I)]``; coarser
            masses are their sums over children, so the partitions are exactly nested.

    Subclasses provide the level graphs by overriding ``_build_graph``; each is built
    once, on first use, and kept with the hierarchy's data.
    """

    kind = "PartitionHaarHierarchy"

    def __init__(self, parents: Sequence[Tensor | None], finest_mass: Tensor):
        if len(parents) < 1 or parents[0] is not None:
            raise GeounetError("parents[0] must be None: the coarsest level has no parent level")
        self._parents = [None] + [p.to(torch.int64) for p in parents[1:]]
        masses = [finest_mass.to(torch.float64)]
        for level in range(len(parents) - 1, 0, -1):
            parent = self._parents[level]
            if parent.shape != masses[0].shape:
                raise GeounetError(
                    f"parents[{level}] has {parent.numel()} entries but level {level} has {masses[0].numel()} nodes"
                )
            num_coarse = int(parent.max()) + 1 if parent.numel() else 0
            coarse = torch.zeros(num_coarse, dtype=torch.float64).index_add_(0, parent, masses[0])
            if (coarse <= 0).any():
                raise GeounetError(f"level {level - 1} has cells with no children or zero mass")
            masses.insert(0, coarse)
        self._masses = masses
        # Child weight m_c / M_parent(c), the row weights of the restriction.
        self._child_weights = [None] + [
            masses[level] / masses[level - 1][self._parents[level]] for level in range(1, len(parents))
        ]
        self._graphs: dict[int, LevelGraph] = {}

    @staticmethod
    def disjoint_union(hierarchies: Sequence[PartitionHaarHierarchy]) -> PartitionHaarHierarchy:
        """The partition hierarchy of the disjoint union of ``hierarchies`` (same number of levels,
        one device), for restrict / prolong only (it has no graphs).

        Level i's parents are each part's, shifted by the part's node offset at level i - 1
        (:func:`~geounet.functional.block_diagonal.offset_cat`); masses and child weights are
        the parts' concatenated, not recomputed, so the union's operators are the parts'
        exactly, block by block, and it is built where the parts live with no host round trip.
        """
        first = hierarchies[0]
        union = PartitionHaarHierarchy.__new__(PartitionHaarHierarchy)
        union._masses = [torch.cat([h.mass(level) for h in hierarchies]) for level in range(first.num_levels)]
        union._parents, union._child_weights = [None], [None]
        for level in range(1, first.num_levels):
            offsets = offsets_of([h.num_nodes(level - 1) for h in hierarchies])
            union._parents.append(offset_cat([h.parents(level) for h in hierarchies], offsets))
            union._child_weights.append(torch.cat([h._child_weights[level] for h in hierarchies]))
        union._graphs = {}
        union.device, union.dtype = first.device, first.dtype
        return union

    @property
    def num_levels(self) -> int:
        return len(self._masses)

    def num_nodes(self, level: int) -> int:
        self._check_level(level)
        return self._masses[level].numel()

    def mass(self, level: int) -> Tensor:
        self._check_level(level)
        return self._masses[level]

    def parents(self, level: int) -> Tensor:
        """Parent index (at level-1) of every node of ``level``, ``[num_nodes(level)]``."""
        self._check_level(level, lowest=1)
        return self._parents[level]

    def graph(self, level: int) -> LevelGraph:
        self._check_level(level)
        if level not in self._graphs:
            self._graphs[level] = self._build_graph(level)
        return self._graphs[level]

    def _build_graph(self, level: int) -> LevelGraph:
        raise NotImplementedError(f"{self.kind} has no level graphs; subclasses define _build_graph")

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        weight = self._child_weights[level].to(x.dtype)  # [N_fine]; a no-op once moved with .to(dtype)
        flat = x.reshape(-1, x.shape[-2], x.shape[-1])  # [B, N_fine, C]
        out = flat.new_zeros(flat.shape[0], self.num_nodes(level - 1), flat.shape[-1])
        out.index_add_(1, self._parents[level], flat * weight[:, None])
        return out.reshape(*x.shape[:-2], out.shape[-2], x.shape[-1])

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        return x.index_select(-2, self._parents[level + 1])
