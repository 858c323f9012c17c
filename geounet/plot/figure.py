"""Figures that leave the caller's matplotlib alone.

Every figure geounet draws is a :class:`matplotlib.figure.Figure` made without pyplot: it is not
registered with pyplot's figure manager, opens no window, does not switch the backend that a
notebook or an application chose, and is rendered by Agg when it is written. The plotting
functions return it, so a notebook can show it (``display(fig)``) or draw on it further.

HEALPix maps are projected onto a Mollweide image by healpy's projector and shown as that image on
ordinary axes, so maps, curves and meshes share one figure. The projection uses the geographic
convention: east to the right, north up, longitude 0 at the centre.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

#: width in pixels of a projected HEALPix map (its height is half)
MOLLWEIDE_WIDTH = 800


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches, outside pyplot (see the module docstring)."""
    return Figure(figsize=(width, height))


def save_figure(fig: Figure, path: str | Path, dpi: int = 100, tight: bool = True) -> Figure:
    """Write ``fig`` to ``path`` (the format from its suffix), laid out tightly unless ``tight`` is
    false (a figure with a caption below its panels, which the tight layout would cover); returns
    ``fig``."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return fig


def mollweide_image(values: np.ndarray, nest: bool = True, width: int = MOLLWEIDE_WIDTH) -> np.ndarray:
    """The HEALPix map ``values`` ``[12 nside²]`` (NEST order unless ``nest`` is false) sampled on a
    ``[width / 2, width]`` Mollweide grid, row 0 at the south pole, east to the right; points
    outside the ellipse are masked."""
    import healpy
    from healpy.projector import MollweideProj

    nside = healpy.npix2nside(len(values))
    projector = MollweideProj(xsize=width, flipconv="geo")
    image = projector.projmap(np.asarray(values, dtype=float),
                              lambda x, y, z: healpy.vec2pix(nside, x, y, z, nest=nest))
    return np.ma.masked_invalid(image)


def draw_healpix_map(ax: Axes, values: np.ndarray, title: str = "", cmap: str | Colormap = "viridis",
                     vmin: float | None = None, vmax: float | None = None, norm: Normalize | None = None,
                     nest: bool = True) -> AxesImage:
    """``values`` (a HEALPix map, NEST order unless ``nest`` is false) in Mollweide projection on
    ``ax``, coloured by ``cmap`` over ``[vmin, vmax]`` (or ``norm``); returns the image for a
    colour bar."""
    shown = ax.imshow(mollweide_image(values, nest), origin="lower", extent=(-2.0, 2.0, -1.0, 1.0), cmap=cmap,
                      interpolation="nearest", **({"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
    return shown
