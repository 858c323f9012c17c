"""Graphs of cells that are unions of mesh faces, with geometric edge features.

A partition of the faces of a mesh (``labels[f]`` = cell of face f) defines cells
``C_p = ∪_{labels[f] = p} T_f`` with measure ``|C_p| = Σ |T_f|`` and area-weighted
centroid ``x_p = Σ |T_f| x_f / |C_p|``. Two cells are neighbours when they share a mesh
edge; the edge features of ``q -> p`` (source q, target p) are

    (x_q - x_p,  |x_q - x_p|,  ℓ_pq)                       [D + 2 features]

with ``ℓ_pq`` the total length of the mesh edges on their common boundary. This one
builder serves triangle subdivisions, subdivision meshes and clustered partitions,
whose common base is :class:`FaceCellHierarchy`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import LevelGraph
from geounet.hierarchy.haar import PartitionHaarHierarchy


def cell_centroids(mesh: Mesh, labels: np.ndarray, num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mass [P], centroids [P, D])`` of the cells given by face ``labels [F]``."""
    areas = mesh.face_areas
    mass = np.bincount(labels, weights=areas, minlength=num_cells)
    weighted = mesh.face_centroids * areas[:, None]
    centroids = np.stack(
        [np.bincount(labels, weights=weighted[:, d], minlength=num_cells) for d in range(mesh.dim)], axis=1
    )
    return mass, centroids / mass[:, None]


def cell_adjacency(mesh: Mesh, labels: np.ndarray, num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs [A, 2] with pairs[:, 0] < pairs[:, 1], shared boundary length [A])``."""
    return contract_edges(*mesh.face_adjacency, labels, num_cells)


def contract_edges(
    pairs: np.ndarray, lengths: np.ndarray, labels: np.ndarray, num_cells: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the nodes of a weighted graph into cells ``labels``: edges inside a cell
    vanish and parallel edges between two cells are summed. Returns ``(pairs, lengths)``
    with ``pairs[:, 0] < pairs[:, 1]``."""
    a, b = labels[pairs[:, 0]], labels[pairs[:, 1]]
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    keys, inverse = np.unique(lo * num_cells + hi, return_inverse=True)
    shared = np.bincount(inverse.reshape(-1), weights=lengths[keep], minlength=len(keys))
    return np.stack([keys // num_cells, keys % num_cells], axis=1), shared


def cell_graph(mesh: Mesh, labels: np.ndarray, num_cells: int) -> LevelGraph:
    """The :class:`LevelGraph` of the cells, with a fixed-degree neighbour table.

    Edges are sorted by target then source; ``neighbours[p]`` lists the sources of the
    edges into ``p``, padded with ``p`` itself and masked where the degree is smaller.
    """
    _, centroids = cell_centroids(mesh, labels, num_cells)
    pairs, shared = cell_adjacency(mesh, labels, num_cells)
    source = np.concatenate([pairs[:, 0], pairs[:, 1]])
    target = np.concatenate([pairs[:, 1], pairs[:, 0]])
    length = np.concatenate([shared, shared])
    order = np.lexsort((source, target))
    source, target, length = source[order], target[order], length[order]
    displacement = centroids[source] - centroids[target]  # [E, D]
    edge_attr = np.concatenate(
        [displacement, np.linalg.norm(displacement, axis=1, keepdims=True), length[:, None]], axis=1
    )
    degree = np.bincount(target, minlength=num_cells)
    width = int(degree.max()) if len(degree) and len(target) else 0
    slot = np.arange(len(target)) - np.repeat(np.cumsum(degree) - degree, degree)
    neighbours = np.repeat(np.arange(num_cells)[:, None], width, axis=1)
    neighbours[target, slot] = source
    mask = np.zeros((num_cells, width), dtype=bool)
    mask[target, slot] = True
    attr = np.zeros((num_cells, width, edge_attr.shape[1]))
    attr[target, slot] = edge_attr
    return LevelGraph(
        edge_index=torch.from_numpy(np.stack([source, target]).astype(np.int64)),
        edge_attr=torch.from_numpy(edge_attr),
        positions=torch.from_numpy(centroids),
        neighbours=torch.from_numpy(neighbours.astype(np.int64)),
        neighbour_mask=torch.from_numpy(mask),
        neighbour_attr=torch.from_numpy(attr),
    )


class FaceCellHierarchy(PartitionHaarHierarchy):
    """A Haar hierarchy whose level-i cells are unions of the faces of ``self.mesh``.

    Subclasses set ``mesh`` and define ``face_labels(level)``, the level-``level`` cell of
    every face ``[F]``. Graphs are :func:`cell_graph`; a cell is a boundary cell when one of
    its faces has a boundary vertex (so zero-Dirichlet cells nest: a boundary cell's parent
    is a boundary cell).
    """

    mesh: Mesh
    #: one kind for every face-cell partition (clusters, subdivisions, the triangle): the same
    #: spaces (cell averages) and graphs, so one model serves all of them
    kind = "FaceCellHierarchy"

    def face_labels(self, level: int) -> np.ndarray:
        raise NotImplementedError

    def _build_graph(self, level: int) -> LevelGraph:
        return cell_graph(self.mesh, self.face_labels(level), self.num_nodes(level))

    def boundary_mask(self, level: int) -> Tensor:
        def build() -> Tensor:
            mask = np.zeros(self.num_nodes(level), dtype=bool)
            mask[self.face_labels(level)[self.mesh.boundary_faces]] = True
            return torch.from_numpy(mask).to(self.device)

        return self.cached("boundary_mask", level, build)
