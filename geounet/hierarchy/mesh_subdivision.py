"""Haar hierarchies on meshes with subdivision connectivity (icospheres, refined meshes).

One 1 -> 4 midpoint subdivision splits face ``(v0, v1, v2)`` with edge midpoints
``m_ij`` into the children (in this order, child ``d`` of face ``f`` is face ``4 f + d``)

    0: (v0, m01, m02)   1: (m01, v1, m12)   2: (m02, m12, v2)   3: (m12, m02, m01)

which is the paper's triangle IFS (Williams, Falck et al. 2023, §3.2): child d is the image of the parent
under f_d, with the inverted middle triangle last. After ``I`` subdivisions the face
``f`` of the finest mesh lies in coarse face ``f // 4**(I - i)`` of level ``i``.

V_i is the span of the indicators of the level-i cells, each the union of its finest
faces. Vertex positions may be moved after each subdivision (projected to the sphere,
Loop-smoothed), so children have unequal areas; the finest face areas are the masses and
the projection is the exact area-weighted mean of :class:`PartitionHaarHierarchy`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.cell_graph import FaceCellHierarchy

#: Corner pattern of the four children in terms of (v0, v1, v2, m01, m12, m02).
_CHILDREN = np.array([[0, 3, 5], [3, 1, 4], [5, 4, 2], [4, 5, 3]])


def subdivide(mesh: Mesh) -> Mesh:
    """One midpoint subdivision: new vertex ``V + e`` is the midpoint of ``mesh.edges[e]``."""
    mid = mesh.num_vertices + mesh.edge_of_half_edge.reshape(-1, 3)  # [F, 3]: m01, m12, m20
    corners = np.concatenate([mesh.faces, mid], axis=1)  # [F, 6]
    fine_faces = corners[:, _CHILDREN].reshape(-1, 3)  # [4F, 3], children consecutive
    edges = mesh.edges
    midpoints = 0.5 * (mesh.vertices[edges[:, 0]] + mesh.vertices[edges[:, 1]])
    return Mesh(np.concatenate([mesh.vertices, midpoints]), fine_faces)


def loop_positions(coarse: Mesh) -> np.ndarray:
    """Loop-subdivision vertex positions for the connectivity of ``fine`` (closed meshes).

    Odd (edge) vertices: ``3/8 (a + b) + 1/8 (c + d)`` with c, d opposite the edge;
    even vertices: ``(1 - n β) v + β Σ neighbours``, ``β = (5/8 - (3/8 + cos(2π/n)/4)^2) / n``.
    """
    coarse.require_manifold("Loop smoothing")  # its stencils assume two faces per edge
    if len(coarse.boundary_edges):
        raise GeounetError("Loop smoothing is implemented for closed meshes; use scheme='midpoint'")
    v, n, edges = coarse.vertices, coarse.num_vertices, coarse.edges
    adjacency = sp.coo_matrix(
        (np.ones(2 * len(edges)), (edges.reshape(-1), edges[:, ::-1].reshape(-1))), shape=(n, n)
    ).tocsr()
    valence = np.asarray(adjacency.sum(axis=1)).ravel()
    beta = (5 / 8 - (3 / 8 + np.cos(2 * np.pi / valence) / 4) ** 2) / valence
    even = (1 - valence * beta)[:, None] * v + beta[:, None] * (adjacency @ v)
    # Half-edge k -> k+1 of a face is opposite its corner k + 2: sum those per edge.
    third = coarse.faces[:, [2, 0, 1]].reshape(-1)  # [3F]
    opposite_sum = np.stack(
        [np.bincount(coarse.edge_of_half_edge, weights=v[third, d], minlength=len(edges)) for d in range(v.shape[1])],
        axis=1,
    )
    odd = 3 / 8 * (v[edges[:, 0]] + v[edges[:, 1]]) + 1 / 8 * opposite_sum
    return np.concatenate([even, odd])  # [V + E, D], the vertex order of subdivide()


def sphere_projection(vertices: np.ndarray) -> np.ndarray:
    """Project vertices radially onto the unit sphere."""
    return vertices / np.linalg.norm(vertices, axis=1, keepdims=True)


class SubdivisionHierarchy(FaceCellHierarchy):
    """Area-weighted Haar hierarchy of a coarse mesh refined ``num_levels - 1`` times.

    Args:
        coarse: the level-0 mesh.
        num_levels: I + 1; the finest mesh has ``4**I`` times as many faces.
        scheme: ``"midpoint"`` (positions stay on the coarse faces) or ``"loop"``
            (Loop smoothing, closed meshes).
        project: optional map applied to the vertex positions after every subdivision,
            e.g. :func:`sphere_projection` for icospheres.
    """

    def __init__(
        self,
        coarse: Mesh,
        num_levels: int,
        scheme: str = "midpoint",
        project: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        if not isinstance(num_levels, int) or num_levels < 1:
            raise GeounetError(f"num_levels must be a positive int, got {num_levels!r}")
        if scheme not in ("midpoint", "loop"):
            raise GeounetError(f"scheme must be 'midpoint' or 'loop', got {scheme!r}")
        meshes = [coarse]
        for _ in range(num_levels - 1):
            fine = subdivide(meshes[-1])
            positions = loop_positions(meshes[-1]) if scheme == "loop" else fine.vertices
            if project is not None:
                positions = project(positions)
            meshes.append(fine if positions is fine.vertices else Mesh(positions, fine.faces))
        self.meshes = meshes
        self.mesh = meshes[-1]
        parents = [None] + [torch.arange(m.num_faces) // 4 for m in meshes[1:]]
        super().__init__(parents, torch.from_numpy(self.mesh.face_areas))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(faces={[m.num_faces for m in self.meshes]})"

    def face_labels(self, level: int) -> np.ndarray:
        """Level-``level`` cell of every finest face ``[F_I]``."""
        self._check_level(level)
        return np.arange(self.mesh.num_faces) // 4 ** (self.finest_level - level)
