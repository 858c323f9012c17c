"""Mesh files with named fields on them: a user's data in, predictions out.

:func:`read_mesh_fields` reads a triangle mesh with meshio (``.vtu``, ``.vtk``, ``.ply``,
``.obj``, ``.off``, ``.msh``, ``.xdmf``, ...) and the named arrays on it:

- ``at="vertex"``: the file's ``point_data`` (one row per vertex);
- ``at="face"``: the file's ``cell_data`` of its triangle blocks (one row per triangle,
  in the file's order);
- arrays the file does not hold come from ``<file stem>.npz`` beside it (formats without
  data, e.g. ``.obj``): one row per vertex or face, in the file's order.

The mesh is taken exactly as stored (no welding or dropping of vertices, which would
reorder the data); an invalid mesh is an error naming the file. Fields are float64
``[N, k]`` (a 1-D array is one channel). :func:`write_mesh_fields` writes a mesh and its
fields with meshio (``.vtu`` for ParaView).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from geounet.data.cache import NPZ_ERRORS, error_reason
from geounet.errors import GeounetError, MissingFileError
from geounet.geometry.mesh import Mesh

PLACES = ("vertex", "face")
_IGNORED_CELLS = {"vertex", "line", "line3"}


def mesh_files(folder: str | Path) -> list[Path]:
    """The mesh files of ``folder`` (every file meshio reads, sorted by name; ``.npz`` side files excluded)."""
    import meshio

    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"no folder of mesh files at {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in meshio.extension_to_filetypes)
    if not files:
        raise GeounetError(f"{folder} holds no mesh file that meshio reads (.vtu, .ply, .obj, .vtk, .msh, ...)")
    return files


def read_mesh_fields(path: str | Path, names: Sequence[str], at: str) -> tuple[Mesh, dict[str, np.ndarray]]:
    """``(mesh, {name: [N, k] float64})`` of the mesh file ``path`` (see the module docstring)."""
    import meshio

    if at not in PLACES:
        raise GeounetError(f"at must be 'vertex' (point data) or 'face' (cell data), got {at!r}")
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no mesh file at {path}")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            data = meshio.read(path)
    except (Exception, SystemExit) as error:  # meshio calls sys.exit on some broken files
        raise GeounetError(f"meshio cannot read {path}: {type(error).__name__}: {error} "
                           f"{' '.join(printed.getvalue().split())}".strip()) from error
    blocks = [i for i, block in enumerate(data.cells) if block.type not in _IGNORED_CELLS]
    others = sorted({data.cells[i].type for i in blocks} - {"triangle"})
    if others:
        raise GeounetError(f"{path} has {others} cells; fields are read on triangle meshes only (triangulate the "
                           "mesh, e.g. with meshio or ParaView, and store its fields on the triangles)")
    if not blocks:
        raise GeounetError(f"{path} has no triangle cells")
    try:
        mesh = Mesh(np.asarray(data.points, dtype=np.float64),
                    np.concatenate([np.asarray(data.cells[i].data, dtype=np.int64) for i in blocks]))
    except GeounetError as error:
        raise GeounetError(f"{path}: {error}") from error
    rows = mesh.num_vertices if at == "vertex" else mesh.num_faces
    stored = dict(data.point_data) if at == "vertex" else {
        name: np.concatenate([np.asarray(arrays[i]) for i in blocks]) for name, arrays in data.cell_data.items()}
    side = path.with_suffix(".npz")
    if any(name not in stored for name in names) and side.is_file():
        try:
            with np.load(side, allow_pickle=False) as archive:
                stored.update({name: archive[name] for name in archive.files if name not in stored})
        except NPZ_ERRORS as error:
            raise GeounetError(f"{side} is damaged and cannot be read ({error_reason(error)}); write it again "
                               "(np.savez)") from error
    fields = {}
    for name in names:
        if name not in stored:
            raise GeounetError(f"{path} has no {at} field {name!r} (it has {sorted(stored) or 'none'}"
                               f"{'' if side.is_file() else f', and there is no {side.name}'}); "
                               f"{_other_place(at)}")
        values = np.asarray(stored[name], dtype=np.float64)
        values = values[:, None] if values.ndim == 1 else values.reshape(len(values), -1)
        if len(values) != rows:
            raise GeounetError(f"{path}: field {name!r} has {len(values)} rows, not one per {at} ({rows}); "
                               f"{_other_place(at)}")
        if not np.isfinite(values).all():
            raise GeounetError(f"{path}: field {name!r} holds NaN or Inf (first at row "
                               f"{int(np.argwhere(~np.isfinite(values))[0, 0])}); clean the file")
        fields[name] = values
    return mesh, fields


def write_mesh_fields(path: str | Path, mesh: Mesh, fields: Mapping[str, np.ndarray], at: str) -> Path:
    """Write ``mesh`` with ``fields`` (``[N]`` or ``[N, k]``, one row per vertex or face) in
    the format of ``path``'s suffix (meshio; 2-D meshes get z = 0)."""
    import meshio

    if at not in PLACES:
        raise GeounetError(f"at must be 'vertex' or 'face', got {at!r}")
    path = Path(path)
    points = mesh.vertices if mesh.dim == 3 else np.pad(mesh.vertices, ((0, 0), (0, 1)))
    arrays = {name: np.asarray(values) for name, values in fields.items()}
    point_data = arrays if at == "vertex" else {}
    cell_data = {name: [values] for name, values in arrays.items()} if at == "face" else {}
    meshio.write(path, meshio.Mesh(points, [("triangle", mesh.faces)], point_data=point_data, cell_data=cell_data))
    return path


def _other_place(at: str) -> str:
    other = "face" if at == "vertex" else "vertex"
    return f"if it holds {other} values, read it with at={other!r} (task.at in a config)"
