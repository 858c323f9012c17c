"""Rendered meshes: input, target, prediction and error of a signal on several meshes.

Planar meshes are drawn with ``tripcolor``; surfaces in R^3 as face collections seen
from one fixed direction, without the faces that point away from the viewer (closed
surfaces with outward normals). Signals may be face values ``[F]`` or vertex
values ``[V]`` (vertex values are drawn by face averages on surfaces).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from torch import Tensor

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.plot.figure import new_figure, save_figure

#: (elevation, azimuth) in degrees of the camera for surfaces
VIEW = (25.0, -60.0)


def _face_values(mesh: Mesh, values: np.ndarray) -> np.ndarray:
    if len(values) == mesh.num_faces:
        return values
    if len(values) == mesh.num_vertices:
        return values[mesh.faces].mean(axis=1)
    raise GeounetError(
        f"a field on this mesh needs {mesh.num_faces} face or {mesh.num_vertices} vertex values, got {len(values)}"
    )


def draw_mesh_panel(fig, slot, mesh: Mesh, values: np.ndarray, limit: float, title: str, cmap: str = "RdBu_r",
          norm: Normalize | None = None):
    """One panel of ``values`` on ``mesh``, coloured by ``cmap`` over [-limit, limit] unless ``norm`` is given."""
    norm = norm or Normalize(-limit, limit)
    if mesh.dim == 2:
        ax = fig.add_subplot(*slot)
        triangulation = Triangulation(mesh.vertices[:, 0], mesh.vertices[:, 1], mesh.faces)
        if len(values) == mesh.num_vertices:
            shown = ax.tripcolor(triangulation, values, shading="gouraud", cmap=cmap, norm=norm)
        else:
            shown = ax.tripcolor(triangulation, facecolors=_face_values(mesh, values), cmap=cmap, norm=norm)
        ax.set_aspect("equal")
    else:
        ax = fig.add_subplot(*slot, projection="3d")
        elevation, azimuth = np.radians(VIEW)
        towards_viewer = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                                   np.sin(elevation)])
        front = mesh.face_normals @ towards_viewer > 0  # [F]
        colours = matplotlib.colormaps.get_cmap(cmap)(norm(_face_values(mesh, values)[front]))
        ax.add_collection3d(Poly3DCollection(mesh.vertices[mesh.faces[front]], facecolors=colours, linewidths=0))
        low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
        centre, radius = (low + high) / 2, (high - low).max() / 2
        for set_lim, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre, strict=True):
            set_lim(c - radius, c + radius)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(*VIEW)
        shown = ScalarMappable(norm=norm, cmap=cmap)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, fraction=0.046)


def plot_mesh_predictions(
    meshes: Sequence[Mesh],
    names: Sequence[str],
    fields: Sequence[tuple[Tensor, Tensor, Tensor]],
    labels: tuple[str, str],
    path: str,
) -> Figure:
    """One row per mesh: input, target, prediction (same colour scale) and error; writes the
    figure to ``path`` and returns it.

    Args:
        fields: per mesh ``(input, target, prediction)``, each ``[F]`` or ``[V]``.
        labels: names of the input and target fields (e.g. ``("log k", "u")``).
    """
    if not len(meshes) == len(names) == len(fields):
        raise GeounetError(
            f"need one name and one field triple per mesh, got "
            f"{len(meshes)}, {len(names)}, {len(fields)}"
        )
    rows = len(meshes)
    fig = new_figure(14, 3.3 * rows)
    for r, (mesh, name, triple) in enumerate(zip(meshes, names, fields, strict=True)):
        given, target, predicted = (t.detach().cpu().double().numpy() for t in triple)
        error = predicted - target
        limit = float(np.abs(target).max()) or 1.0
        panels = (
            (f"{name}: {labels[0]}", given, float(np.abs(given).max()) or 1.0),
            (f"{labels[1]} target", target, limit),
            (f"{labels[1]} prediction", predicted, limit),
            ("error", error, float(np.abs(error).max()) or 1.0),
        )
        for c, (title, values, lim) in enumerate(panels):
            draw_mesh_panel(fig, (rows, 4, 4 * r + c + 1), mesh, values, lim, title)
    return save_figure(fig, path)
