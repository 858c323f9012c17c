"""The forecast scores (WeatherBench-2 definitions) against independent numpy computations."""

import numpy as np
import pytest
import torch

from geounet.functional.metrics import latlon_weights
from geounet.functional.scores import lead_time_scores, score_report

INITS, L, P, C = 5, 3, 40, 2


def fields(seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(INITS, L, P, C))
    spread = rng.uniform(0.1, 2.0, size=(INITS, 1, 1, 1))  # a skill per init
    forecast = truth + rng.normal(scale=spread, size=truth.shape)
    climatology = rng.normal(size=(P, C))
    weights = rng.uniform(0.5, 2.0, size=P)
    mask = rng.uniform(size=(P, C)) > 0.3
    return forecast, truth, climatology, weights, mask


def numpy_scores(forecast, truth, climatology, weights, mask):
    """Loops over leads and variables; every init's areal means over the masked-in points."""
    rmse, bias, acc = (np.empty((L, C)) for _ in range(3))
    for lead in range(L):
        for c in range(C):
            w = weights[mask[:, c]]
            f, o = forecast[:, lead, mask[:, c], c], truth[:, lead, mask[:, c], c]  # [I, P']
            mse = [np.sum(w * (f[i] - o[i]) ** 2) / w.sum() for i in range(INITS)]
            rmse[lead, c] = np.sqrt(np.mean(mse))  # the root of the MSE averaged over inits
            bias[lead, c] = np.mean([np.sum(w * (f[i] - o[i])) / w.sum() for i in range(INITS)])
            fa, oa = f - climatology[mask[:, c], c], o - climatology[mask[:, c], c]
            acc[lead, c] = np.mean([np.sum(w * fa[i] * oa[i]) / np.sqrt(np.sum(w * fa[i] ** 2) * np.sum(w * oa[i] ** 2))
                                    for i in range(INITS)])
    return {"rmse": rmse, "bias": bias, "acc": acc}


def test_scores_are_weatherbench2s():
    forecast, truth, climatology, weights, mask = fields()
    forecast[:, :, ~mask[:, 0], 0] = np.nan  # no data there: ignored
    scores = lead_time_scores(*(torch.from_numpy(a) for a in (forecast, truth, climatology, weights, mask)))
    expected = numpy_scores(forecast, truth, climatology, weights, mask)
    for name, value in expected.items():
        np.testing.assert_allclose(scores[name].numpy(), value, rtol=1e-12, err_msg=name)


def test_the_rmse_is_the_root_of_the_mean_mse_not_the_mean_of_per_init_rmses():
    truth = torch.zeros(2, 1, 4, 1)
    forecast = torch.stack([torch.full((1, 4, 1), 1.0), torch.full((1, 4, 1), 3.0)])  # per-init RMSE 1 and 3
    scores = lead_time_scores(forecast, truth, torch.zeros(4, 1), torch.ones(4))
    torch.testing.assert_close(scores["rmse"], torch.tensor([[5.0]]).sqrt())  # not (1 + 3) / 2 = 2


def test_the_report_names_label_score_and_variable():
    forecast, truth, climatology, weights, _ = (torch.from_numpy(a) for a in fields())
    report = score_report({"model": forecast, "climatology": climatology.expand_as(truth)}, truth, climatology,
                          weights, ["a", "b"], prefix="latlon_")
    assert sorted(report) == sorted(f"latlon_{label}_{score}_{v}" for v in "ab" for label, score in
                                    [("model", "rmse"), ("model", "bias"), ("model", "acc"),
                                     ("climatology", "rmse"), ("climatology", "bias")])
    assert len(report["latlon_model_rmse_b"]) == L


def test_latlon_weights_integrate_to_area_fractions():
    """On a 5-degree grid with cell edges at ±30°, the band |φ| < 30° holds half the sphere's area
    (sin 30° - sin(-30°) = 1 of 2), and an error of 1 on it only has RMSE sqrt(1/2)."""
    lat, lon = np.arange(-87.5, 90, 5.0), np.arange(0, 360, 5.0)
    weights = latlon_weights(lat, lon)  # [H, W], mean 1
    band = torch.from_numpy(np.abs(lat) < 30)[:, None].expand_as(weights)
    torch.testing.assert_close(weights[band].sum() / weights.sum(), torch.tensor(0.5, dtype=torch.float64))
    cos = torch.from_numpy(np.cos(np.radians(lat)))[:, None].expand_as(weights)
    torch.testing.assert_close(weights / weights.mean(), cos / cos.mean(), rtol=2e-3, atol=0)  # cos-latitude
    error = band.double().reshape(1, 1, -1, 1)
    scores = lead_time_scores(error, torch.zeros_like(error), torch.zeros(band.numel(), 1, dtype=torch.float64),
                              weights.flatten())
    torch.testing.assert_close(scores["rmse"], torch.tensor([[np.sqrt(0.5)]], dtype=torch.float64))
    # the northern half masked out: the band's share of the southern hemisphere is sin 30° = 1/2 as well
    south = torch.from_numpy(lat < 0)[:, None].expand_as(weights).reshape(-1, 1)
    scores = lead_time_scores(error, torch.zeros_like(error), torch.zeros(band.numel(), 1, dtype=torch.float64),
                              weights.flatten(), mask=south)
    torch.testing.assert_close(scores["rmse"], torch.tensor([[np.sqrt(0.5)]], dtype=torch.float64))


def test_shapes_that_do_not_fit_are_refused():
    forecast, truth, climatology, weights, _ = (torch.from_numpy(a) for a in fields())
    with pytest.raises(ValueError, match="must both be"):
        lead_time_scores(forecast[0], truth[0], climatology, weights)
    with pytest.raises(ValueError, match="weights"):
        lead_time_scores(forecast, truth, climatology, weights[:-1])
