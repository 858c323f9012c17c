"""Pictures of generated fields next to data, and their spectra.

Fields are drawn on their geometry: HEALPix maps in Mollweide projection (NEST order),
square grids as images, planar triangle meshes (the triangle's subdivision, planar mesh
clusters) with one colour per face or interpolated vertex values. Each function writes its
figure to ``path`` and returns it (:mod:`geounet.plot.figure`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.plot.figure import draw_healpix_map, new_figure, save_figure


def _planar_mesh(hierarchy: Hierarchy):
    mesh = getattr(hierarchy, "mesh", None)
    vertices = None if mesh is None else np.asarray(mesh.vertices)
    if vertices is None or (vertices.shape[1] == 3 and np.ptp(vertices[:, 2]) > 1e-12):
        raise GeounetError(
            f"sample pictures are drawn on HEALPix, the square and "
            f"planar meshes, not on {hierarchy.kind}"
        )
    return vertices[:, :2], np.asarray(mesh.faces)


def _on_healpix(hierarchy: Hierarchy) -> bool:
    return hierarchy.healpix_nside(hierarchy.finest_level) is not None  # drawn in Mollweide projection


def plot_field_grid(rows: dict[str, Tensor], hierarchy: Hierarchy, path: str, channel: int = 0) -> Figure:
    """One row of fields per entry ``{label: [k, N, C]}`` (channel ``channel``), on one colour scale
    (± the largest |value| of the first row)."""
    cols = max(len(fields) for fields in rows.values())
    limit = float(next(iter(rows.values()))[..., channel].abs().max())
    colours = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    fig = new_figure(3.2 * cols, (2.1 if _on_healpix(hierarchy) else 2.8) * len(rows))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (label, fields) in enumerate(rows.items()):
        for c, values in enumerate(fields[..., channel].double().numpy()):
            _draw(axes[r, c], hierarchy, values, f"{label}" if c == 0 else "", colours)
        for ax in axes[r, len(fields):]:
            ax.set_axis_off()
    return save_figure(fig, path, dpi=90)


def _draw(ax: Axes, hierarchy: Hierarchy, values: np.ndarray, title: str, colours: dict) -> None:
    if _on_healpix(hierarchy):
        draw_healpix_map(ax, values, title, **colours)
        return
    image = hierarchy.image_shape(hierarchy.finest_level)
    if image is not None:
        ax.imshow(values.reshape(image), origin="lower", **colours)
    else:
        from matplotlib.tri import Triangulation

        vertices, faces = _planar_mesh(hierarchy)
        mesh = Triangulation(vertices[:, 0], vertices[:, 1], faces)
        if len(values) == len(faces):
            ax.tripcolor(mesh, facecolors=values, **colours)
        elif len(values) == len(vertices):
            ax.tripcolor(mesh, values, shading="gouraud", **colours)
        else:
            raise GeounetError(f"{len(values)} values fit neither {len(faces)} faces nor {len(vertices)} vertices")
        ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_spectra(curves: dict[str, dict[str, list[float]]], path: str) -> Figure:
    """Mean band energy per level and, when given, C_l per degree: ``{label: {"bands": [...],
    "cl": [...]}}``, one line per label (data first, drawn black)."""
    panels = [("bands", "level (0 = coarsest)", "mean band energy ‖D_i x‖²")]
    if all("cl" in curve for curve in curves.values()):
        panels.append(("cl", "degree l", "C_l"))
    fig = new_figure(5.5 * len(panels), 4)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, xlabel, ylabel) in zip(axes[0], panels, strict=True):
        for k, (label, curve) in enumerate(curves.items()):
            values = np.asarray(curve[key])
            x = np.arange(len(values))
            if key == "cl":
                x, values = x[1:], values[1:]  # l = 0, the mean, is left out
            style = {"color": "k", "lw": 2} if k == 0 else {}
            ax.semilogy(x, values, "o-" if key == "bands" else "-", label=label, **style)
        if key == "bands":
            ax.set_xticks(range(len(values)))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    return save_figure(fig, path)
