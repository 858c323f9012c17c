"""Forecast scores per lead time, WeatherBench-2 definitions, one module for every forecasting task.

Forecasts ``f`` and truth ``o`` are ``[I, L, P, C]``: I initial times, L lead times, P
points of one grid (a HEALPix map, or a lat-lon grid flattened) and C variables. With
the area weights w_p of the grid and the points a variable holds data at (``mask [P,
C]``), per lead time l and variable c

    RMSE_l = sqrt( (1/I) Σ_i mean_w (f_il - o_il)² ),     mean_w(x) = Σ_p w_p x_p / Σ_p w_p,
    bias_l = (1/I) Σ_i mean_w (f_il - o_il),
    ACC_l  = (1/I) Σ_i ACC(f_il, o_il)     (uncentred, against the climatology c [P, C]),

the square root of the area-weighted MSE averaged over initial times (WeatherBench 2),
not the mean over initial times of per-init RMSEs, which is smaller or equal (Jensen).
Weights: uniform on HEALPix (equal areas), cell areas on a lat-lon grid
(:func:`geounet.functional.metrics.latlon_weights`, the cos-latitude weighting).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.metrics import acc, bias, rmse

#: the scores every forecast evaluation reports per lead time
SCORES = ("rmse", "bias", "acc")


def lead_time_scores(forecast: Tensor, truth: Tensor, climatology: Tensor, weights: Tensor,
                     mask: Tensor | None = None) -> dict[str, Tensor]:
    """``{"rmse", "bias", "acc"} -> [L, C]`` of ``forecast``, ``truth [I, L, P, C]`` with the
    ``climatology [P, C]``, point weights ``weights [P]`` and ``mask [P, C]`` (module docstring).

    Masked-out points may hold anything (NaN included).
    """
    if forecast.shape != truth.shape or forecast.dim() != 4:
        raise GeounetError(f"forecast {tuple(forecast.shape)} and truth {tuple(truth.shape)} must both be "
                           "[inits, leads, points, variables]")
    points = forecast.shape[2]
    if weights.shape != (points,) or climatology.shape != forecast.shape[2:]:
        raise GeounetError(f"weights {tuple(weights.shape)} and climatology {tuple(climatology.shape)} must be "
                           f"[{points}] and [{points}, {forecast.shape[3]}]")
    w = weights.to(forecast.dtype)[:, None]  # [P, 1]
    # the mask is the same at every init, so averaging over (init, point) is the mean over inits of the areal means
    return {
        "rmse": rmse(forecast, truth, w, dims=(0, 2), mask=mask),
        "bias": bias(forecast, truth, w, dims=(0, 2), mask=mask),
        "acc": acc(forecast, truth, climatology, w, dims=(2,), mask=mask).mean(0),
    }


def score_report(forecasts: Mapping[str, Tensor], truth: Tensor, climatology: Tensor, weights: Tensor,
                 variables: list[str], mask: Tensor | None = None, prefix: str = "") -> dict[str, list[float]]:
    """``{"<prefix><label>_<score>_<variable>": [L]}`` for each forecast ``[I, L, P, C]`` of
    ``forecasts`` (e.g. model, persistence) against ``truth``; no ACC for the label
    "climatology" (its anomaly is 0, its ACC undefined)."""
    report: dict[str, list[float]] = {}
    for label, forecast in forecasts.items():
        scores = lead_time_scores(forecast.double(), truth.double(), climatology.double(), weights.double(), mask)
        for score in SCORES:
            if score == "acc" and label == "climatology":
                continue
            for c, name in enumerate(variables):
                report[f"{prefix}{label}_{score}_{name}"] = scores[score][:, c].tolist()
    return report


def equal_area_weights(points: int) -> Tensor:
    """``[P]`` ones: the weights of HEALPix pixels."""
    return torch.ones(points, dtype=torch.float64)
