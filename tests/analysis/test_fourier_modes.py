"""The share of a data set's energy held by one Fourier mode pair ±k, on fields with known shares."""

import math

import pytest
import torch

from geounet.analysis.fourier_modes import largest_mode_share, mode_energies


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(n, dtype=torch.float64) / n
    return torch.meshgrid(coords, coords, indexing="ij")  # y, x


def test_shares_of_two_pure_modes():
    """A cos 2π(2x + y) + B sin 2π(3x) has mean squares A²/2 and B²/2: the pair (2, 1) holds
    A² / (A² + B²) whatever the phase of each sample."""
    y, x = _grid(16)
    phases = torch.tensor([0.0, 0.7, 2.1])[:, None, None]
    fields = 3.0 * torch.cos(2 * math.pi * (2 * x + y) + phases) + 1.0 * torch.sin(2 * math.pi * 3 * x)
    result = largest_mode_share(fields)
    assert result["mode"] == [2, 1]
    assert result["share"] == pytest.approx(9 / 10, rel=1e-12)
    assert mode_energies(fields).sum().item() == pytest.approx(fields.square().mean(dim=(-2, -1)).sum().item())


def test_white_noise_has_no_dominant_mode():
    """Negative control: white noise spreads its energy evenly, about 2 / n² per pair."""
    fields = torch.randn(64, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert largest_mode_share(fields)["share"] < 4 * 2 / 16**2


def test_fno_forcing_is_one_pair():
    """FNO's forcing 0.1 (sin + cos) 2π(x + y) lives entirely on ±(1, 1)."""
    from geounet.datagen.navier_stokes import forcing

    result = largest_mode_share(forcing(16)[None])
    assert result["mode"] == [1, 1] and result["share"] == pytest.approx(1.0, rel=1e-12)


def test_zero_fields_are_refused():
    with pytest.raises(ValueError, match="identically zero"):
        largest_mode_share(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="square grid"):
        mode_energies(torch.zeros(2, 8, 4))
