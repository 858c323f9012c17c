"""Area-weighted skill scores for fields on the sphere (WeatherBench-2 conventions).

Every metric reduces over the ``dims`` it is given (the spatial axes, plus e.g. time to
average over it before the square root, as WeatherBench 2 does for RMSE) with weights
``w`` broadcast against the fields and normalised over those dims:

    mean_w(x)  = Σ w x / Σ w,
    bias       = mean_w(f - o),
    RMSE       = sqrt(mean_w((f - o)²)),
    ACC        = Σ w f' o' / sqrt(Σ w f'² · Σ w o'²),      f' = f - c, o' = o - c,

with the climatology c; the default ACC is WeatherBench 2's uncentred one, and
``centred=True`` first subtracts the weighted means of f' and o'. With a ``mask`` (True
where the fields hold data, e.g. the ocean for sea-surface temperature) every sum runs
over the masked-in points only, w -> w · mask; the fields may hold anything, NaN
included, where the mask is False. Weights: cell areas
for lat-lon grids (:func:`latlon_weights`, the integral of cos(latitude) over each cell,
which is WeatherBench 2's latitude weighting), uniform for HEALPix (equal areas).
Forecast scores per lead time built from these, with WeatherBench 2's averaging over
initial times, are :mod:`geounet.functional.scores`.

The angular power spectrum of a HEALPix map, C_l = Σ_m |a_lm|² / (2l + 1), goes through
:mod:`geounet.functional.sht` (healpy ``anafast`` conventions: lmax 3 nside - 1, 3
Jacobi iterations by default).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.regrid import LatLonGrid
from geounet.functional.sht import HealpixSHT, max_lmax, power_spectrum
from geounet.geometry.healpix import nside_of, to_nest


def latlon_weights(lat, lon) -> Tensor:
    """Cell areas of a global lat-lon grid normalised to mean 1, ``[H, W]`` float64."""
    areas = LatLonGrid.from_coords(lat, lon).cell_areas()
    return torch.from_numpy(areas / areas.mean())


def _weighted_mean(x: Tensor, weights: Tensor, dims: Sequence[int], mask: Tensor | None = None) -> Tensor:
    weights = torch.as_tensor(weights, dtype=x.dtype, device=x.device)
    if (weights < 0).any() or not torch.isfinite(weights).all():
        raise GeounetError("weights must be finite and non-negative")
    try:
        weights = torch.broadcast_to(weights, x.shape)
        if mask is not None:
            mask = torch.broadcast_to(torch.as_tensor(mask, device=x.device).bool(), x.shape)
            x, weights = torch.where(mask, x, 0.0), torch.where(mask, weights, 0.0)
    except RuntimeError as error:
        raise GeounetError(f"weights of shape {tuple(weights.shape)} (or the mask) do not broadcast to the fields' "
                         f"shape {tuple(x.shape)}; align the spatial axes last") from error
    dims = tuple(dims)
    return (weights * x).sum(dims) / weights.sum(dims)


def bias(pred: Tensor, target: Tensor, weights: Tensor, dims: Sequence[int] = (-1,),
         mask: Tensor | None = None) -> Tensor:
    """Weighted mean error mean_w(f - o) over ``dims`` (over the points where ``mask`` is True)."""
    return _weighted_mean(pred - target, weights, dims, mask)


def rmse(pred: Tensor, target: Tensor, weights: Tensor, dims: Sequence[int] = (-1,),
         mask: Tensor | None = None) -> Tensor:
    """sqrt(mean_w((f - o)²)) over ``dims`` (include the time axis to average MSE over time first)."""
    return torch.sqrt(_weighted_mean((pred - target) ** 2, weights, dims, mask))


def acc(
    pred: Tensor, target: Tensor, climatology: Tensor, weights: Tensor, dims: Sequence[int] = (-1,),
    centred: bool = False, mask: Tensor | None = None,
) -> Tensor:
    """Anomaly correlation coefficient over ``dims``; uncentred (WeatherBench 2) unless ``centred``."""
    f, o = pred - climatology, target - climatology
    if centred:
        f = f - _weighted_mean(f, weights, dims, mask).reshape(_kept_shape(f, dims))
        o = o - _weighted_mean(o, weights, dims, mask).reshape(_kept_shape(o, dims))
    covariance = _weighted_mean(f * o, weights, dims, mask)
    return covariance / torch.sqrt(_weighted_mean(f * f, weights, dims, mask) *
                                   _weighted_mean(o * o, weights, dims, mask))


def _kept_shape(x: Tensor, dims: Sequence[int]) -> list[int]:
    """``x``'s shape with the reduced ``dims`` set to 1 (for broadcasting a reduction back)."""
    reduced = {d % x.dim() for d in dims}
    return [1 if i in reduced else n for i, n in enumerate(x.shape)]


def angular_power_spectrum(
    x: Tensor, *, ordering: str, lmax: int | None = None, iterations: int = 3, other: Tensor | None = None
) -> Tensor:
    """C_l (or the cross-spectrum with ``other``) of HEALPix maps ``[..., N]``, ``[..., lmax+1]``.

    ``ordering`` is "nest", "ring" or "face" (then ``[..., 12, nside, nside]``); lmax defaults
    to 3 nside - 1 like ``healpy.anafast``.
    """
    nside = nside_of(x, ordering)
    sht = _sht(nside, max_lmax(nside) if lmax is None else lmax, iterations, x.device, x.dtype)
    alm = sht.analysis(to_nest(x, ordering))
    return power_spectrum(alm, None if other is None else sht.analysis(to_nest(other, ordering)))


@functools.lru_cache(maxsize=8)
def _sht(nside: int, lmax: int, iterations: int, device: torch.device, dtype: torch.dtype) -> HealpixSHT:
    """The transform on ``device`` in ``dtype``, cached (its Legendre tables are the expensive part)
    and used only here: nothing outside this module holds it."""
    return HealpixSHT(nside, lmax, iterations=iterations).to(device, dtype)
