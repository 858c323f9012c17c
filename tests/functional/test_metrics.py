import healpy as hp
import numpy as np
import pytest
import torch

from geounet.functional.metrics import acc, angular_power_spectrum, bias, latlon_weights, rmse
from geounet.geometry.healpix import to_nest

W = torch.tensor([1.0, 3.0], dtype=torch.float64)


def test_rmse_and_bias_hand_computed():
    pred = torch.tensor([1.0, 2.0], dtype=torch.float64)
    target = torch.zeros(2, dtype=torch.float64)
    torch.testing.assert_close(rmse(pred, target, W), torch.tensor(np.sqrt(13 / 4), dtype=torch.float64))
    diff = torch.tensor([1.0, -1.0], dtype=torch.float64)
    expected = torch.tensor(-0.5, dtype=torch.float64)
    torch.testing.assert_close(bias(diff, torch.zeros(2, dtype=torch.float64), W), expected)


def test_rmse_over_time_and_space_is_sqrt_of_mean_mse():
    """WeatherBench 2 averages the MSE over time before the square root."""
    pred = torch.tensor([[1.0, 1.0], [3.0, 3.0]], dtype=torch.float64)  # [T, N]
    target = torch.zeros(2, 2, dtype=torch.float64)
    per_time = rmse(pred, target, W, dims=(-1,))
    torch.testing.assert_close(per_time, torch.tensor([1.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(rmse(pred, target, W, dims=(0, 1)), torch.tensor(np.sqrt(5.0), dtype=torch.float64))


def test_acc_uncentred_and_centred_hand_computed():
    clim = torch.zeros(3, dtype=torch.float64)
    f = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    o = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    w = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(acc(f, o, clim, w), torch.tensor(2 / np.sqrt(10), dtype=torch.float64))
    torch.testing.assert_close(acc(f, o, clim, w, centred=True), torch.tensor(1.0, dtype=torch.float64))
    # weights matter: w = [2, 1, 1] -> Σwf'o' = 4, Σwf'² = 3, Σwo'² = 9
    w2 = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(acc(f, o, clim, w2), torch.tensor(4 / np.sqrt(27), dtype=torch.float64))


def test_acc_limits_and_batching():
    torch.manual_seed(0)
    clim, o = torch.randn(4, 50, dtype=torch.float64), torch.randn(4, 50, dtype=torch.float64)
    w = torch.rand(50, dtype=torch.float64)
    torch.testing.assert_close(acc(o, o, clim, w), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(acc(2 * clim - o, o, clim, w), -torch.ones(4, dtype=torch.float64))
    assert acc(o, o, clim, w, centred=True).shape == (4,)


def test_latlon_weights_are_cell_areas():
    lat, lon = np.array([60.0, 0.0, -60.0]), np.arange(0.0, 360.0, 90.0)
    weights = latlon_weights(lat, lon)  # bands [30, 90], [-30, 30], [-90, -30]: areas ∝ 1 - sin 30, 2 sin 30, ...
    expected = np.array([0.5, 1.0, 0.5])[:, None] / (2.0 / 3.0)
    np.testing.assert_allclose(weights.numpy(), np.broadcast_to(expected, (3, 4)), rtol=1e-12)
    field = torch.tensor([[2.0] * 4, [0.0] * 4, [2.0] * 4], dtype=torch.float64)
    assert float(bias(field, torch.zeros_like(field), weights, dims=(-2, -1))) == pytest.approx(1.0)


@pytest.mark.parametrize("ordering", ["nest", "ring"])
def test_angular_power_spectrum_matches_anafast(ordering):
    nside = 8
    ring_map = np.random.default_rng(0).standard_normal(12 * nside**2)
    other = np.random.default_rng(1).standard_normal(12 * nside**2)
    x, y = torch.from_numpy(ring_map), torch.from_numpy(other)
    if ordering == "nest":
        x, y = to_nest(x, "ring"), to_nest(y, "ring")
    np.testing.assert_allclose(angular_power_spectrum(x, ordering=ordering).numpy(), hp.anafast(ring_map), rtol=1e-10)
    np.testing.assert_allclose(angular_power_spectrum(x, ordering=ordering, other=y).numpy(),
                               hp.anafast(ring_map, other), rtol=1e-9, atol=1e-14)


def test_bad_weights():
    f = torch.zeros(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="do not broadcast"):
        rmse(f, f, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-negative"):
        rmse(f, f, -torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="not a HEALPix map"):
        angular_power_spectrum(torch.zeros(100), ordering="ring")


def test_masked_scores_are_the_scores_of_the_masked_in_points():
    torch.manual_seed(0)
    pred, target, clim = (torch.randn(*shape, dtype=torch.float64) for shape in ((3, 10), (3, 10), (10,)))
    weights = torch.rand(10, dtype=torch.float64) + 0.5
    mask = torch.arange(10) % 3 != 0
    garbage = target.clone()
    garbage[:, ~mask] = torch.nan  # anything may stand where the mask is False
    kept = mask.nonzero()[:, 0]
    for score, args in ((rmse, ()), (bias, ()), (acc, (clim,))):
        expected = score(pred[:, kept], target[:, kept], *(a[kept] for a in args), weights[kept])
        torch.testing.assert_close(score(pred, garbage, *args, weights, mask=mask), expected)
