"""Reading triangle meshes from files into :class:`~geounet.geometry.mesh.Mesh`.

``load_mesh(path)`` reads

- what trimesh reads natively (OBJ, PLY, STL, OFF, GLB, ...) and archives of such files
  (``.zip``, ``.bz2``, tar archives ``.tar.gz`` / ``.tgz`` / ``.tar.bz2`` / ``.tar``), with
  ``process=False`` (trimesh changes nothing silently); an archive holding several meshes
  gives their disjoint union. Every tar archive is handed to trimesh as ``tar.gz`` (its tar
  reader detects the compression; its ``tar.bz2`` route opens the file as a single bz2);
- what meshio reads (VTK, VTU, Gmsh ``.msh``, XDMF, ...). Triangles, quads and polygons
  are collected (quads and polygons are fan-triangulated with a warning);
  lower-dimensional cells (Gmsh boundary lines, points) are ignored and volume cells are
  rejected.

Any failure of the reader, including the ``SystemExit`` that meshio raises on some broken
files, becomes a ``ValueError`` naming the file and the reason (meshio prints its reasons;
they are captured, and on success re-issued as a :class:`MeshReadWarning`). The raw arrays then go through
:func:`~geounet.geometry.mesh_repair.repair_mesh`, which welds vertices closer than
``weld_tol`` times the bounding-box diagonal and warns about every change, or raises on
what it cannot repair; ``repair=False`` demands a valid file.

STL stores every triangle with its own three vertices, so exactly coincident STL
vertices are welded before repair (that is the format, not a defect, and is not warned).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from geounet.errors import GeounetError, MissingFileError
from geounet.geometry.mesh import Mesh, unique_rows
from geounet.geometry.mesh_repair import repair_mesh

# Archive suffix -> the file_type trimesh's compressed loader opens it with.
ARCHIVES = {"zip": "zip", "tar.gz": "tar.gz", "tgz": "tar.gz", "tar.bz2": "tar.gz", "tar": "tar.gz", "bz2": "bz2"}
TRIMESH_NATIVE = {"obj", "ply", "stl", "off", "glb", "gltf", "3mf", "dae"}
_SURFACE_CELLS = {"triangle", "quad", "polygon"}
_IGNORED_CELLS = {"vertex", "line", "line3"}
#: voxel formats trimesh reads as a VoxelGrid: occupancy on a grid, not a surface
VOXEL_FORMATS = {"binvox"}


def load_mesh(path: str | Path, repair: bool = True, weld_tol: float = 1e-9) -> Mesh:
    """Read a triangle mesh file (see the module docstring).

    Args:
        path: the file; its suffix picks the reader.
        repair: clean the arrays with :func:`~geounet.geometry.mesh_repair.repair_mesh`.
        weld_tol: welding distance as a fraction of the bounding-box diagonal (repair only).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no mesh file at {path}")
    file_type = mesh_file_type(path)
    if file_type in VOXEL_FORMATS:
        raise GeounetError(f"{path} is a voxel grid (.{file_type}), not a surface mesh; turn it into one first, e.g. "
                           f"trimesh.load('{path.name}').as_boxes().export('{path.stem}.stl') (or its marching_cubes)")
    vertices, faces = _read_trimesh(path, file_type) if _use_trimesh(file_type) else _read_meshio(path)
    if file_type == "stl":
        vertices, faces = _weld_exact(vertices, faces)
    try:
        return repair_mesh(vertices, faces, weld_tol=weld_tol) if repair else Mesh(vertices, faces)
    except ValueError as error:
        raise GeounetError(f"{path}: {error}") from error


def mesh_file_type(path: Path) -> str:
    """The lower-case suffix without its dot; two-part archive suffixes (``tar.gz``) whole."""
    name = path.name.lower()
    for archive in ARCHIVES:
        if name.endswith("." + archive):
            return archive
    return path.suffix.lower().lstrip(".")


class MeshReadWarning(UserWarning):
    """What a mesh reader printed while reading a file it could read."""


def _use_trimesh(file_type: str) -> bool:
    if file_type in ARCHIVES or file_type in TRIMESH_NATIVE:
        return True
    try:
        import meshio
    except ImportError:  # trimesh names the formats it lacks
        return True
    return "." + file_type not in meshio.extension_to_filetypes


def _read_trimesh(path: Path, file_type: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    try:
        loaded = trimesh.load(path, file_type=ARCHIVES.get(file_type, file_type), process=False)
    except (Exception, SystemExit) as error:
        raise GeounetError(f"trimesh cannot read {path}: {type(error).__name__}: {error}") from error
    if isinstance(loaded, trimesh.Scene):
        meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
        if not meshes:
            raise GeounetError(
                f"{path} holds no triangle mesh that trimesh can read "
                f"({len(loaded.geometry)} geometries)"
            )
        loaded = trimesh.util.concatenate(meshes)
    if not isinstance(loaded, trimesh.Trimesh):
        raise GeounetError(f"{path} does not contain a triangle mesh (trimesh read a {type(loaded).__name__})")
    return np.asarray(loaded.vertices, dtype=np.float64), np.asarray(loaded.faces, dtype=np.int64)


def _read_meshio(path: Path) -> tuple[np.ndarray, list]:
    import meshio

    printed = io.StringIO()  # meshio prints its warnings and the reasons of a failure
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            data = meshio.read(path)
    except (Exception, SystemExit) as error:  # meshio calls sys.exit on some broken files
        reason = " ".join(printed.getvalue().split())
        if not isinstance(error, SystemExit):
            reason = f"{type(error).__name__}: {error}" + (f" ({reason})" if reason else "")
        raise GeounetError(f"meshio cannot read {path}: {reason}") from error
    if printed.getvalue().strip():
        warnings.warn(f"meshio, reading {path}: {' '.join(printed.getvalue().split())}", MeshReadWarning, stacklevel=3)
    faces: list = []
    others = set()
    for block in data.cells:
        if block.type in _SURFACE_CELLS:
            faces.extend(np.asarray(block.data, dtype=np.int64))
        elif block.type not in _IGNORED_CELLS:
            others.add(block.type)
    if others:
        raise GeounetError(f"{path} has cells of type {sorted(others)}; only surface meshes (triangles, quads) load")
    if not faces:
        raise GeounetError(f"{path} has no triangle or quad cells")
    return np.asarray(data.points, dtype=np.float64), faces


def _weld_exact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge exactly coincident vertices (STL's per-triangle vertex copies)."""
    unique, inverse, _ = unique_rows(vertices)
    return unique, inverse[faces]
