import math

import pytest
import torch

from geounet.datagen.navier_stokes import (
    ForcedNavierStokesConfig,
    NavierStokesConfig,
    VorticitySolver,
    forcing,
    gaussian_random_field,
    load_or_generate_forced_navier_stokes,
    load_or_generate_navier_stokes,
    random_forcing,
    spinup_history,
)


def test_single_mode_is_an_exact_solution():
    """ω = a(t) sin θ + b(t) cos θ with θ = 2π(x+y) has no advection (one wavevector), so
    a' = -ν|k|² a + 0.1 and likewise b: an exact solution with forcing and diffusion."""
    n, nu, t = 16, 1e-2, 0.5
    solver = VorticitySolver(n, nu, dt=1e-3)
    coords = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    theta = 2 * math.pi * (x + y)
    a0, b0 = 0.7, -0.3
    w0 = (a0 * torch.sin(theta) + b0 * torch.cos(theta))[None]
    decay = nu * 8 * math.pi**2  # ν |k|², |k|² = 2 (2π)²
    steady = 0.1 / decay
    a, b = (steady + (c0 - steady) * math.exp(-decay * t) for c0 in (a0, b0))
    exact = a * torch.sin(theta) + b * torch.cos(theta)
    torch.testing.assert_close(solver.advance(w0, t)[0], exact, rtol=0, atol=1e-7)


def test_second_order_in_time():
    generator = torch.Generator().manual_seed(1)
    w0 = 20 * gaussian_random_field(2, 32, generator)  # strong enough for nonlinear dynamics
    reference = VorticitySolver(32, 1e-3, 1.25e-3).advance(w0, 0.2)
    errors = [(VorticitySolver(32, 1e-3, dt).advance(w0, 0.2) - reference).norm().item() for dt in (0.01, 0.005)]
    assert 3.0 < errors[0] / errors[1] < 5.0  # halving dt divides the error by ~4


def test_mean_vorticity_is_conserved():
    generator = torch.Generator().manual_seed(2)
    w = VorticitySolver(32, 1e-3, 5e-3).advance(gaussian_random_field(3, 32, generator), 0.5)
    assert w.mean(dim=(-2, -1)).abs().max() < 1e-12
    assert forcing(32).mean().abs() < 1e-15


def test_random_field_spectrum():
    """The sample variance of each Fourier mode matches σ²(4π²|k|² + τ²)^(-α)."""
    generator = torch.Generator().manual_seed(3)
    n = 16
    fields = gaussian_random_field(4000, n, generator)
    coefficients = torch.fft.rfft2(fields, norm="forward")  # field = Σ c_k e^{2πik·x}
    sigma2 = 7.0**3
    for kx, ky in ((1, 0), (0, 2), (1, 1)):
        expected = sigma2 * (4 * math.pi**2 * (kx**2 + ky**2) + 49) ** (-2.5)
        measured = coefficients[:, ky, kx].abs().pow(2).mean().item()
        assert measured == pytest.approx(expected, rel=0.1)
    assert fields.mean(dim=(-2, -1)).abs().max() < 1e-12


def test_dataset_is_cached_and_reused(tmp_path):
    config = NavierStokesConfig(resolution=16, num_samples=3, spinup_time=0.05, horizon=0.05, dt=0.01)
    inputs, targets = load_or_generate_navier_stokes(tmp_path, config)
    assert inputs.shape == targets.shape == (3, 16, 16)
    assert len(list(tmp_path.glob("navier_stokes-*.npz"))) == 1
    again, _ = load_or_generate_navier_stokes(tmp_path, config)
    assert torch.equal(inputs, again)


def test_bad_solver_parameters():
    with pytest.raises(ValueError, match="power of two"):
        VorticitySolver(48, 1e-3, 1e-3)
    with pytest.raises(ValueError, match="whole number of steps"):
        VorticitySolver(16, 1e-3, 0.3).advance(torch.zeros(1, 16, 16, dtype=torch.float64), 1.0)


def test_drag_decays_an_unforced_single_mode_exactly():
    """ω = sin 2π(x+y) has no advection: with drag α and no forcing ω(t) = e^{-(ν|k|² + α) t} ω(0)."""
    n, nu, drag, t = 16, 1e-2, 0.3, 0.5
    coords = torch.arange(n, dtype=torch.float64) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    w0 = torch.sin(2 * math.pi * (x + y))[None]
    exact = math.exp(-(nu * 8 * math.pi**2 + drag) * t) * w0
    w = VorticitySolver(n, nu, 1e-3, drag).advance(w0, t, torch.zeros(n, n, dtype=torch.float64))
    torch.testing.assert_close(w, exact, rtol=0, atol=1e-7)


def test_random_forcing_is_band_limited_with_the_asked_amplitude():
    f = random_forcing(5, 32, torch.Generator().manual_seed(4), amplitude=2.0, band=(2.0, 4.0))
    assert f.square().mean(dim=(-2, -1)).sqrt().tolist() == pytest.approx([2.0] * 5, rel=1e-12)
    k = torch.fft.fftfreq(32, d=1 / 32)
    radius = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    energy = torch.fft.fft2(f).abs().square().sum(dim=0)
    assert energy[(radius < 2) | (radius > 4)].max() < 1e-20 * energy.max()
    assert not torch.allclose(f[0], f[1])  # every sample has its own forcing
    with pytest.raises(ValueError, match="forcing band"):
        random_forcing(1, 8, torch.Generator(), 1.0, (9.0, 10.0))


def test_forced_data_are_cached_with_their_forcings(tmp_path):
    config = ForcedNavierStokesConfig(resolution=16, num_samples=3, spinup_time=0.05, horizon=0.05, dt=0.01)
    data = load_or_generate_forced_navier_stokes(tmp_path, config)
    assert {key: tuple(v.shape) for key, v in data.items()} == {k: (3, 16, 16) for k in ("inputs", "forcings",
                                                                                         "targets")}
    assert len(list(tmp_path.glob("navier_stokes_forced-*.npz"))) == 1
    solver = config.solver()
    again = solver.advance(data["inputs"].double(), 0.05, data["forcings"].double()).float()
    torch.testing.assert_close(again, data["targets"], rtol=0, atol=1e-5)  # targets follow the given forcing


def test_spinup_history_reports_energy_and_enstrophy():
    config = ForcedNavierStokesConfig(resolution=16, num_samples=2, dt=0.01)
    history = spinup_history(config, every=0.05, total=0.1)
    assert history["times"].tolist() == pytest.approx([0.0, 0.05, 0.1])
    w, _ = config.draw(2, torch.Generator().manual_seed(config.seed))
    assert history["enstrophy"][0].tolist() == pytest.approx((0.5 * w.square().mean(dim=(-2, -1))).tolist())
    assert history["energy"].shape == (3, 2) and (history["energy"] > 0).all()
