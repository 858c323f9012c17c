"""Cleaning raw (vertices, faces) arrays into a valid :class:`~geounet.geometry.mesh.Mesh`,
and splitting a mesh at its non-manifold edges.

Every change is reported in a :class:`MeshRepairWarning` naming what changed; what cannot
be repaired without guessing is rejected with a ``ValueError``:

====================================  ===========================================
problem                               action
====================================  ===========================================
no faces / nothing left after repair  rejected
face index out of range               rejected
NaN / inf on a vertex used by a face  rejected (unused ones are dropped)
polygons with k > 3 corners           fan-triangulated (0, j, j+1), warned
vertices closer than weld_tol · d     merged (d the bounding-box diagonal), warned with the count
faces repeating a vertex / zero area  dropped, warned
duplicate faces (same vertex set)     dropped (first kept), warned
non-manifold edges (> 2 faces)        kept (:func:`split_nonmanifold_edges` cuts them)
vertices used by no face              dropped, warned
disconnected parts                    kept (hierarchies respect components)
====================================  ===========================================

Welding is relative to the mesh size, so a CAD export whose copies of a vertex differ in
the last bits (~1e-16) loads watertight at any scale; ``weld_tol = 0`` merges only exact
copies.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh, face_areas, unique_rows


class MeshRepairWarning(UserWarning):
    """A mesh was changed to make it valid; the message says how."""


def repair_mesh(vertices, faces, *, tol: float = 1e-14, weld_tol: float = 1e-9) -> Mesh:
    """Return a valid :class:`Mesh` from raw arrays, warning about every change.

    Args:
        vertices: ``[V, 2|3]`` coordinates.
        faces: ``[F, k]`` integer array with k >= 3, or a sequence of polygons
            (sequences of vertex indices, possibly of different lengths).
        tol: faces with area below ``tol * diameter**2`` count as degenerate.
        weld_tol: vertices closer than ``weld_tol`` times the bounding-box diagonal of the
            used vertices are merged (transitively); 0 merges exact copies only.
    """
    if not weld_tol >= 0:
        raise GeounetError(f"weld_tol must be a non-negative fraction of the bounding-box diagonal, got {weld_tol}")
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] not in (2, 3):
        raise GeounetError(f"vertices must have shape [V, 2] or [V, 3], got {vertices.shape}")
    changes: list[str] = []
    faces = _triangulate(faces, changes)
    if len(faces) == 0:
        raise GeounetError("the mesh is empty (no faces)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise GeounetError(
            f"face indices must lie in [0, {len(vertices) - 1}], got "
            f"range [{faces.min()}, {faces.max()}]"
        )
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad[faces].any():
        raise GeounetError(
            f"{int(bad[np.unique(faces)].sum())} vertices used by faces have NaN or infinite "
            f"coordinates (e.g. vertex {int(np.flatnonzero(bad & np.isin(np.arange(len(bad)), faces))[0])}); "
            "fix or remove those faces"
        )
    faces = weld_vertices(vertices, faces, weld_tol, changes)
    faces = _drop_degenerate_faces(vertices, faces, tol, changes)
    faces = _drop_duplicate_faces(faces, changes)
    if len(faces) == 0:
        raise GeounetError("the mesh is empty after removing degenerate and duplicate faces")
    vertices, faces = _drop_unused_vertices(vertices, faces, changes)
    if changes:
        warnings.warn("repaired mesh: " + "; ".join(changes), MeshRepairWarning, stacklevel=2)
    return Mesh(vertices, faces)


def _triangulate(faces, changes: list[str]) -> np.ndarray:
    """``[F', 3]`` triangles, fan-triangulating polygons."""
    if isinstance(faces, np.ndarray) and faces.ndim == 2:
        polygons = [faces]
    else:
        polygons = [np.asarray(p) for p in faces]
        if len(polygons) == 0:
            return np.zeros((0, 3), dtype=np.int64)
        lengths = np.array([len(p) for p in polygons])
        polygons = [np.stack([p for p in polygons if len(p) == k]) for k in np.unique(lengths)]
    triangles = []
    for group in polygons:
        if group.size and not np.issubdtype(group.dtype, np.integer):
            raise GeounetError(f"faces must hold integer vertex indices, got dtype {group.dtype}")
        k = group.shape[1] if group.ndim == 2 else 0
        if len(group) and k < 3:
            raise GeounetError(f"faces need at least 3 vertices, got faces with {k}")
        if k > 3 and len(group):
            changes.append(f"fan-triangulated {len(group)} faces with {k} corners into {k - 2} triangles each")
        for j in range(1, k - 1):
            triangles.append(group[:, [0, j, j + 1]])
    if not triangles:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(triangles).astype(np.int64)


def weld_vertices(vertices: np.ndarray, faces: np.ndarray, weld_tol: float, changes: list[str]) -> np.ndarray:
    """Faces ``[F, 3]`` with every used vertex replaced by the first of its cluster: the
    vertices linked by chains of distances ``<= weld_tol * d`` (d the diagonal of the used
    vertices' bounding box). The merge count is appended to ``changes``."""
    used = np.unique(faces)
    points = vertices[used]  # [U, D]
    radius = weld_tol * float(np.linalg.norm(np.ptp(points, axis=0)))
    if radius > 0:
        pairs = cKDTree(points).query_pairs(radius, output_type="ndarray")  # [P, 2]
        graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(used), len(used)))
        num_groups, group = sp.csgraph.connected_components(graph, directed=False)
        how = f"closer than {weld_tol:g} x the bounding-box diagonal ({radius:.3g})"
    else:
        _, group, counts = unique_rows(points)
        num_groups, how = len(counts), "at exactly the same position"
    if num_groups == len(used):
        return faces
    changes.append(f"merged {len(used) - num_groups} vertices into others {how}")
    remap = np.arange(len(vertices))
    remap[used] = used[_first_occurrence(group, num_groups)][group]
    return remap[faces]


