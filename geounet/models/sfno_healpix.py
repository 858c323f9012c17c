"""torch-harmonics' SFNO on HEALPix node signals, through lat-lon regridding.

The Spherical Fourier Neural Operator (Bonev et al. 2023) needs a grid with a fast
spherical-harmonic transform (equiangular or Gauss-Legendre latitude-longitude), not
HEALPix. :class:`SFNOHealpix` makes it a HEALPix model like the others in the
comparison — inputs and outputs ``[B, N, C]`` on the pixels of the task's finest level,
in NEST order or in the face layout of ``HealpixFaceHierarchy`` (the operators' pixel axis
is permuted to match), so it is trained and scored on exactly the same pixels — by composing

    y = R_h · SFNO(R_l · x),      R_l: HEALPix -> lat-lon,   R_h: lat-lon -> HEALPix,

with the fixed sparse operators of :mod:`geounet.functional.regrid` (built once in
float64, held as non-persistent buffers, applied to the node axis). The lat-lon grid is
torch-harmonics' ``"equiangular"`` one: nlat latitudes 90° - 180° j / (nlat - 1) (both
poles included, north first) and nlon longitudes 360° k / nlon, default 2 nside x
4 nside (64 x 128 at nside 32, the shallow-water task's solver grid).

Information loss, both ways (the model cannot undo it; it bounds what the SFNO can fit):

- R_l (``"bilinear"``: healpy's interpolation between the 4 pixels around each grid
  point). 8 nside² grid points receive 12 nside² pixels: at the equator the grid
  spacing (180°/(2 nside - 1) ≈ 2.9° at nside 32) is about 1.6 times the pixel spacing
  (≈ 1.8°), so pixel-scale structure is averaged away and what remains beyond the grid's
  Nyquist degree aliases; near the poles the grid is much denser than the pixels and
  R_l just interpolates. Bilinear interpolation also damps every scale it keeps (a
  low-pass of order h² ∇² with h the pixel spacing).
- R_h (bilinear between the 4 surrounding grid points): the output lives in the range of
  R_h, an 8 nside²-dimensional subspace of the 12 nside² pixel signals, smoothed again
  by the interpolation. A target with pixel-scale content has a part no SFNO can reach.

Both preserve constants exactly (their rows are convex weights), and for a smooth field
the round trip R_h R_l x - x is O(h²) (tested). ``"conservative"`` regridding swaps the
interpolation error for cell averaging (same degrees of freedom).

On the shallow-water task (nside 32, 64 x 128) the balance is uneven. The data *are*
R_h applied to the solver's 64 x 128 fields (same grid, same bilinear operator), so every
target lies in the range of R_h: the output map loses nothing there (least-squares
residual ~1e-6, float32 storage) — an advantage no HEALPix-native model has, since its
output space is all pixel signals. The input map does lose: the round trip R_h R_l Δ
differs from the test increments Δ by 0.6 % (h), 4.2 % (ζ) and 1.3 % (δ) in relative L2.

The SFNO itself is :class:`~geounet.models.baselines.SFNOBaseline` (library defaults,
``width`` = its ``embed_dim``), so :func:`geounet.models.sizing.size_to_parameters` sizes
it like every other baseline; the regridding adds no parameters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from geounet.functional.regrid import regrid_operator
from geounet.geometry.healpix import face_node_of_nest
from geounet.hierarchy.base import Hierarchy
from geounet.models.baselines import SFNOBaseline, check_healpix_call, healpix_model_grid
from geounet.nn.inputs import check_model_input


def equiangular_grid(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray]:
    """torch-harmonics' equiangular grid in degrees: ``lat [nlat]`` from +90 to -90 (poles
    included), ``lon [nlon]`` = 360 k / nlon."""
    from torch_harmonics.quadrature import precompute_latitudes

    colatitudes, _ = precompute_latitudes(nlat, grid="equiangular")
    return 90.0 - np.degrees(np.asarray(colatitudes, dtype=np.float64)), 360.0 * np.arange(nlon) / nlon


def _node_matmul(operator: Tensor, x: Tensor) -> Tensor:
    """Sparse ``operator [M, K]`` applied to the node axis: ``[B, K, C] -> [B, M, C]``."""
    batch, nodes, channels = x.shape
    flat = x.transpose(0, 1).reshape(nodes, batch * channels)  # [K, B C]
    return torch.sparse.mm(operator, flat).reshape(-1, batch, channels).transpose(0, 1)  # [B, M, C]


def _pixels_in_face_order(operator: Tensor, axis: int, nside: int) -> Tensor:
    """Sparse ``operator`` with its NEST pixel ``axis`` (0: rows, 1: columns) renumbered to the
    flattened ``"face"`` layout: the entry of NEST pixel p moves to face node ``face_node_of_nest[p]``."""
    operator = operator.coalesce()
    indices = operator.indices().clone()  # [2, nnz]
    indices[axis] = face_node_of_nest(nside)[indices[axis]]
    return torch.sparse_coo_tensor(indices, operator.values(), operator.shape, check_invariants=True).coalesce()


class SFNOHealpix(nn.Module):
    """SFNO between two regriddings: HEALPix ``[B, 12 nside², C_in] -> [B, 12 nside², C_out]``.

    Args:
        hierarchy: a HEALPix hierarchy; its finest level's nside and node order (NEST or the
            face layout) are the model's.
        width: SFNO ``embed_dim``.
        nlat, nlon: the equiangular grid (default 2 nside x 4 nside).
        method: regridding method, ``"bilinear"`` or ``"conservative"``.
        num_layers, scale_factor: SFNO depth and spectral down-sampling.

    The regridding runs in float32 (float64 for float64 inputs) outside autocast: torch's
    sparse products have no bfloat16 CPU kernel.
    """

    def __init__(self, hierarchy: Hierarchy, in_channels: int, out_channels: int, width: int = 32,
                 nlat: int | None = None, nlon: int | None = None, method: str = "bilinear",
                 num_layers: int = 4, scale_factor: int = 3):
        super().__init__()
        self.nside, self.layout = healpix_model_grid(hierarchy, "SFNOHealpix")
        self.num_pixels = hierarchy.num_nodes(hierarchy.finest_level)
        self.in_channels = in_channels
        nlat, nlon = nlat or 2 * self.nside, nlon or 4 * self.nside
        lat, lon = equiangular_grid(nlat, nlon)
        to_latlon = regrid_operator(lat, lon, self.nside, method, "to_latlon")  # [H W, N] float64, NEST pixels
        to_healpix = regrid_operator(lat, lon, self.nside, method, "to_healpix")  # [N, H W] float64
        if self.layout == "face":
            to_latlon = _pixels_in_face_order(to_latlon, 1, self.nside)
            to_healpix = _pixels_in_face_order(to_healpix, 0, self.nside)
        self.register_buffer("to_latlon", to_latlon, persistent=False)
        self.register_buffer("to_healpix", to_healpix, persistent=False)
        self.sfno = SFNOBaseline(nlat, nlon, in_channels, out_channels, width=width, num_layers=num_layers,
                                 scale_factor=scale_factor)

    def forward(self, x: Tensor, hierarchy: Hierarchy | None = None) -> Tensor:  # [B, N, C_in]
        """The SFNO is tied to its lat-lon grid, so unlike the U-Nets it keeps its regridding
        operators (non-persistent buffers); ``hierarchy``, when given, must have its nside."""
        check_healpix_call("SFNOHealpix", self.nside, self.layout, hierarchy)
        check_model_input(x, self.num_pixels, self.in_channels, next(self.sfno.parameters()).dtype, "SFNOHealpix")
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        to_latlon, to_healpix = self.to_latlon.to(dtype), self.to_healpix.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            grid = _node_matmul(to_latlon, x.to(dtype))  # [B, H W, C_in]
        out = self.sfno(grid)  # [B, H W, C_out]
        with torch.autocast(x.device.type, enabled=False):
            return _node_matmul(to_healpix, out.to(dtype))  # [B, N, C_out]
