"""Segmentation figures: class maps with their errors (HEALPix or meshes), per-class IoU bars.

Classes are drawn in the ``tab10`` colours (class c in colour c); error panels mark the
nodes whose predicted class differs from the true one. Each function writes its figure to
``path`` and returns it (:mod:`geounet.plot.figure`).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from geounet.geometry.mesh import Mesh
from geounet.plot.figure import draw_healpix_map, new_figure, save_figure
from geounet.plot.meshes import draw_mesh_panel

_ERROR_COLOURS = ListedColormap(["#dddddd", "#d62728"])  # right, wrong


def _class_colours(num_classes: int) -> tuple[ListedColormap, BoundaryNorm]:
    colours = ListedColormap(matplotlib.colormaps["tab10"].colors[:num_classes])
    return colours, BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)


def plot_healpix_classes(inputs: np.ndarray, truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str],
                         input_name: str, path: str) -> Figure:
    """Mollweide maps of one sample, HEALPix NEST ``[N]`` each: the input, the true and predicted
    class maps and the misclassified pixels."""
    colours, _ = _class_colours(len(classes))
    fig = new_figure(16, 3.4)
    axes = fig.subplots(1, 4)
    panels = (
        (input_name, inputs, "viridis", None, None),
        ("true classes", truth, colours, -0.5, len(classes) - 0.5),
        ("predicted classes", predicted, colours, -0.5, len(classes) - 0.5),
        ("errors (red)", (truth != predicted).astype(float), _ERROR_COLOURS, 0, 1),
    )
    for k, (ax, (title, values, cmap, low, high)) in enumerate(zip(axes, panels, strict=True)):
        shown = draw_healpix_map(ax, np.asarray(values, dtype=float), title, cmap, low, high)
        if k == 0:
            fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.05, pad=0.04)
    fig.text(0.5, 0.02, "  ".join(f"{c}: {name}" for c, name in enumerate(classes)), ha="center", fontsize=9)
    return save_figure(fig, path, dpi=90, tight=False)


def plot_mesh_classes(meshes: Sequence[Mesh], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                      classes: Sequence[str], path: str) -> Figure:
    """One row per mesh: the true and predicted face classes and the misclassified faces."""
    colours, norm = _class_colours(len(classes))
    fig = new_figure(11, 3.3 * len(meshes))
    for r, (mesh, truth, predicted) in enumerate(zip(meshes, truths, predictions, strict=True)):
        panels = (("true parts", truth, colours, norm), ("predicted parts", predicted, colours, norm),
                  ("errors (red)", (truth != predicted).astype(float), _ERROR_COLOURS, BoundaryNorm([-0.5, 0.5, 1.5],
                                                                                                    2)))
        for c, (title, values, cmap, panel_norm) in enumerate(panels):
            draw_mesh_panel(fig, (len(meshes), 3, 3 * r + c + 1), mesh, np.asarray(values, dtype=float), 1.0,
                            f"shape {r}: {title}", cmap=cmap, norm=panel_norm)
    fig.suptitle("  ".join(f"{c}: {name}" for c, name in enumerate(classes)), fontsize=9)
    return save_figure(fig, path)


def plot_class_iou(iou: Sequence[float | None], mean_iou: float, classes: Sequence[str], path: str,
                   title: str = "") -> Figure:
    """Bars of the test IoU per class (a class without a score has no bar) and the mean IoU as a line."""
    values = [0.0 if value is None else value for value in iou]
    colours, _ = _class_colours(len(classes))
    fig = new_figure(1.2 * len(classes) + 2, 3.5)
    ax = fig.subplots()
    ax.bar(range(len(classes)), values, color=colours.colors)
    ax.axhline(mean_iou, color="k", linestyle="--", linewidth=1, label=f"mean IoU {mean_iou:.3f}")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test IoU")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
