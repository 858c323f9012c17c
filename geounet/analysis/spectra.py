"""Natural bases, per-mode spectra and the energy each level's detail space takes of a mode.

The prediction of :mod:`geounet.diffusion.detail_snr` needs the data's spectrum measured
*independently* of the hierarchy: the energy of the data on each mode φ_k of the domain's
natural basis, M-orthonormal on the finest level and ordered by wavenumber,

    P_k = E <x, φ_k>_M² / c            (c the white-noise variance per direction),

so P_k = 1 for white noise. Mode rank k stands for the wavenumber through mode counting
(Weyl: k ∝ κ^d), so a power law P_k ∝ k^{-β/d} gives the exponent β of the per-mode
spectrum |κ|^-β. Bases:

- square (periodic, n x n): the real Fourier basis cos / sin(2π k·x), sorted by |k|;
- sphere (HEALPix): real spherical harmonics up to degree L sampled at the pixel centres,
  sorted by l and orthonormalised in the pixel inner product (Gram-Schmidt in that order
  keeps every span {l <= L'}, the spherical-harmonic hierarchy's V_i);
- mesh: Laplacian eigenfunctions (:func:`geounet.geometry.laplacian.laplacian_eigenbasis`,
  M-orthonormal for the lumped vertex mass), averaged over faces and re-orthonormalised for
  face-valued (cluster) hierarchies.

**Transfer.** T_ik = ‖D_i φ_k‖²_M is the part of mode k that the detail space W_i holds
(Σ_i T_ik = 1). If the data's covariance is diagonal in the basis (stationary fields on
the torus, isotropic ones on the sphere; approximately on meshes),

    E‖D_i x‖² = c Σ_k P_k T_ik                                  (exact under that assumption).

For spectral hierarchies T is the band indicator, so this is the band sum of P. For Haar
spaces T_ik also has the tail (κ h_i)² of coarser modes (a cell mean misses the linear
part of a smooth mode), which is why Haar detail energies saturate at h^{d+2}.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from geounet.diffusion.detail_snr import details
from geounet.errors import GeounetError
from geounet.functional.sht import HealpixSHT, real_to_complex
from geounet.geometry.laplacian import laplacian_eigenbasis
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy


def orthonormalise(functions: Tensor, mass: Tensor) -> Tensor:
    """Gram-Schmidt of ``functions [K, N]`` in <x, y>_M, in order (QR of sqrt(M) Φ^T)."""
    root = mass.to(torch.float64).sqrt()
    q, r = torch.linalg.qr((functions.to(torch.float64) * root).T)  # [N, K]
    q = q * torch.sign(torch.diagonal(r))  # keep each function's sign
    return (q / root[:, None]).T


def square_fourier_basis(n: int) -> Tensor:
    """The real Fourier basis of the periodic ``n x n`` grid (row-major nodes, mass 1/n²), ``[n², n²]``,
    rows sorted by |k|: cos for one of each pair ±k, sin for the other."""
    k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
    kx, ky = (g.reshape(-1) for g in torch.meshgrid(k, k, indexing="ij"))  # [n²] wavenumbers
    index = torch.arange(n * n)
    negative = ((-kx) % n * n + (-ky) % n).long()  # index of -k
    rows, cols = (g.reshape(-1) for g in torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij"))
    phase = 2 * math.pi * (kx[:, None] * rows[None, :] + ky[:, None] * cols[None, :]) / n  # [K, N]
    use_cos = (index <= negative)[:, None]
    basis = torch.where(use_cos, torch.cos(phase), torch.sin(phase))
    basis = basis / torch.sqrt((basis**2).mean(1, keepdim=True))  # unit norm in mass 1/n²
    return basis[torch.argsort(torch.sqrt(kx**2 + ky**2), stable=True)]


def healpix_harmonic_basis(nside: int, lmax: int, mass: Tensor) -> Tensor:
    """Real spherical harmonics up to ``lmax`` at NEST pixel centres, orthonormalised in ``mass``,
    ``[(lmax + 1)², 12 nside²]`` ordered by degree."""
    count = (lmax + 1) ** 2
    coefficients = real_to_complex(torch.eye(count, dtype=torch.float64))  # [K, L+1, L+1]
    return orthonormalise(HealpixSHT(nside, lmax).synthesis(coefficients), mass)


def mesh_eigen_basis(mesh: Mesh, num_modes: int, boundary: str = "neumann") -> Tensor:
    """The first ``num_modes`` Laplacian eigenfunctions at the vertices, ``[K, V]`` (M-orthonormal)."""
    _, psi = laplacian_eigenbasis(mesh, num_modes, boundary)
    return torch.from_numpy(np.ascontiguousarray(psi.T))


def mode_power(x: Tensor, basis: Tensor, mass: Tensor) -> Tensor:
    """P_k = E <x, φ_k>_M² / c for ``x [S, N]`` and an M-orthonormal ``basis [K, N]``, ``[K]``."""
    m = mass.to(torch.float64)
    coefficients = (x.to(torch.float64) * m) @ basis.T  # [S, K]
    return (coefficients**2).mean(0) / m.mean()


def mode_transfer(basis: Tensor, hierarchy: Hierarchy, chunk: int = 512) -> Tensor:
    """T_ik = ‖D_i φ_k‖²_M for ``basis [K, N_I]`` on the finest level, ``[levels, K]``."""
    columns = []
    for part in basis.split(chunk):
        parts = details(part[..., None].to(hierarchy.dtype), hierarchy)
        columns.append(torch.stack([hierarchy.inner(d, d, level) for level, d in enumerate(parts)]))
    return torch.cat(columns, dim=1)


def fit_exponent(power: Tensor, d: int, low: int, high: int) -> float:
    """β of P_k ∝ k^{-β/d}, least squares in log-log over ranks [low, high)."""
    if not 1 <= low < high - 1 or high > len(power):
        raise GeounetError(f"need 1 <= low < high - 1 <= {len(power)} ranks to fit, got [{low}, {high})")
    rank = torch.arange(low, high, dtype=torch.float64) + 0.5
    y = torch.log(power[low:high].clamp_min(torch.finfo(torch.float64).tiny))
    x = torch.log(rank)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(-d * slope)
