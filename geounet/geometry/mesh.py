"""Triangle meshes as plain data: vertices, faces and the operators derived from them.

A :class:`Mesh` holds ``vertices [V, D]`` float64 (D = 2 for planar domains, 3 for
surfaces) and ``faces [F, 3]`` int64, validated on construction (use
:func:`geounet.geometry.mesh_repair.repair_mesh` to clean raw arrays first). Everything
else is derived lazily and cached:

- face areas ``|T| = |(b - a) x (c - a)| / 2``, unit normals (D = 3), centroids;
- the unique undirected edges and the face adjacency (faces sharing an edge) with the
  shared edge length;
- boundary edges (edges of exactly one face), boundary vertices and non-manifold edges
  (edges of three or more faces, as in scans and CAD exports: they are valid here, and
  builders that need a manifold say so, see :meth:`Mesh.require_manifold`);
- the P1 finite-element cotangent stiffness matrix ``L`` and lumped mass ``M``:

      L_ij = -(cot α_ij + cot β_ij) / 2   (i != j, α, β the angles opposite edge ij),
      L_ii = -sum_{j != i} L_ij,           M_ii = sum_{T ∋ i} |T| / 3,

  so that ``u^T L u = ∫ |∇u|^2`` for the piecewise-linear interpolant of ``u`` and
  ``L φ = λ M φ`` discretises ``-Δ φ = λ φ``;
- area-weighted transfers between vertex values (P1 functions) and face values (cell
  averages), adjoint in the two mass inner products (:meth:`Mesh.vertex_to_face`,
  :meth:`Mesh.face_to_vertex`).
"""

from __future__ import annotations

import copy
import functools
import hashlib

import numpy as np
import scipy.sparse as sp
import torch

from geounet.errors import GeounetError


