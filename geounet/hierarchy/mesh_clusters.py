"""Nested partitions of arbitrary triangle meshes by area-balanced heavy-edge matching.

The finest level is the faces of the mesh. Each coarser level merges the cells of the
level below along the cell-adjacency graph (cells sharing mesh edges), by
``passes_per_level`` rounds of *handshake matching*: every free cell proposes to its
free neighbour of highest score

    s(p, q) = ℓ_pq / (|C_p| + |C_q|) · (1 + 1e-6 ξ_pq)

(ℓ the shared boundary length, |C| the areas: prefer compact merges of small cells, so
areas stay balanced; ξ a fixed random tie-break, symmetric in p and q), and mutual
proposals are matched. The heaviest free edge is always mutual, so every round makes
progress; a few rounds match nearly all cells. Cells left without a free neighbour join
the pair of their best neighbour. Two passes give ~4x fewer cells per level, like one
midpoint subdivision. Clusters are connected and never span connected components.

Everything is vectorised over edges (sorts and bincounts), O(E log E) per round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.cell_graph import FaceCellHierarchy, contract_edges


def match_cells(
    pairs: np.ndarray, lengths: np.ndarray, areas: np.ndarray, rng: np.random.Generator, rounds: int = 6
) -> np.ndarray:
    """One matching pass: ``labels [n]`` of the merged cells (consecutive from 0)."""
    n = len(areas)
    node = np.arange(n)
    score = lengths / (areas[pairs[:, 0]] + areas[pairs[:, 1]]) * (1 + 1e-6 * rng.random(len(pairs)))
    partner = np.full(n, -1)
    for _ in range(rounds):
        free = partner < 0
        live = free[pairs[:, 0]] & free[pairs[:, 1]]
        if not live.any():
            break
        best = _best_neighbour(n, pairs[live], score[live])
        mutual = (best >= 0) & (best[np.maximum(best, 0)] == node)
        partner[mutual] = best[mutual]
    representative = np.where(partner >= 0, np.minimum(node, partner), node)
    # Unmatched cells with a matched best neighbour join that neighbour's pair.
    best = _best_neighbour(n, pairs, score)
    joins = (partner < 0) & (best >= 0)
    joins &= partner[np.maximum(best, 0)] >= 0
    representative[joins] = representative[best[joins]]
    return np.unique(representative, return_inverse=True)[1].reshape(-1)


def _best_neighbour(n: int, pairs: np.ndarray, score: np.ndarray) -> np.ndarray:
    """For every node, the neighbour on its highest-scoring edge (-1 if it has none)."""
    source = np.concatenate([pairs[:, 0], pairs[:, 1]])
    target = np.concatenate([pairs[:, 1], pairs[:, 0]])
    both = np.concatenate([score, score])
    order = np.lexsort((-both, source))
    source, target = source[order], target[order]
    first = np.ones(len(source), dtype=bool)
    first[1:] = source[1:] != source[:-1]
    best = np.full(n, -1)
    best[source[first]] = target[first]
    return best


class ClusterHierarchy(FaceCellHierarchy):
    """Area-weighted Haar hierarchy of nested face clusters of any triangle mesh.

    Args:
        mesh: the finest level is its faces (masses = face areas).
        num_levels: I + 1.
        passes_per_level: matching passes per coarsening (each roughly halves the cells):
            one number for every level, or one per coarsening step from the finest
            (I -> I-1 first). A step with 0 passes repeats the level (V_{i-1} = V_i). Per-step
            passes match the *physical* cell sizes of meshes of one domain at different
            resolutions: a mesh 4x finer takes 2 more passes in its first step, so its
            coarser levels have the cell sizes of the original mesh's.
        seed: seed of the tie-breaking noise (the partition is deterministic given it).

    Raises ``ValueError`` when the mesh cannot be coarsened to ``num_levels`` levels
    (every connected component already a single cell).
    """

    def __init__(self, mesh: Mesh, num_levels: int, passes_per_level: int | Sequence[int] = 2, seed: int = 0):
        if not isinstance(num_levels, int) or num_levels < 1:
            raise GeounetError(f"num_levels must be a positive int, got {num_levels!r}")
        if isinstance(passes_per_level, int):
            if passes_per_level < 1:
                raise GeounetError(f"passes_per_level must be a positive int, got {passes_per_level!r}")
            passes_per_level = [passes_per_level] * (num_levels - 1)
        passes_per_level = list(passes_per_level)
        if len(passes_per_level) != num_levels - 1 or any(
            not isinstance(p, int) or p < 0 for p in passes_per_level
        ):
            raise GeounetError(
                f"passes_per_level must be a positive int or {num_levels - 1} ints >= 0 (one per coarsening "
                f"step, finest first), got {passes_per_level!r}"
            )
        self.mesh = mesh
        rng = np.random.default_rng(seed)
        pairs, lengths = mesh.face_adjacency
        areas = mesh.face_areas
        parents: list[np.ndarray] = []  # parents[k]: level (I - k) -> level (I - k - 1)
        for step, passes in enumerate(passes_per_level):
            parent = np.arange(len(areas))
            for _ in range(passes):
                labels = match_cells(pairs, lengths, areas, rng)
                num_cells = int(labels.max()) + 1
                pairs, lengths = contract_edges(pairs, lengths, labels, num_cells)
                areas = np.bincount(labels, weights=areas, minlength=num_cells)
                parent = labels[parent]
            if passes and len(areas) == len(parent):
                raise GeounetError(
                    f"cannot coarsen level {num_levels - 1 - step}: its {len(areas)} cells are "
                    f"already one per connected component; ask for at most {step + 1} levels"
                )
            parents.append(parent)
        parents.reverse()
        # face_labels[i]: level-i cell of every face.
        labels = [np.arange(mesh.num_faces)]
        for parent in reversed(parents):
            labels.insert(0, parent[labels[0]])
        self._face_labels = labels
        super().__init__(
            [None] + [torch.from_numpy(p) for p in parents],
            torch.from_numpy(mesh.face_areas),
        )

    def __repr__(self) -> str:
        return f"ClusterHierarchy(nodes={[self.num_nodes(i) for i in range(self.num_levels)]})"

    def face_labels(self, level: int) -> np.ndarray:
        """Level-``level`` cluster of every face ``[F]``."""
        self._check_level(level)
        return self._face_labels[level]