def _drop_degenerate_faces(vertices, faces, tol, changes):
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    used = vertices[np.unique(faces)]
    scale = max(float(np.ptp(used, axis=0).max()), np.finfo(float).tiny) ** 2
    degenerate = repeated | (face_areas(vertices[faces]) <= tol * scale)
    if degenerate.any():
        changes.append(f"dropped {int(degenerate.sum())} degenerate faces (repeated vertex or zero area)")
    return faces[~degenerate]


def _drop_duplicate_faces(faces, changes):
    _, inverse, counts = unique_rows(np.sort(faces, axis=1))
    if len(counts) == len(faces):
        return faces
    changes.append(f"dropped {len(faces) - len(counts)} duplicate faces")
    return faces[np.sort(_first_occurrence(inverse, len(counts)))]


def _first_occurrence(inverse: np.ndarray, num_groups: int) -> np.ndarray:
    """Index of the first member of each group ``[num_groups]``."""
    first = np.full(num_groups, len(inverse))
    np.minimum.at(first, inverse, np.arange(len(inverse)))
    return first


def _drop_unused_vertices(vertices, faces, changes):
    used = np.unique(faces)
    if len(used) == len(vertices):
        return vertices, faces
    changes.append(f"dropped {len(vertices) - len(used)} vertices used by no face (merged ones included)")
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


def split_nonmanifold_edges(mesh: Mesh) -> tuple[Mesh, np.ndarray]:
    """Cut ``mesh`` along its non-manifold edges: ``(manifold mesh, origin [V'])``.

    Around a vertex ``v`` on a non-manifold edge, the faces at ``v`` are grouped into
    *sheets*: two faces are in one sheet when a chain of faces at ``v`` links them, each
    step across a manifold edge (one with exactly two faces) through ``v``. Every sheet
    gets its own copy of ``v``; other vertices are kept. The first sheet (in face order)
    keeps index ``v``, the others are appended, and ``origin[i]`` is the original vertex
    of vertex ``i`` (so ``field[origin]`` carries vertex data over).

    The result is edge-manifold: a face at ``v`` has two edges through ``v``, so in the
    graph of sheet links every face has degree <= 2 and a face on a non-manifold edge has
    degree <= 1 (that edge is no link); a path has two ends, so at most two faces of an
    old non-manifold edge share a sheet at ``v``. Three fins on one edge become three
    fins with boundaries; two closed surfaces touching along an edge become two closed
    surfaces.
    """
    if mesh.is_manifold:
        return mesh, np.arange(mesh.num_vertices)
    faces = mesh.faces
    corner_vertex = faces.reshape(-1)  # [3F]: corner 3 f + k is vertex faces[f, k]
    # Half-edge 3 f + k runs from corner 3 f + k to corner 3 f + (k + 1) % 3.
    half_edge = np.arange(3 * mesh.num_faces)
    start, end = half_edge, half_edge - half_edge % 3 + (half_edge % 3 + 1) % 3
    manifold = mesh.edge_face_counts[mesh.edge_of_half_edge] == 2
    order = np.argsort(mesh.edge_of_half_edge[manifold], kind="stable")
    first, second = half_edge[manifold][order[0::2]], half_edge[manifold][order[1::2]]  # the edge's 2 halves
    # Link the corners of the two faces at each of the edge's two vertices.
    same_direction = corner_vertex[start[first]] == corner_vertex[start[second]]
    links = np.concatenate([
        np.stack([start[first], np.where(same_direction, start[second], end[second])], axis=1),
        np.stack([end[first], np.where(same_direction, end[second], start[second])], axis=1),
    ])  # [2 * manifold edges, 2] corner pairs at one vertex
    n = len(corner_vertex)
    graph = sp.coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    sheet = sp.csgraph.connected_components(graph, directed=False)[1]  # [3F]
    on_cut = np.zeros(mesh.num_vertices, dtype=bool)
    on_cut[mesh.nonmanifold_edges.reshape(-1)] = True
    sheet = np.where(on_cut[corner_vertex], sheet, -1)  # vertices off the cut keep one copy
    keys, inverse, _ = unique_rows(np.stack([corner_vertex, sheet], axis=1))  # sorted by vertex
    copy = np.zeros(len(keys), dtype=bool)
    copy[1:] = keys[1:, 0] == keys[:-1, 0]  # every sheet of a vertex after its first
    new_index = keys[:, 0].copy()
    new_index[copy] = mesh.num_vertices + np.arange(int(copy.sum()))
    origin = np.concatenate([np.arange(mesh.num_vertices), keys[copy, 0]])
    return Mesh(mesh.vertices[origin], new_index[inverse].reshape(-1, 3)), origin
