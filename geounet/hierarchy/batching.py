"""Batching meshes of different sizes: the disjoint-union hierarchy.

For hierarchies H^1 .. H^m with the same number of levels, the disjoint union has, at
level i, the nodes of every H^j concatenated (mesh j at offsets ``o^j_i .. o^{j+1}_i``),
masses concatenated, block-diagonal restrict / prolong and block-diagonal graphs (edge
indices shifted by the offsets). A batch of meshes is then one signal
``[1, Σ_j N^j_i, C]`` (or ``[B, ...]`` for B samples on the same set of meshes), and
``split`` / ``join`` convert to and from per-mesh tensors, and ``batch(level)`` is the
per-level batch vector (the mesh of every node), as in PyTorch Geometric's ``Batch``.

Haar hierarchies (:class:`PartitionHaarHierarchy`) are merged into a single partition
hierarchy with offset parent indices (one ``index_add`` per restriction); any other
hierarchy is applied block by block.

Every index tensor of the union (graphs, parent maps, batch vectors, and the sparse
operators :mod:`geounet.nn.message_passing` memoises) is the parts' own, joined by one
routine, :func:`~geounet.functional.block_diagonal.offset_cat`: the parts keep their memoised
tensors across batches (a data set holds them), so collating a batch only shifts and
concatenates them, on their device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.block_diagonal import block_diagonal_table, offset_cat, offsets_of, pad_slots
from geounet.hierarchy.base import Hierarchy, LevelGraph
from geounet.hierarchy.haar import PartitionHaarHierarchy


class BatchedHierarchy(Hierarchy):
    """The disjoint union of ``hierarchies`` (see the module docstring)."""

    def __init__(self, hierarchies: Sequence[Hierarchy]):
        hierarchies = list(hierarchies)
        if not hierarchies:
            raise GeounetError("batch_hierarchies needs at least one hierarchy")
        kinds = {h.kind for h in hierarchies}
        if len(kinds) != 1:
            raise GeounetError(f"hierarchies to batch must be of one kind, got {sorted(kinds)}")
        levels = {h.num_levels for h in hierarchies}
        if len(levels) != 1:
            raise GeounetError(f"all hierarchies must have the same number of levels, got {sorted(levels)}")
        devices = {h.device for h in hierarchies}
        if len(devices) != 1:
            raise GeounetError(f"hierarchies to batch must be on one device, got {sorted(map(str, devices))}")
        self.device = devices.pop()
        self.hierarchies = hierarchies
        self._num_levels = levels.pop()
        self.reproduces_constants = all(h.reproduces_constants for h in hierarchies)
        self.preserves_integrals = all(h.preserves_integrals for h in hierarchies)
        self._sizes = [[h.num_nodes(i) for h in hierarchies] for i in range(self._num_levels)]
        self._merged = (
            PartitionHaarHierarchy.disjoint_union(hierarchies)
            if all(isinstance(h, PartitionHaarHierarchy) for h in hierarchies)
            else None
        )
        self._graphs: dict[int, LevelGraph] = {}

    def __repr__(self) -> str:
        return f"BatchedHierarchy({len(self.hierarchies)} hierarchies, nodes={[sum(s) for s in self._sizes]})"

    @property
    def num_levels(self) -> int:
        return self._num_levels

    def num_nodes(self, level: int) -> int:
        self._check_level(level)
        return sum(self._sizes[level])

    def sizes(self, level: int) -> list[int]:
        """Nodes of each hierarchy at ``level``."""
        self._check_level(level)
        return list(self._sizes[level])

    def components(self, level: int) -> list[int]:
        return self.sizes(level)

    def parts(self) -> list[Hierarchy]:
        return list(self.hierarchies)

    @property
    def kind(self) -> str:
        return self.hierarchies[0].kind

    @property
    def dimension(self) -> int:
        return self.hierarchies[0].dimension

    def num_edge_features(self, level: int) -> int:
        return self.hierarchies[0].num_edge_features(level)

    def boundary_mask(self, level: int) -> Tensor:
        """Each mesh's own boundary nodes, concatenated."""
        return torch.cat([h.boundary_mask(level) for h in self.hierarchies])

    def offsets(self, level: int) -> list[int]:
        """Start of each hierarchy's nodes at ``level``, and the total (m + 1 numbers)."""
        return offsets_of(self.sizes(level))

    def batch(self, level: int) -> Tensor:
        """``[num_nodes(level)]`` int64: the index of the hierarchy each node belongs to (each
        part's own batch vector shifted by the part's index)."""
        self._check_level(level)
        return offset_cat([h.batch(level) for h in self.hierarchies], range(len(self.hierarchies)))

    def split(self, x: Tensor, level: int) -> list[Tensor]:
        """``[..., N, C]`` -> per-hierarchy ``[..., N_j, C]``."""
        self._check_nodes(x, level)
        return list(torch.split(x, self._sizes[level], dim=-2))

    def join(self, parts: Sequence[Tensor], level: int) -> Tensor:
        """Per-hierarchy ``[..., N_j, C]`` -> ``[..., N, C]``."""
        for h, part in zip(self.hierarchies, parts, strict=True):
            h._check_nodes(part, level)
        return torch.cat(list(parts), dim=-2)

    def mass(self, level: int) -> Tensor:
        self._check_level(level)
        return torch.cat([h.mass(level) for h in self.hierarchies])

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        if self._merged is not None:
            return self._merged.restrict(x, level)
        return torch.cat(
            [h.restrict(p, level) for h, p in zip(self.hierarchies, self.split(x, level), strict=False)], dim=-2
        )

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        if self._merged is not None:
            return self._merged.prolong(x, level)
        return torch.cat(
            [h.prolong(p, level) for h, p in zip(self.hierarchies, self.split(x, level), strict=False)], dim=-2
        )

    def graph(self, level: int) -> LevelGraph:
        self._check_level(level)
        if level not in self._graphs:
            self._graphs[level] = _union_graph([h.graph(level) for h in self.hierarchies], self.offsets(level))
        return self._graphs[level]


def batch_hierarchies(hierarchies: Sequence[Hierarchy]) -> BatchedHierarchy:
    """The disjoint union of ``hierarchies`` (all with the same number of levels)."""
    return BatchedHierarchy(hierarchies)


def _union_graph(graphs: Sequence[LevelGraph], offsets: Sequence[int]) -> LevelGraph:
    """Block-diagonal union; optional fields are kept only when every graph has them."""
    widths = {g.num_edge_features for g in graphs}
    if len(widths) != 1:
        raise GeounetError(f"graphs to batch must have the same number of edge features, got {sorted(widths)}")
    edge_index = offset_cat([g.edge_index for g in graphs], offsets, dim=1)  # [2, E]
    edge_attr = torch.cat([g.edge_attr for g in graphs])
    positions = torch.cat([g.positions for g in graphs]) if all(g.positions is not None for g in graphs) else None
    if not all(g.neighbours is not None for g in graphs):
        return LevelGraph(edge_index, edge_attr, positions)
    sizes = [g.neighbours.shape[0] for g in graphs]
    neighbours = block_diagonal_table([g.neighbours for g in graphs], sizes)  # [N, K]
    mask, attr = (torch.cat([pad_slots(getattr(g, name), neighbours.shape[1]) for g in graphs])
                  for name in ("neighbour_mask", "neighbour_attr"))
    return LevelGraph(edge_index, edge_attr, positions, neighbours, mask, attr)
