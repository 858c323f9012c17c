"""Models learn a small real task: a fixed local linear operator of the input field."""

import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.unet import build_unet


def five_point_laplacian(x: torch.Tensor, side: int) -> torch.Tensor:
    """Periodic 5-point Laplacian (grid units) of node features [B, side*side, C]."""
    image = x.reshape(x.shape[0], side, side, -1)
    shifts = sum(torch.roll(image, s, dims=d) for s in (1, -1) for d in (1, 2))
    return (shifts - 4 * image).reshape(x.shape)


def graph_smoothing(x: torch.Tensor, hierarchy) -> torch.Tensor:
    """One explicit diffusion step x + 0.5 (mean of the 8 (or 7) neighbours - x) on the finest graph."""
    graph = hierarchy.graph(hierarchy.finest_level)
    neighbours, mask = graph.neighbours, graph.neighbour_mask.to(x.dtype)
    mean = (x[:, neighbours] * mask[..., None]).sum(2) / mask.sum(1)[:, None]
    return x + 0.5 * (mean - x)


def fit(model, hierarchy, inputs, target_fn, steps=60, lr=5e-3):
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x = inputs(step)
        loss = torch.nn.functional.mse_loss(model(x, hierarchy), target_fn(x))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("variant", ["multiresnet", pytest.param("residual", marks=pytest.mark.slow)])
def test_learns_the_laplacian_on_the_square(variant):
    torch.manual_seed(0)
    hierarchy = SquareHaarHierarchy(16, 3, periodic=True)
    model = build_unet(hierarchy, 1, 1, variant=variant, width=8)
    losses = fit(model, hierarchy, lambda step: torch.randn(4, 256, 1), lambda x: five_point_laplacian(x, 16))
    assert sum(losses[-10:]) / 10 < 0.1 * losses[0], losses[::10]


def test_learns_graph_diffusion_on_healpix():
    torch.manual_seed(0)
    hierarchy = HealpixHaarHierarchy(4, 3)
    model = build_unet(hierarchy, 1, 1, width=8)
    losses = fit(model, hierarchy, lambda step: torch.randn(4, 192, 1), lambda x: graph_smoothing(x, hierarchy))
    assert sum(losses[-10:]) / 10 < 0.1 * losses[0], losses[::10]