class Mesh:
    """A validated triangle mesh (no nn.Module; numpy / scipy.sparse data).

    Args:
        vertices: ``[V, 2]`` or ``[V, 3]`` finite coordinates.
        faces: ``[F, 3]`` vertex indices; every face must have three distinct vertices
            and positive area, no face may repeat, and every vertex must belong to a face.
            Edges may have any number of faces (see :attr:`nonmanifold_edges`).
    """

    def __init__(self, vertices, faces):
        vertices = np.ascontiguousarray(vertices, dtype=np.float64)
        try:
            faces = np.asarray(faces)
        except ValueError as error:  # ragged polygons
            raise GeounetError(
                "faces must have shape [F, 3] (triangles), got polygons of different sizes; triangulate "
                "them with geounet.geometry.mesh_repair.repair_mesh"
            ) from error
        if vertices.ndim != 2 or vertices.shape[1] not in (2, 3):
            raise GeounetError(f"vertices must have shape [V, 2] or [V, 3], got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise GeounetError(
                f"faces must have shape [F, 3] (triangles), got {faces.shape}; "
                "triangulate polygons with geounet.geometry.mesh_repair.repair_mesh"
            )
        if faces.shape[0] == 0:
            raise GeounetError("the mesh is empty (no faces)")
        if not np.issubdtype(faces.dtype, np.integer):
            raise GeounetError(f"faces must hold integer vertex indices, got dtype {faces.dtype}")
        faces = np.ascontiguousarray(faces, dtype=np.int64)
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise GeounetError(
                f"face indices must lie in [0, {len(vertices) - 1}], got range [{faces.min()}, {faces.max()}]"
            )
        if not np.isfinite(vertices).all():
            raise GeounetError("vertices contain NaN or infinite coordinates; repair_mesh drops unused ones")
        self.vertices = vertices
        self.faces = faces
        self.vertices.setflags(write=False)
        self.faces.setflags(write=False)
        self._validate_topology()

    def __repr__(self) -> str:
        return f"Mesh(vertices={self.num_vertices}, faces={self.num_faces}, dim={self.dim})"

    def _map_tensors(self, fn) -> Mesh:
        """A mesh holds no tensors: a copy (with ``Hierarchy.to``) shares the read-only vertex and
        face arrays but has its own cache of derived arrays, so filling it on a moved hierarchy
        leaves the original's mesh unchanged (see geounet.functional.tensor_data)."""
        return copy.copy(self)

    def _validate_topology(self) -> None:
        problems = mesh_problems(self.vertices, self.faces)
        if problems:
            raise GeounetError(
                "invalid mesh: " + "; ".join(problems) + ". Clean it with "
                "geounet.geometry.mesh_repair.repair_mesh (or load_mesh(..., repair=True))"
            )

    # ------------------------------------------------------------------ sizes

    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @property
    def dim(self) -> int:
        return self.vertices.shape[1]

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of the vertex and face bytes (and shapes): a key for on-disk caches."""
        digest = hashlib.sha256()
        digest.update(np.asarray(self.vertices.shape + self.faces.shape, dtype=np.int64).tobytes())
        digest.update(self.vertices.tobytes())
        digest.update(self.faces.tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ faces

    @functools.cached_property
    def corners(self) -> np.ndarray:
        """Corner coordinates ``[F, 3, D]``."""
        return self.vertices[self.faces]

    @functools.cached_property
    def face_areas(self) -> np.ndarray:
        """``[F]`` float64, half the norm of the edge cross product."""
        return face_areas(self.corners)

    @functools.cached_property
    def area(self) -> float:
        return float(self.face_areas.sum())

    @functools.cached_property
    def face_normals(self) -> np.ndarray:
        """Unit normals ``[F, 3]`` (right-hand rule over the face's vertex order); 3-D only."""
        if self.dim != 3:
            raise GeounetError("face normals are defined for surfaces in 3-D; this mesh is planar")
        c = self.corners
        n = np.cross(c[:, 1] - c[:, 0], c[:, 2] - c[:, 0])
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    @functools.cached_property
    def face_centroids(self) -> np.ndarray:
        """``[F, D]``, the mean of the three corners."""
        return self.corners.mean(axis=1)

    # ------------------------------------------------------------------ edges

    @functools.cached_property
    def _half_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edge_of_half_edge [3F], edges [E, 2])``: half-edge k of face f is ``3 f + k``,
        the edge from corner k to corner k+1; edges are sorted vertex pairs."""
        edges, inverse, _ = unique_rows(_half_edge_pairs(self.faces))
        return inverse, edges

    @property
    def edge_of_half_edge(self) -> np.ndarray:
        """Edge index of half-edge ``3 f + k`` (corner k -> k+1 of face f), ``[3F]``."""
        return self._half_edges[0]

    @property
    def edges(self) -> np.ndarray:
        """Unique undirected edges ``[E, 2]`` (sorted vertex pairs)."""
        return self._half_edges[1]

    @functools.cached_property
    def edge_lengths(self) -> np.ndarray:
        e = self.edges
        return np.linalg.norm(self.vertices[e[:, 1]] - self.vertices[e[:, 0]], axis=1)

    @functools.cached_property
    def edge_face_counts(self) -> np.ndarray:
        """Number of faces on each edge ``[E]`` (1 = boundary, 2 = interior)."""
        return np.bincount(self._half_edges[0], minlength=len(self.edges))

    @functools.cached_property
    def face_adjacency(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pairs [A, 2], shared_length [A])``: faces sharing an edge, each pair once
        (``pairs[:, 0] < pairs[:, 1]``), with the length of the shared edge. An edge of
        ``c`` faces gives all ``c (c - 1) / 2`` pairs (one on a manifold's interior edge)."""
        edge_of, _ = self._half_edges
        order = np.argsort(edge_of, kind="stable")
        sorted_edges = edge_of[order]
        first, second, shared = [], [], []
        # Half-edges of one edge are consecutive after the sort: pair each with those d
        # positions further on for d = 1 .. (most faces on an edge) - 1.
        for d in range(1, int(self.edge_face_counts.max())):
            same = sorted_edges[d:] == sorted_edges[:-d]
            first.append(order[:-d][same] // 3)
            second.append(order[d:][same] // 3)
            shared.append(sorted_edges[d:][same])
        if not first:  # every edge is a boundary edge (a triangle soup)
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
        pairs = np.sort(np.stack([np.concatenate(first), np.concatenate(second)], axis=1), axis=1)
        return pairs, self.edge_lengths[np.concatenate(shared)]

    @functools.cached_property
    def boundary_edges(self) -> np.ndarray:
        """Edges with exactly one incident face ``[B, 2]``."""
        return self.edges[self.edge_face_counts == 1]

    @functools.cached_property
    def nonmanifold_edges(self) -> np.ndarray:
        """Edges with three or more incident faces ``[N, 2]``."""
        return self.edges[self.edge_face_counts > 2]

    @property
    def is_manifold(self) -> bool:
        """Whether every edge has one or two faces (vertices where sheets touch are allowed)."""
        return len(self.nonmanifold_edges) == 0

    def require_manifold(self, what: str) -> None:
        """Raise a ``ValueError`` naming ``what`` when the mesh has non-manifold edges."""
        if not self.is_manifold:
            raise GeounetError(
                f"{what} needs a manifold mesh, but {len(self.nonmanifold_edges)} edges have three or more faces "
                f"(e.g. vertices {tuple(self.nonmanifold_edges[0].tolist())}); split them with "
                "geounet.geometry.mesh_repair.split_nonmanifold_edges"
            )

    @functools.cached_property
    def boundary_vertices(self) -> np.ndarray:
        """Sorted indices of vertices on a boundary edge."""
        return np.unique(self.boundary_edges)

    @functools.cached_property
    def boundary_faces(self) -> np.ndarray:
        """Boolean ``[F]``: faces with a boundary vertex (their closure meets the boundary)."""
        on_boundary = np.zeros(self.num_vertices, dtype=bool)
        on_boundary[self.boundary_vertices] = True
        return on_boundary[self.faces].any(axis=1)

    @functools.cached_property
    def face_components(self) -> np.ndarray:
        """Connected component label of each face ``[F]`` (faces linked through edges)."""
        pairs, _ = self.face_adjacency
        graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(self.num_faces, self.num_faces))
        return sp.csgraph.connected_components(graph, directed=False)[1].astype(np.int64)

    # ------------------------------------------------------------------ FEM operators

    @functools.cached_property
    def cotangent_laplacian(self) -> sp.csr_matrix:
        """The P1 stiffness matrix ``L [V, V]`` (symmetric positive semi-definite)."""
        c = self.corners
        rows, cols, vals = [], [], []
        for k in range(3):
            i, j, o = k, (k + 1) % 3, (k + 2) % 3  # edge (i, j), opposite corner o
            u, v = c[:, i] - c[:, o], c[:, j] - c[:, o]
            cross = _cross_norm(u, v)
            cot = np.einsum("fd,fd->f", u, v) / cross
            rows += [self.faces[:, i], self.faces[:, j]]
            cols += [self.faces[:, j], self.faces[:, i]]
            vals += [-0.5 * cot, -0.5 * cot]
        n = self.num_vertices
        off = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        off = off.tocsr()
        return (off - sp.diags(np.asarray(off.sum(axis=1)).ravel())).tocsr()

    @functools.cached_property
    def lumped_mass(self) -> np.ndarray:
        """Diagonal of the lumped mass matrix ``[V]``: a third of the incident face areas."""
        return np.bincount(
            self.faces.reshape(-1), weights=np.repeat(self.face_areas / 3.0, 3), minlength=self.num_vertices
        )

    @property
    def mass_matrix(self) -> sp.dia_matrix:
        return sp.diags(self.lumped_mass)

    # ------------------------------------------------------------------ vertex <-> face transfers

    @functools.cached_property
    def vertex_to_face_matrix(self) -> sp.csr_matrix:
        """``T [F, V]``: 1/3 at each face's three vertices (see :meth:`vertex_to_face`)."""
        rows = np.repeat(np.arange(self.num_faces), 3)
        return sp.csr_matrix((np.full(3 * self.num_faces, 1 / 3), (rows, self.faces.reshape(-1))),
                             shape=(self.num_faces, self.num_vertices))

    @functools.cached_property
    def face_to_vertex_matrix(self) -> sp.csr_matrix:
        """``S = M^{-1} T^T A [V, F]`` with ``A = diag(|T|)`` (see :meth:`face_to_vertex`)."""
        return (sp.diags(1 / self.lumped_mass) @ self.vertex_to_face_matrix.T @ sp.diags(self.face_areas)).tocsr()

    def vertex_to_face(self, values):
        """Face averages of the P1 interpolant of vertex values: ``[V, ...] -> [F, ...]``.

        ``f_T = (1 / |T|) ∫_T u_h = (u_a + u_b + u_c) / 3`` for the face T = (a, b, c): exact
        for the piecewise-linear ``u_h``, so constants are kept and integrals too,
        ``Σ_T |T| f_T = ∫ u_h = Σ_v M_v u_v`` (M the lumped mass). Takes numpy arrays or
        tensors (on their device, without gradients).
        """
        return _apply(self.vertex_to_face_matrix, values, self.num_vertices, "vertex")

    def face_to_vertex(self, values):
        """Vertex values from face values, the mass-lumped L2 projection: ``[F, ...] -> [V, ...]``.

        ``u_v = Σ_{T ∋ v} (|T| / 3) f_T / M_v`` with ``M_v = Σ_{T ∋ v} |T| / 3``: each vertex
        gets the area-weighted mean of its faces, so constants are kept and integrals too,
        ``Σ_v M_v u_v = Σ_T |T| f_T``. It is the adjoint of :meth:`vertex_to_face` in the mass
        inner products, ``<vertex_to_face(u), f>_A = <u, face_to_vertex(f)>_M``. Takes numpy
        arrays or tensors (on their device, without gradients).
        """
        return _apply(self.face_to_vertex_matrix, values, self.num_faces, "face")


def _apply(matrix: sp.csr_matrix, values, rows: int, where: str):
    """``matrix @ values`` over the first axis of a numpy array or tensor ``[rows, ...]`` (float64
    arithmetic; a floating tensor keeps its dtype, an integer one becomes float64)."""
    if values.shape[0] != rows:
        raise GeounetError(f"expected {where} values of shape [{rows}, ...] (one per {where}), got "
                           f"{tuple(values.shape)}")
    if not isinstance(values, torch.Tensor):
        array = np.asarray(values, dtype=np.float64)
        return (matrix @ array.reshape(rows, -1)).reshape(matrix.shape[0], *array.shape[1:])
    out = _apply(matrix, values.detach().cpu().double().numpy(), rows, where)
    dtype = values.dtype if values.is_floating_point() else torch.float64  # integer labels are not rounded
    return torch.from_numpy(out).to(dtype=dtype, device=values.device)


def _cross_norm(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``|u x v|`` for rows of ``[F, D]``, D = 2 or 3."""
    if u.shape[1] == 2:
        return np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0])
    return np.linalg.norm(np.cross(u, v), axis=1)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unique [U, k], inverse [n], counts [U])`` of the rows of an int array ``[n, k]``,
    sorted lexicographically (a lexsort: faster than ``np.unique(axis=0)``, no overflow)."""
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    group = np.cumsum(new) - 1
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = group
    return ordered[new], inverse, np.bincount(group)


def _half_edge_pairs(faces: np.ndarray) -> np.ndarray:
    """Sorted vertex pairs of the half-edges ``3 f + k`` (corner k -> k+1), ``[3F, 2]``."""
    return np.sort(faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2), axis=1)


def face_areas(corners: np.ndarray) -> np.ndarray:
    """Areas of triangles given by ``corners [F, 3, D]``."""
    return 0.5 * _cross_norm(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def mesh_problems(vertices: np.ndarray, faces: np.ndarray) -> list[str]:
    """Human-readable list of what makes ``(vertices, faces)`` invalid (empty if valid).

    Checks repeated indices in a face, zero-area faces, duplicate faces and vertices used
    by no face. Non-manifold edges are valid (see :attr:`Mesh.nonmanifold_edges`).
    """
    problems = []
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    if repeated.any():
        problems.append(f"{int(repeated.sum())} faces repeat a vertex (e.g. face {int(np.argmax(repeated))})")
    areas = face_areas(vertices[faces])
    scale = max(float(np.ptp(vertices, axis=0).max()), np.finfo(float).tiny) ** 2
    flat = (areas <= 1e-14 * scale) & ~repeated
    if flat.any():
        problems.append(f"{int(flat.sum())} faces have zero area (e.g. face {int(np.argmax(flat))})")
    _, _, counts = unique_rows(np.sort(faces, axis=1))
    if (counts > 1).any():
        problems.append(f"{int((counts - 1).sum())} duplicate faces")
    unused = np.flatnonzero(np.bincount(faces.reshape(-1), minlength=len(vertices)) == 0)
    if len(unused):
        problems.append(f"{len(unused)} vertices belong to no face (e.g. vertex {int(unused[0])})")
    return problems
