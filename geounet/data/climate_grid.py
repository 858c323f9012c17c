"""The spatial grid of the user's climate data and the way to HEALPix NEST and back, with masks.

A :class:`SourceGrid` is the layout of the source (``"latlon"`` with its latitude and
longitude values, or a HEALPix ordering), stored with a run so that forecasts go back to
the grid they came from (:meth:`SourceGrid.describe`, :meth:`SourceGrid.from_description`).

Missing values (NaN at fixed points, e.g. sea-surface temperature over land) travel as a
source mask ``valid [*dims]``. With the regridding operator R (rows summing to 1), a
HEALPix pixel p is valid when all its weight lies on valid points, Σ_s R[p, s] v_s = 1,
and then its value is Σ_s R[p, s] x_s (:meth:`SourceGrid.to_nest_masked`); other pixels
are NaN. On the way back (bilinear, B) a valid source point s gets the average over the
valid pixels of its stencil,

    x_s = Σ_p B[s, p] v_p y_p / Σ_p B[s, p] v_p,

and NaN where the source mask is invalid or no valid pixel is in its stencil
(:meth:`SourceGrid.from_nest`). HEALPix layouts are exact permutations: the masks carry
over pixel by pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import healpy
import numpy as np
import torch
import xarray as xr
from torch import Tensor

from geounet.data.climate_io import PIXEL_DIM, find_latlon, healpix_dims
from geounet.errors import GeounetError
from geounet.functional.regrid import healpix_to_latlon, latlon_to_healpix
from geounet.geometry.healpix import ORDERINGS, from_nest, npix, to_nest

LAYOUTS = ("latlon", *ORDERINGS)
#: a pixel is valid when the weights of its valid source points sum to 1 within this tolerance
COVERAGE_TOLERANCE = 1e-9


class ClimateDataError(GeounetError):
    """The climate data do not fit the request (variables, grid, ordering, values, time axis)."""


@dataclass(frozen=True)
class SourceGrid:
    """The spatial layout of the source: its dims, and lat/lon values for ``"latlon"``."""

    layout: str
    dims: tuple[str, ...]
    lat: np.ndarray | None = None  # [H] as in the file (latlon only)
    lon: np.ndarray | None = None  # [W]

    @classmethod
    def of(cls, da: xr.DataArray, layout: str, nside: int) -> SourceGrid:
        """The grid of ``da`` in ``layout``; ClimateDataError when the dims do not fit."""
        if layout not in LAYOUTS:
            raise ClimateDataError(f"task.layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "latlon":
            try:
                lat_dim, lon_dim = find_latlon(da)
            except ValueError as error:
                raise ClimateDataError(f"variable {da.name!r}: {error}; or, for HEALPix data, set task.layout "
                                       "to its ordering") from error
            return cls(layout, (lat_dim, lon_dim), np.asarray(da[lat_dim].values, dtype=np.float64),
                       np.asarray(da[lon_dim].values, dtype=np.float64))
        dims = healpix_dims(layout)
        stored = da.attrs.get("healpix_order")
        if stored is not None and stored != layout:
            raise ClimateDataError(f"variable {da.name!r} says healpix_order={stored!r} but task.layout is "
                                   f"{layout!r}; set task.layout = {stored!r}")
        if not set(dims) <= set(da.dims):
            hint = ("(face, height, width) dims mean a face layout such as 'face'" if set(healpix_dims("face"))
                    <= set(da.dims) else f"a {PIXEL_DIM!r} dim means 'nest' or 'ring'" if PIXEL_DIM in da.dims
                    else "rename the pixel dimension(s)")
            raise ClimateDataError(f"task.layout {layout!r} keeps pixels in the dims {dims}, but variable "
                                   f"{da.name!r} has dims {list(da.dims)}; {hint}")
        expected = (12, nside, nside) if len(dims) == 3 else (npix(nside),)
        shape = tuple(da.sizes[d] for d in dims)
        if shape != expected:
            raise ClimateDataError(f"variable {da.name!r} has {dict(zip(dims, shape, strict=True))}, which is not "
                                   f"HEALPix nside {nside} in {layout!r} order (expected {expected}); set "
                                   "task.nside to the file's nside")
        return cls(layout, dims)

    def describe(self) -> dict:
        """The grid as plain containers (stored with a run)."""
        return {"layout": self.layout, "dims": list(self.dims),
                "lat": None if self.lat is None else self.lat.tolist(),
                "lon": None if self.lon is None else self.lon.tolist()}

    @classmethod
    def from_description(cls, description: dict) -> SourceGrid:
        """The inverse of :meth:`describe`."""
        lat, lon = description["lat"], description["lon"]
        return cls(description["layout"], tuple(description["dims"]),
                   None if lat is None else np.asarray(lat, dtype=np.float64),
                   None if lon is None else np.asarray(lon, dtype=np.float64))

    def same_as(self, other: SourceGrid) -> bool:
        if self.dims != other.dims:
            return False
        return self.lat is None or (np.array_equal(self.lat, other.lat) and np.array_equal(self.lon, other.lon))

    def difference(self, other: SourceGrid) -> str:
        """How ``other`` differs from this grid, in words ("" when it does not)."""
        if self.layout != other.layout or self.dims != other.dims:
            return f"its grid dims are {list(other.dims)}, the run's {list(self.dims)} ({self.layout})"
        if self.lat is None:
            return ""
        for name, mine, theirs in (("latitudes", self.lat, other.lat), ("longitudes", self.lon, other.lon)):
            if not np.array_equal(mine, theirs):
                return (f"its {theirs.size} {name} {_span(theirs)} are not the run's {mine.size} {name} "
                        f"{_span(mine)}")
        return ""

    def place(self, flat_index: int, nside: int) -> str:
        """Where the source point ``flat_index`` (row-major over ``dims``) lies, in words."""
        if self.lat is not None:
            i, j = divmod(flat_index, self.lon.size)
            return f"latitude {self.lat[i]:g}, longitude {self.lon[j]:g}"
        nest = _nest_index(flat_index, self.layout, nside)
        theta, phi = healpy.pix2ang(nside, nest, nest=True)
        return (f"{self.layout} pixel {flat_index} (latitude {90 - math.degrees(theta):.3g}, "
                f"longitude {math.degrees(phi):.3g})")

    def to_nest(self, values: np.ndarray, nside: int, method: str) -> Tensor:
        """Source values ``[T, *dims]`` -> NEST ``[T, N]`` float64."""
        data = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
        if self.lat is not None:
            return latlon_to_healpix(data, self.lat, self.lon, nside, method=method)
        return to_nest(data, self.layout)

    def coverage(self, valid: np.ndarray, nside: int, method: str) -> Tensor:
        """``[N]`` bool: the pixels whose every source point is valid under the source mask ``valid [*dims]``."""
        weight = self.to_nest(np.asarray(valid, dtype=np.float64)[None], nside, method)[0]  # [N]
        return weight >= 1 - COVERAGE_TOLERANCE

    def to_nest_masked(self, values: np.ndarray, valid: np.ndarray, nside: int, method: str) -> Tensor:
        """Source values ``[T, *dims]`` with the source mask ``valid [*dims]`` -> NEST ``[T, N]``
        float64, NaN at the pixels interpolated from an invalid point (see the module docstring)."""
        if valid.all():
            return self.to_nest(values, nside, method)
        nest = self.to_nest(np.where(valid, values, 0.0), nside, method)  # [T, N]
        nest[:, ~self.coverage(valid, nside, method)] = math.nan
        return nest

    def from_nest(self, values: Tensor, valid: Tensor, source_valid: np.ndarray) -> Tensor:
        """NEST ``values [..., N]`` with the pixel mask ``valid [N]`` -> ``[..., *dims]`` float64 on
        this grid, NaN where ``source_valid [*dims]`` is False or no valid pixel reaches (module docstring)."""
        values, valid = values.double(), valid.bool()
        source_valid = torch.from_numpy(np.asarray(source_valid, dtype=bool))
        if self.lat is None:
            out = from_nest(torch.where(valid, values, math.nan), self.layout)
            return torch.where(source_valid, out, math.nan)
        filled = torch.where(valid, values, 0.0)
        total = healpix_to_latlon(filled, self.lat, self.lon, ordering="nest")  # [..., H, W]
        weight = healpix_to_latlon(valid.double(), self.lat, self.lon, ordering="nest")  # [H, W]
        reached = source_valid & (weight > COVERAGE_TOLERANCE)
        return torch.where(reached, total / torch.where(reached, weight, 1.0), math.nan)


def _span(values: np.ndarray) -> str:
    return f"{values[0]:g} .. {values[-1]:g}" if values.size else "(none)"


def _nest_index(flat_index: int, layout: str, nside: int) -> int:
    """The NEST index of the pixel at row-major position ``flat_index`` of a map in ``layout``."""
    ids = from_nest(torch.arange(npix(nside)), layout).reshape(-1)
    return int(ids[flat_index])
