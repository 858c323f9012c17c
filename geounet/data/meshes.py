"""Reading triangle meshes from files into :class:`~geounet.geometry.mesh.Mesh`.

``load_mesh(path)`` reads what trimesh reads (OBJ, PLY, STL, OFF, GLB) with
``process=False`` (trimesh changes nothing silently), and what meshio reads (VTK, VTU,
Gmsh ``.msh``, XDMF, ...) as a fallback. Triangles, quads and polygons are collected
(quads and polygons are fan-triangulated with a warning); lower-dimensional cells
(Gmsh boundary lines, points) are ignored and volume cells are rejected. The raw arrays
then go through :func:`~geounet.geometry.mesh_repair.repair_mesh`, which warns about
every change or raises on what it cannot repair; ``repair=False`` demands a valid file.

STL stores every triangle with its own three vertices, so exactly coincident STL
vertices are welded before repair (that is the format, not a defect, and is not warned).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geounet.geometry.mesh import Mesh, unique_rows
from geounet.geometry.mesh_repair import repair_mesh

TRIMESH_SUFFIXES = {".obj", ".ply", ".stl", ".off", ".glb", ".gltf"}
_SURFACE_CELLS = {"triangle", "quad", "polygon"}
_IGNORED_CELLS = {"vertex", "line", "line3"}


def load_mesh(path: str | Path, repair: bool = True) -> Mesh:
    """Read a triangle mesh file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no mesh file at {path}")
    suffix = path.suffix.lower()
    vertices, faces = _read_trimesh(path) if suffix in TRIMESH_SUFFIXES else _read_meshio(path)
    if suffix == ".stl":
        vertices, faces = _weld(vertices, faces)
    return repair_mesh(vertices, faces) if repair else Mesh(vertices, faces)


def _read_trimesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    loaded = trimesh.load(path, force="mesh", process=False)
    if not isinstance(loaded, trimesh.Trimesh):
        raise ValueError(f"{path} does not contain a triangle mesh (trimesh read a {type(loaded).__name__})")
    return np.asarray(loaded.vertices, dtype=np.float64), np.asarray(loaded.faces, dtype=np.int64)


def _read_meshio(path: Path) -> tuple[np.ndarray, list]:
    import meshio

    try:
        data = meshio.read(path)
    except meshio.ReadError as error:
        raise ValueError(f"cannot read {path} with trimesh or meshio: {error}") from error
    faces: list = []
    others = set()
    for block in data.cells:
        if block.type in _SURFACE_CELLS:
            faces.extend(np.asarray(block.data, dtype=np.int64))
        elif block.type not in _IGNORED_CELLS:
            others.add(block.type)
    if others:
        raise ValueError(f"{path} has cells of type {sorted(others)}; only surface meshes (triangles, quads) load")
    if not faces:
        raise ValueError(f"{path} has no triangle or quad cells")
    return np.asarray(data.points, dtype=np.float64), faces


def _weld(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge exactly coincident vertices (STL's per-triangle vertex copies)."""
    unique, inverse, _ = unique_rows(vertices)
    return unique, inverse[faces]
