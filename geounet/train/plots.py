"""Figures written by experiments (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402


def plot_square_predictions(
    inputs: Tensor, targets: Tensor, predictions: Tensor, path: str, title: str = "", rows: int = 2
) -> None:
    """Rows of (input, target, prediction, error) images, ``[S, H, W]`` each."""
    rows = min(rows, len(inputs))
    fig, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for r in range(rows):
        limit = float(targets[r].abs().max())
        error = predictions[r] - targets[r]
        panels = (
            ("input", inputs[r], "RdBu_r", limit),
            ("target", targets[r], "RdBu_r", limit),
            ("prediction", predictions[r], "RdBu_r", limit),
            ("error", error, "RdBu_r", float(error.abs().max())),
        )
        for ax, (name, image, cmap, lim) in zip(axes[r], panels, strict=True):
            shown = ax.imshow(image.numpy(), origin="lower", cmap=cmap, vmin=-lim, vmax=lim)
            ax.set_title(f"{name} {title}".strip() if r == 0 else name)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_loss_curves(histories: dict[str, list[dict[str, float]]], path: str) -> None:
    """Training loss against step, one line per run."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, history in histories.items():
        ax.semilogy([row["step"] for row in history], [row["loss"] for row in history], label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (weighted MSE)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_healpix_predictions(
    inputs: Tensor, targets: Tensor, predictions: Tensor, variables: list[str], path: str
) -> None:
    """Mollweide maps of (input, target, prediction, error) per variable for the first sample.

    Maps are ``[S, N, C]`` in HEALPix NEST order.
    """
    import healpy

    fig = plt.figure(figsize=(16, 3.2 * len(variables)))
    for c, name in enumerate(variables):
        target = targets[0, :, c].double().numpy()
        error = (predictions[0, :, c] - targets[0, :, c]).double().numpy()
        low, high = float(target.min()), float(target.max())
        panels = (
            ("input", inputs[0, :, c].double().numpy(), low, high, "viridis"),
            ("target", target, low, high, "viridis"),
            ("prediction", predictions[0, :, c].double().numpy(), low, high, "viridis"),
            ("error", error, -abs(error).max(), abs(error).max(), "RdBu_r"),
        )
        for k, (label, values, vmin, vmax, cmap) in enumerate(panels):
            healpy.mollview(
                values,
                nest=True,
                fig=fig.number,
                sub=(len(variables), 4, 4 * c + k + 1),
                title=f"{name}: {label}",
                min=vmin,
                max=vmax,
                cmap=cmap,
                cbar=True,
            )
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_rollout_curves(curves: dict[str, tuple[list[float], list[float]]], ylabel: str, path: str) -> None:
    """Error against forecast lead time, one line per model: ``{label: (leads, errors)}``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (leads, errors) in curves.items():
        ax.plot(leads, errors, label=label, linestyle="--" if label == "Persistence" else "-")
    ax.set_xlabel("lead time [h]")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_triangle_predictions(
    vertices, faces, inputs: Tensor, targets: Tensor, predictions: Tensor, path: str, rows: int = 2
) -> None:
    """Rows of (f, target u, predicted u, error) on a planar triangle mesh; fields ``[S, V]``."""
    from matplotlib.tri import Triangulation

    mesh = Triangulation(vertices[:, 0], vertices[:, 1], faces)
    rows = min(rows, len(inputs))
    fig, axes = plt.subplots(rows, 4, figsize=(13, 3.2 * rows), squeeze=False)
    for r in range(rows):
        error = predictions[r] - targets[r]
        limit = float(targets[r].abs().max())
        panels = (
            ("f", inputs[r], float(inputs[r].abs().max())),
            ("u target", targets[r], limit),
            ("u prediction", predictions[r], limit),
            ("error", error, float(error.abs().max())),
        )
        for ax, (name, values, lim) in zip(axes[r], panels, strict=True):
            shown = ax.tripcolor(mesh, values.numpy(), shading="gouraud", cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(name)
            ax.set_aspect("equal")
            ax.set_axis_off()
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
