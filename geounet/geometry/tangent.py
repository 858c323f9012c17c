"""Tangent vector fields on the unit sphere in the 3-D embedding, and (u, v) converters.

A tangent vector field on S² is stored as the 3-D vector ``w(p) ∈ R³`` with ``w(p) · p = 0``
at every point ``p``: the representation has no frame, so nothing is singular at the poles,
and a rotation R of the sphere acts on it as ``(R w)(p) = R w(R⁻¹ p)``. Winds come as
eastward / northward components (u, v) in the local frame of longitude λ and latitude φ,

    east(λ)     = (-sin λ,        cos λ,        0    ),
    north(λ, φ) = (-sin φ cos λ,  -sin φ sin λ,  cos φ),     w = u east + v north,

with (east, north, p) a right-handed orthonormal frame. The frame depends on λ, which is
undefined at the poles: a grid point at a pole carries the longitude of its grid column,
so (u, v) there means the frame of that column (as on a lat-lon grid), and the round trip
is exact for every point given with its (λ, φ).
"""

from __future__ import annotations

import math

import healpy
import numpy as np
import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.geometry.healpix import npix, validate_nside


def unit_vectors(lon: Tensor, lat: Tensor) -> Tensor:
    """Points ``[..., 3]`` of longitude ``lon`` and latitude ``lat`` (radians, same shape)."""
    return torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=-1)


def east_north(lon: Tensor, lat: Tensor) -> tuple[Tensor, Tensor]:
    """The unit ``east`` and ``north`` vectors ``[..., 3]`` at ``(lon, lat)`` (radians)."""
    zero = torch.zeros_like(lon)
    east = torch.stack([-lon.sin(), lon.cos(), zero], dim=-1)
    north = torch.stack([-lat.sin() * lon.cos(), -lat.sin() * lon.sin(), lat.cos()], dim=-1)
    return east, north


def vectors_from_uv(u: Tensor, v: Tensor, lon: Tensor, lat: Tensor) -> Tensor:
    """``w = u east + v north``: ``u, v [..., N]`` at points ``lon, lat [N]`` -> ``[..., N, 3]``."""
    _check_points(u, lon, lat)
    if v.shape != u.shape:
        raise GeounetError(f"u and v must have one shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    east, north = east_north(lon.to(u), lat.to(u))  # [N, 3] each
    return u[..., None] * east + v[..., None] * north


def uv_from_vectors(w: Tensor, lon: Tensor, lat: Tensor) -> tuple[Tensor, Tensor]:
    """``(u, v) = (w · east, w · north)``, each ``[..., N]``, from ``w [..., N, 3]`` at ``lon, lat [N]``.

    The normal part ``w · p`` is dropped: project with :func:`project_tangent` first if it
    should be checked."""
    if w.shape[-1] != 3:
        raise GeounetError(f"vectors must have 3 components in the last dim, got shape {tuple(w.shape)}")
    _check_points(w[..., 0], lon, lat)
    east, north = east_north(lon.to(w), lat.to(w))
    return (w * east).sum(-1), (w * north).sum(-1)


def project_tangent(w: Tensor, normals: Tensor) -> Tensor:
    """``w - (w · n) n``: the part of ``w [..., 3]`` tangent to the unit ``normals`` (the
    points themselves on the unit sphere), which broadcast against ``w``: ``[N, 3]`` for
    ``w [..., N, 3]``, ``[N, 1, 3]`` for ``w [..., N, C, 3]``."""
    n = normals.to(w)
    return w - (w * n).sum(-1, keepdim=True) * n


def latlon_points(lat_deg: Tensor, lon_deg: Tensor) -> tuple[Tensor, Tensor]:
    """``(lon [H W], lat [H W])`` in radians of a lat-lon grid given by its axes in degrees,
    flattened row-major (latitude rows, longitude columns)."""
    lat = torch.as_tensor(lat_deg, dtype=torch.float64) * (math.pi / 180)
    lon = torch.as_tensor(lon_deg, dtype=torch.float64) * (math.pi / 180)
    grid_lat, grid_lon = torch.meshgrid(lat, lon, indexing="ij")
    return grid_lon.reshape(-1), grid_lat.reshape(-1)


def healpix_points(nside: int) -> tuple[Tensor, Tensor]:
    """``(lon [12 nside²], lat [12 nside²])`` in radians of the HEALPix pixel centres, NEST order."""
    theta, phi = healpy.pix2ang(validate_nside(nside), np.arange(npix(nside)), nest=True)
    return torch.from_numpy(phi).to(torch.float64), torch.from_numpy(0.5 * np.pi - theta).to(torch.float64)


def _check_points(values: Tensor, lon: Tensor, lat: Tensor) -> None:
    if lon.shape != lat.shape or lon.dim() != 1 or values.shape[-1] != lon.shape[0]:
        raise GeounetError(f"expected values [..., N] with lon, lat [N]; got values {tuple(values.shape)}, "
                           f"lon {tuple(lon.shape)}, lat {tuple(lat.shape)}")
