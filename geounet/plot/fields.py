"""Figures of fields, predictions and training curves, written by experiments and runs (PNG).

Each ``plot_*`` function writes its figure to ``path`` and returns it; figures are made outside
pyplot (:mod:`geounet.plot.figure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from geounet.data.outputs import write_output
from geounet.errors import GeounetError
from geounet.plot.figure import draw_healpix_map, new_figure, save_figure


def plot_square_predictions(
    inputs: Tensor, targets: Tensor, predictions: Tensor, path: str, title: str = "", rows: int = 2
) -> Figure:
    """Rows of (input, target, prediction, error) images, ``[S, H, W]`` each."""
    rows = min(rows, len(inputs))
    fig = new_figure(12, 3 * rows)
    axes = fig.subplots(rows, 4, squeeze=False)
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
    return save_figure(fig, path)


def plot_loss_curves(histories: dict[str, list[dict[str, float]]], path: str) -> Figure:
    """Training loss against step, one line per run."""
    fig = new_figure(6, 4)
    draw_history(fig.subplots(), histories, "loss", "training loss (weighted MSE)")
    return save_figure(fig, path)


def mean_band(label: str, seeds: list[list[list[float]]]) -> tuple[list[float], Tensor, Tensor]:
    """Steps, mean and standard deviation over seeds (``[T]`` each; zero spread for one seed) of
    curves ``[[step, value], ...]`` evaluated at the same steps."""
    steps = [[step for step, _ in curve] for curve in seeds]
    if not seeds or any(s != steps[0] for s in steps):
        raise GeounetError(f"the seeds of {label!r} were evaluated at different steps; rerun them with one config")
    values = torch.tensor([[value for _, value in curve] for curve in seeds], dtype=torch.float64)  # [S, T]
    spread = values.std(0) if len(seeds) > 1 else torch.zeros(values.shape[1], dtype=torch.float64)
    return steps[0], values.mean(0), spread


def plot_evaluation_bands(curves: dict[str, list[list[list[float]]]], references: dict[str, float], ylabel: str,
                          path: str) -> Figure:
    """Per model ``{label: [curve of seed s]}``, each curve ``[[step, error], ...]``: the mean over
    seeds against step with a band of ± one standard deviation (:func:`mean_band`), and a dashed
    horizontal line per ``references`` entry (e.g. persistence's error)."""
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    for label, seeds in curves.items():
        steps, mean, spread = mean_band(label, seeds)
        line, = ax.plot(steps, mean.tolist(), label=f"{label} ({len(seeds)} seeds)")
        ax.fill_between(steps, (mean - spread).tolist(), (mean + spread).tolist(), color=line.get_color(), alpha=0.2)
    for label, value in references.items():
        ax.axhline(value, color="black", linestyle="--", linewidth=1, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{ylabel} (mean ± std over seeds)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def draw_history(ax: Axes, histories: dict[str, list[dict[str, float]]], key: str, ylabel: str) -> None:
    """``row[key]`` against ``row["step"]`` on a log scale, one line per run ``{label: rows}``.

    Rows without ``key`` are skipped (test metrics are logged every ``eval_every`` steps only);
    a run with no such row draws nothing and gets no legend entry.
    """
    for label, history in histories.items():
        rows = [row for row in history if key in row]
        if rows:
            ax.semilogy(
                [row["step"] for row in rows],
                [row[key] for row in rows],
                marker="." if len(rows) < 30 else "",
                label=label,
            )
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def plot_healpix_predictions(
    inputs: Tensor, targets: Tensor, predictions: Tensor, variables: list[str], path: str
) -> Figure:
    """Mollweide maps of (input, target, prediction, error) per variable for the first sample.

    Maps are ``[S, N, C]`` in HEALPix NEST order.
    """
    fig = new_figure(16, 3.2 * len(variables))
    axes = fig.subplots(len(variables), 4, squeeze=False)
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
        for ax, (label, values, vmin, vmax, cmap) in zip(axes[c], panels, strict=True):
            shown = draw_healpix_map(ax, values, f"{name}: {label}", cmap, vmin, vmax)
            fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.05, pad=0.04)
    return save_figure(fig, path, dpi=90)


def plot_rollout_curves(curves: dict[str, tuple[list[float], list[float]]], ylabel: str, path: str) -> Figure:
    """Error against forecast lead time, one line per model: ``{label: (leads, errors)}``."""
    fig = new_figure(6, 4)
    draw_rollout_curves(fig.subplots(), curves, ylabel)
    return save_figure(fig, path)


def draw_rollout_curves(ax: Axes, curves: dict[str, tuple[list[float], list[float]]], ylabel: str) -> None:
    """Error against lead time on ``ax``; labels starting with "Persistence" are dashed."""
    for label, (leads, errors) in curves.items():
        ax.plot(leads, errors, label=label, linestyle="--" if label.startswith("Persistence") else "-")
    ax.set_xlabel("lead time [h]")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def plot_triangle_predictions(
    vertices, faces, inputs: Tensor, targets: Tensor, predictions: Tensor, path: str, rows: int = 2
) -> Figure:
    """Rows of (f, target u, predicted u, error) on a planar triangle mesh; fields are vertex
    values ``[S, V]`` (drawn interpolated) or face values ``[S, F]`` in the order of ``faces``
    (drawn flat)."""
    from matplotlib.tri import Triangulation

    mesh = Triangulation(vertices[:, 0], vertices[:, 1], faces)
    rows = min(rows, len(inputs))
    fig = new_figure(13, 3.2 * rows)
    axes = fig.subplots(rows, 4, squeeze=False)
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
            colours = dict(cmap="RdBu_r", vmin=-lim, vmax=lim)
            if len(values) == len(faces):
                shown = ax.tripcolor(mesh, facecolors=values.numpy(), **colours)
            else:
                shown = ax.tripcolor(mesh, values.numpy(), shading="gouraud", **colours)
            ax.set_title(name)
            ax.set_aspect("equal")
            ax.set_axis_off()
            fig.colorbar(shown, ax=ax, fraction=0.046)
    return save_figure(fig, path)


def plot_run_curves(
    histories: dict[str, list[dict[str, float]]],
    finals: dict[str, tuple[float, float]],
    rollouts: dict[str, dict[str, tuple[list[float], list[float]]]],
    path: str,
) -> list[str]:
    """One figure of every curve that ``geounet plot`` found, written to ``path``; returns the
    panels' y labels.

    Panels, two per row: training loss and test relative L2 against step (``histories``,
    ``{label: rows}``; the test panel only if some row has ``test_rel_l2_mean``), the final
    test relative L2 with its spread over seeds (``finals``, ``{label: (mean, std)}``), and
    one panel per rollout score (``rollouts``, ``{score: {label: (leads, errors)}}``).
    """
    panels: list[tuple[str, Callable[[Axes, str], None]]] = []
    if histories:
        panels.append(("training loss (weighted MSE)", lambda ax, y: draw_history(ax, histories, "loss", y)))
        if any("test_rel_l2_mean" in row for rows in histories.values() for row in rows):
            panels.append(("test relative L2", lambda ax, y: draw_history(ax, histories, "test_rel_l2_mean", y)))
    if finals:
        panels.append(("test relative L2 (mean ± std over seeds)", lambda ax, y: draw_finals(ax, finals, y)))
    for score, curves in rollouts.items():
        panels.append((f"rollout {score}", lambda ax, y, curves=curves: draw_rollout_curves(ax, curves, y)))
    if not panels:
        raise GeounetError("nothing to plot: the runs have no history, test errors or rollout curves")
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = new_figure(6.5 * cols, 4.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (ylabel, draw) in zip(axes.flat, panels, strict=False):
        draw(ax, ylabel)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    save_figure(fig, path)
    return [ylabel for ylabel, _ in panels]


def draw_finals(ax: Axes, finals: dict[str, tuple[float, float]], ylabel: str) -> None:
    """One point with an error bar per model: ``{label: (mean, std)}``."""
    labels = list(finals)
    ax.errorbar(
        range(len(labels)), [finals[k][0] for k in labels], yerr=[finals[k][1] for k in labels], fmt="o", capsize=4
    )
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylabel(ylabel)


def plot_test_predictions(model: nn.Module, task, device: torch.device, path: str, samples: int = 2) -> None:
    """The task's prediction figure (``task.plot``) for the first ``samples`` test samples of a
    :class:`geounet.tasks.PreparedTask`, written atomically to ``path``; ``model`` must be on
    ``device``, in eval mode."""
    batch = task.test.batch(torch.arange(min(samples, len(task.test))))
    inputs, targets = batch.inputs, batch.targets  # [S, N, C_in], [S, N, C_out]
    with torch.no_grad():
        predictions = model(inputs.to(device), batch.hierarchy.to(device)).cpu()  # [S, N, C_out]
    write_output(path, lambda tmp: task.plot(inputs, targets, predictions, str(tmp)))
