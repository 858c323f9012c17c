"""Segmentation figures: class maps with their errors (HEALPix or meshes), per-class IoU bars.

Classes are drawn in the ``tab10`` colours (class c in colour c); error panels mark the
nodes whose predicted class differs from the true one.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402

from geounet.geometry.mesh import Mesh  # noqa: E402
from geounet.plot.meshes import draw_mesh_panel  # noqa: E402

_ERROR_COLOURS = ListedColormap(["#dddddd", "#d62728"])  # right, wrong


def _class_colours(num_classes: int) -> tuple[ListedColormap, BoundaryNorm]:
    colours = ListedColormap(plt.get_cmap("tab10").colors[:num_classes])
    return colours, BoundaryNorm(np.arange(num_classes + 1) - 0.5, num_classes)


def plot_healpix_classes(inputs: np.ndarray, truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str],
                         input_name: str, path: str) -> None:
    """Mollweide maps of one sample, HEALPix NEST ``[N]`` each: the input, the true and predicted
    class maps and the misclassified pixels."""
    import healpy

    colours, _ = _class_colours(len(classes))
    fig = plt.figure(figsize=(16, 3.4))
    panels = (
        (input_name, inputs, "viridis", None, None),
        ("true classes", truth, colours, -0.5, len(classes) - 0.5),
        ("predicted classes", predicted, colours, -0.5, len(classes) - 0.5),
        ("errors (red)", (truth != predicted).astype(float), _ERROR_COLOURS, 0, 1),
    )
    for k, (title, values, cmap, low, high) in enumerate(panels):
        healpy.mollview(np.asarray(values, dtype=float), nest=True, fig=fig.number, sub=(1, 4, k + 1), title=title,
                        cmap=cmap, min=low, max=high, cbar=k == 0)
    fig.text(0.5, 0.02, "  ".join(f"{c}: {name}" for c, name in enumerate(classes)), ha="center", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_mesh_classes(meshes: Sequence[Mesh], truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                      classes: Sequence[str], path: str) -> None:
    """One row per mesh: the true and predicted face classes and the misclassified faces."""
    colours, norm = _class_colours(len(classes))
    fig = plt.figure(figsize=(11, 3.3 * len(meshes)))
    for r, (mesh, truth, predicted) in enumerate(zip(meshes, truths, predictions, strict=True)):
        panels = (("true parts", truth, colours, norm), ("predicted parts", predicted, colours, norm),
                  ("errors (red)", (truth != predicted).astype(float), _ERROR_COLOURS, BoundaryNorm([-0.5, 0.5, 1.5],
                                                                                                    2)))
        for c, (title, values, cmap, panel_norm) in enumerate(panels):
            draw_mesh_panel(fig, (len(meshes), 3, 3 * r + c + 1), mesh, np.asarray(values, dtype=float), 1.0,
                            f"shape {r}: {title}", cmap=cmap, norm=panel_norm)
    fig.suptitle("  ".join(f"{c}: {name}" for c, name in enumerate(classes)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_class_iou(iou: Sequence[float | None], mean_iou: float, classes: Sequence[str], path: str,
                   title: str = "") -> None:
    """Bars of the test IoU per class (a class without a score has no bar) and the mean IoU as a line."""
    values = [0.0 if value is None else value for value in iou]
    colours, _ = _class_colours(len(classes))
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 3.5))
    ax.bar(range(len(classes)), values, color=colours.colors)
    ax.axhline(mean_iou, color="k", linestyle="--", linewidth=1, label=f"mean IoU {mean_iou:.3f}")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test IoU")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
