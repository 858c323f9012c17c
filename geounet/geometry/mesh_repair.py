"""Cleaning raw (vertices, faces) arrays into a valid :class:`~geounet.geometry.mesh.Mesh`.

Every change is reported in a :class:`MeshRepairWarning` naming what changed; what cannot
be repaired without guessing is rejected with a ``ValueError``:

====================================  ===========================================
problem                               action
====================================  ===========================================
no faces / nothing left after repair  rejected
face index out of range               rejected
NaN / inf on a vertex used by a face  rejected (unused ones are dropped)
polygons with k > 3 corners           fan-triangulated (0, j, j+1), warned
exactly duplicated vertices           merged, warned
faces repeating a vertex / zero area  dropped, warned
duplicate faces (same vertex set)     dropped (first kept), warned
non-manifold edges (> 2 faces)        rejected
vertices used by no face              dropped, warned
disconnected parts                    kept (hierarchies respect components)
====================================  ===========================================
"""

from __future__ import annotations

import warnings

import numpy as np

from geounet.geometry.mesh import Mesh, face_areas, mesh_problems, unique_rows


class MeshRepairWarning(UserWarning):
    """A mesh was changed to make it valid; the message says how."""


def repair_mesh(vertices, faces, *, tol: float = 1e-14) -> Mesh:
    """Return a valid :class:`Mesh` from raw arrays, warning about every change.

    Args:
        vertices: ``[V, 2|3]`` coordinates.
        faces: ``[F, k]`` integer array with k >= 3, or a sequence of polygons
            (sequences of vertex indices, possibly of different lengths).
        tol: faces with area below ``tol * diameter**2`` count as degenerate.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] not in (2, 3):
        raise ValueError(f"vertices must have shape [V, 2] or [V, 3], got {vertices.shape}")
    changes: list[str] = []
    faces = _triangulate(faces, changes)
    if len(faces) == 0:
        raise ValueError("the mesh is empty (no faces)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"face indices must lie in [0, {len(vertices) - 1}], got range [{faces.min()}, {faces.max()}]")
    bad = ~np.isfinite(vertices).all(axis=1)
    if bad[faces].any():
        raise ValueError(
            f"{int(bad[np.unique(faces)].sum())} vertices used by faces have NaN or infinite "
            f"coordinates (e.g. vertex {int(np.flatnonzero(bad & np.isin(np.arange(len(bad)), faces))[0])}); "
            "fix or remove those faces"
        )
    vertices, faces = _merge_duplicate_vertices(vertices, faces, bad, changes)
    faces = _drop_degenerate_faces(vertices, faces, tol, changes)
    faces = _drop_duplicate_faces(faces, changes)
    if len(faces) == 0:
        raise ValueError("the mesh is empty after removing degenerate and duplicate faces")
    vertices, faces = _drop_unused_vertices(vertices, faces, changes)
    problems = mesh_problems(vertices, faces)
    if problems:  # only non-manifold edges can remain
        raise ValueError("cannot repair mesh: " + "; ".join(problems) + "; split the mesh at those edges")
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
            raise ValueError(f"faces must hold integer vertex indices, got dtype {group.dtype}")
        k = group.shape[1] if group.ndim == 2 else 0
        if len(group) and k < 3:
            raise ValueError(f"faces need at least 3 vertices, got faces with {k}")
        if k > 3 and len(group):
            changes.append(f"fan-triangulated {len(group)} faces with {k} corners into {k - 2} triangles each")
        for j in range(1, k - 1):
            triangles.append(group[:, [0, j, j + 1]])
    if not triangles:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(triangles).astype(np.int64)


def _merge_duplicate_vertices(vertices, faces, bad, changes):
    finite = np.flatnonzero(~bad)
    _, inverse, counts = unique_rows(vertices[finite])
    if len(counts) == len(finite):
        return vertices, faces
    changes.append(f"merged {len(finite) - len(counts)} duplicate vertices")
    remap = np.arange(len(vertices))
    remap[finite] = finite[_first_occurrence(inverse, len(counts))][inverse]
    return vertices, remap[faces]


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
    changes.append(f"dropped {len(vertices) - len(used)} vertices used by no face")
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]
