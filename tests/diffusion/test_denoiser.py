"""The denoiser around a conditioned U-Net and the denoising loss (the EMA: test_ema.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geounet.data.samples import node_weights
from geounet.diffusion import EDM, Denoiser, VPCosine, denoising_loss, noise_std, sample
from geounet.hierarchy import SquareHaarHierarchy, batch_hierarchies
from geounet.models import build_unet


def small_denoiser(schedule, prediction="eps", in_channels=1):
    torch.manual_seed(0)
    hierarchy = SquareHaarHierarchy(8, 3)
    model = build_unet(hierarchy, in_channels, 1, width=8, cond_dim=16)
    return Denoiser(model, schedule, prediction, cond_dim=16), hierarchy


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("schedule", [VPCosine(), EDM()], ids=repr)
def test_loss_trains_every_part_and_depends_on_the_noise_level(schedule, prediction):
    denoiser, hierarchy = small_denoiser(schedule, prediction)
    x0 = torch.randn(4, 64, 1, generator=torch.Generator().manual_seed(1))
    loss = denoising_loss(denoiser, x0, hierarchy, torch.Generator().manual_seed(2), weights=node_weights(hierarchy))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert denoiser.embedding.mlp[0].weight.grad.abs().sum() > 0  # the noise level reaches the loss
    x_t = torch.randn(2, 64, 1)
    low, high = (denoiser(x_t, hierarchy, torch.full((2,), t, dtype=torch.float64)) for t in (0.1, 0.5))
    assert not torch.allclose(low, high)


def test_loss_of_the_exact_target_is_zero():
    # A "network" that returns the true ε (known through the seed) has zero loss.
    schedule = VPCosine()
    denoiser, hierarchy = small_denoiser(schedule)
    x0 = torch.randn(3, 64, 1, dtype=torch.float64)
    times = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    eps = torch.randn(3, 64, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    class Oracle(nn.Module):
        def forward(self, x, hierarchy, cond):
            return eps

    denoiser.model = Oracle()
    loss = denoising_loss(denoiser, x0, hierarchy, torch.Generator().manual_seed(4), weights=node_weights(hierarchy),
                          times=times)
    assert loss.item() == pytest.approx(0.0, abs=1e-20)


def test_denoiser_rejects_one_time_for_several_samples():
    denoiser, hierarchy = small_denoiser(EDM())
    with pytest.raises(ValueError, match="one time per batch element"):
        denoiser(torch.randn(2, 64, 1), hierarchy, torch.ones(1, dtype=torch.float64))


def test_sampling_a_network_is_deterministic_given_the_seed():
    denoiser, hierarchy = small_denoiser(VPCosine(), "v")

    def draw(seed):
        return sample("ddpm", lambda x, t: denoiser.denoise(x, hierarchy, t), denoiser.schedule,
                      noise_std(hierarchy), 2, 1, 4, torch.Generator().manual_seed(seed))

    assert draw(3).shape == (2, 64, 1) and torch.equal(draw(3), draw(3))


def test_a_union_of_geometries_shares_one_noise_level():
    # x [1, N_1 + N_2, C] on a disjoint union: one batch element, one t, noise white per geometry.
    denoiser, _ = small_denoiser(EDM())
    union = batch_hierarchies([SquareHaarHierarchy(8, 3), SquareHaarHierarchy(16, 3)])
    x0 = torch.randn(1, 64 + 256, 1)
    loss = denoising_loss(denoiser, x0, union, torch.Generator().manual_seed(0), weights=node_weights(union))
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="one time per batch element"):
        denoiser(x0, union, torch.ones(2, dtype=torch.float64))
