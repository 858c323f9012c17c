"""White noise in the mass inner product and the ε / v parametrisations."""

from __future__ import annotations

import pytest
import torch

from geounet.diffusion import noise_std, white_noise
from geounet.diffusion.noise import split, target
from geounet.hierarchy import PartitionHaarHierarchy, SquareHaarHierarchy, batch_hierarchies


def test_white_noise_has_equal_variance_in_every_mass_orthonormal_direction():
    generator = torch.Generator().manual_seed(0)
    mass = torch.rand(12, generator=generator, dtype=torch.float64) + 0.1  # unequal cells
    hierarchy = PartitionHaarHierarchy([None, torch.arange(12) // 4], mass)
    std = noise_std(hierarchy)
    c = mass.mean()
    # Random M-orthonormal functions: Φ = M^{-1/2} Q with Q orthogonal.
    q, _ = torch.linalg.qr(torch.randn(12, 5, generator=generator, dtype=torch.float64))
    phi = q / mass.sqrt()[:, None]  # [N, 5], Φ^T M Φ = I
    eps = white_noise(std, 40_000, 1, generator, torch.float64)[..., 0]  # [S, N]
    coefficients = (eps * mass) @ phi  # <ε, φ_k>_M, [S, 5]
    assert torch.allclose(coefficients.var(0), c.expand(5), rtol=0.04)
    # E‖ε‖²_M = area: the mass norm of a unit-variance field
    assert ((eps**2) @ mass).mean().item() == pytest.approx(mass.sum().item(), rel=0.02)


def test_noise_is_iid_unit_on_equal_area_grids_and_per_mesh_in_unions():
    assert torch.allclose(noise_std(SquareHaarHierarchy(8, 2)), torch.ones(64, dtype=torch.float64))
    union = batch_hierarchies([SquareHaarHierarchy(4, 2), SquareHaarHierarchy(8, 2)])  # masses 1/16 and 1/64
    assert torch.allclose(noise_std(union), torch.ones(16 + 64, dtype=torch.float64))


@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize(("a", "s"), [(0.6, 0.8), (1.0, 3.0), (0.02, 0.9998)])
def test_split_inverts_target(prediction, a, s):
    generator = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(2, 2, 5, 3, generator=generator, dtype=torch.float64)
    a_t, s_t = torch.full((2,), a, dtype=torch.float64), torch.full((2,), s, dtype=torch.float64)
    x_t = a * x0 + s * eps
    x0_hat, eps_hat = split(prediction, target(prediction, x0, eps, a_t, s_t), x_t, a_t, s_t)
    assert torch.allclose(x0_hat, x0, atol=1e-10) and torch.allclose(eps_hat, eps, atol=1e-10)


def test_v_target_is_unit_variance_for_unit_data():
    generator = torch.Generator().manual_seed(4)
    x0, eps = torch.randn(2, 50_000, 1, 1, generator=generator, dtype=torch.float64)
    v = target("v", x0, eps, torch.full((50_000,), 1.0, dtype=torch.float64),
               torch.full((50_000,), 5.0, dtype=torch.float64))
    assert v.var().item() == pytest.approx(1.0, rel=0.03)
    with pytest.raises(ValueError, match="prediction must be one of"):
        target("x0", x0, eps, torch.ones(1), torch.ones(1))
