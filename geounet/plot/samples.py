"""Pictures of generated fields next to data, and their spectra.

Fields are drawn on their geometry: HEALPix maps in Mollweide projection (healpy, NEST),
square grids as images, planar triangle meshes (the triangle's subdivision, planar mesh
clusters) with one colour per face or interpolated vertex values.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.plot.fields import plt  # Agg backend


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
    return hierarchy.healpix_nside(hierarchy.finest_level) is not None  # drawn with healpy's Mollweide


def plot_field_grid(rows: dict[str, Tensor], hierarchy: Hierarchy, path: str, channel: int = 0) -> None:
    """One row of fields per entry ``{label: [k, N, C]}`` (channel ``channel``), on one colour scale
    (± the largest |value| of the first row)."""
    cols = max(len(fields) for fields in rows.values())
    limit = float(next(iter(rows.values()))[..., channel].abs().max())
    colours = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
    fig = plt.figure(figsize=(3.2 * cols, (2.1 if _on_healpix(hierarchy) else 2.8) * len(rows)))
    for r, (label, fields) in enumerate(rows.items()):
        for c, values in enumerate(fields[..., channel].double().numpy()):
            title = f"{label}" if c == 0 else ""
            _draw(fig, (len(rows), cols, r * cols + c + 1), hierarchy, values, title, colours)
    if not _on_healpix(hierarchy):  # healpy places its own axes
        fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _draw(fig, slot: tuple[int, int, int], hierarchy: Hierarchy, values: np.ndarray, title: str, colours: dict):
    if _on_healpix(hierarchy):
        import healpy

        healpy.mollview(values, nest=True, fig=fig.number, sub=slot, title=title, min=colours["vmin"],
                        max=colours["vmax"], cmap=colours["cmap"], cbar=False)
        return
    ax = fig.add_subplot(*slot)
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


def plot_spectra(curves: dict[str, dict[str, list[float]]], path: str) -> None:
    """Mean band energy per level and, when given, C_l per degree: ``{label: {"bands": [...],
    "cl": [...]}}``, one line per label (data first, drawn black)."""
    panels = [("bands", "level (0 = coarsest)", "mean band energy ‖D_i x‖²")]
    if all("cl" in curve for curve in curves.values()):
        panels.append(("cl", "degree l", "C_l"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
