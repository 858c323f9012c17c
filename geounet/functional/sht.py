"""Differentiable spherical harmonic transforms on HEALPix grids, in pure torch.

Conventions (those of healpy): orthonormal complex spherical harmonics with the
Condon-Shortley phase,

    Y_lm(θ, φ) = λ_lm(cos θ) e^{i m φ},
    λ_lm(x) = (-1)^m sqrt((2l+1)/(4π) (l-m)!/(l+m)!) P_l^m(x)   (P_l^m without the phase),

and real maps f = Σ_l [a_l0 Y_l0 + 2 Re Σ_{m>0} a_lm Y_lm]. Coefficients are complex
tensors ``[..., lmax+1, mmax+1]`` holding a_lm at ``[l, m]`` (zero where m > l); see
:func:`to_healpy_alm` / :func:`from_healpy_alm` for healpy's packed layout and
:func:`complex_to_real` for the real orthonormal basis (e3nn-style, index l² + l + m).

Synthesis, ring by ring (HEALPix rings are iso-latitude with equispaced pixels
φ_rj = φ0_r + 2π j / n_r):

    G_r(m) = Σ_l λ_lm(cos θ_r) a_lm,     f_rj = Re Σ_{m=0}^{mmax} w_m G_r(m) e^{i m φ0_r} e^{2πi m j / n_r},

with w_0 = 1, w_m = 2: an inverse DFT per ring (m folded modulo n_r). The ring DFTs run
either as one batched FFT per distinct ring length ("grouped", ~nside small FFTs; the
CPU default) or, for all rings at once, through Bluestein's chirp-z identity with FFTs
of one common size ("chirp", a handful of kernels whatever nside; the GPU default).
Analysis is the adjoint with the equal-area quadrature weight 4π/N,

    A0 f = a_lm = (4π/N) Σ_r λ_lm(cos θ_r) e^{-i m φ0_r} FFT(f_r)[m mod n_r],

refined by Jacobi iterations a <- a + A0 (f - S a) exactly like healpy's
``map2alm(iter=k)``. HEALPix has no exact quadrature: with ``iterations`` k the
analysis is the truncated Neumann series a_k = Σ_{j<=k} (I - A0 S)^j A0 f of the least
squares solution (the error decays like ||I - A0 S||^{k+1}; measured in
experiments/bench/README.md). For lmax > 2 nside the iteration does not converge (the
samples do not determine the coefficients). tests/functional/test_sht.py checks this.

The iterated analysis is one linear map, A_k = p_k(G) A0 with the Gram matrix G = A0 S
of the band (a (lmax+1)² square in the real orthonormal coefficients, where A0 = (4π/N) Yᵀ
and S = Y, so G = (4π/N) YᵀY is symmetric) and p_k(G) = Σ_{j<=k} (I - G)^j. With
``jacobi="folded"`` p_k(G) is computed once in float64 (eigendecomposition, p_k(λ) on the
eigenvalues) and the analysis costs one quadrature pass plus one product with it, whatever
k; the build costs about (lmax+1)² unit transforms. G is block diagonal: every ring
length n_r is a multiple of 4, every ring is symmetric under φ -> -φ and the grid under
θ -> π - θ, so Σ_j over a ring couples cos mφ only with
cos m'φ (sin with sin) for m' ≡ ±m mod 4, and λ_lm λ_l'm' summed over mirrored rings
vanishes unless l + m ≡ l' + m' mod 2. The 8 classes (cos / sin, m mod 2, l mod 2) are
therefore independent: p_k(G) is stored as 8 blocks of about (lmax+1)²/8 squared, an
eighth of the dense matrix (:meth:`HealpixSHT.folded_bytes`).

Legendre functions are precomputed in float64 by the standard three-term recurrence in
l with an extended exponent for the seeds λ_mm (so nothing underflows at high m near
the poles), stored once for the northern rings plus the equator and reused for the
south through λ_lm(-x) = (-1)^{l+m} λ_lm(x), and split by the parity of l + m (each
parity meets only the sum or only the difference of mirrored rings). Stored: about
(mmax+1)(lmax+1)(2 nside)/2 numbers (nside 256, lmax 512: ~0.6 GB in float64; the full
table, twice that, exists transiently while building).

A transform is data, like a hierarchy: the Legendre blocks and ring-DFT tables are
tensors it owns, built in float64 on first use (or by :meth:`HealpixSHT.materialize`) and
kept in its ``dtype`` on its ``device``; :meth:`HealpixSHT.to` returns a copy with them
cast and moved, sharing nothing mutable with the original.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import healpy
import numpy as np
import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.tensor_data import copy_moved, map_tensors, mover
from geounet.geometry.healpix import nest_of_ring, npix, validate_nside

RING_METHODS = ("auto", "grouped", "chirp")
JACOBI_METHODS = ("auto", "folded", "iterated")
#: "auto" folds the Jacobi iterations into one operator when its float64 blocks fit in this
FOLDED_MAX_BYTES = 256 * 2**20


def max_lmax(nside: int) -> int:
    """Largest band limit the grid supports: 3 nside - 1 (healpy's default)."""
    return 3 * validate_nside(nside) - 1


def check_lmax(nside: int, lmax: int) -> int:
    """Return ``lmax`` if ``0 <= lmax <= 3 nside - 1``, else a ValueError naming the fix."""
    limit = max_lmax(nside)
    if isinstance(lmax, bool) or not isinstance(lmax, int) or not 0 <= lmax <= limit:
        raise GeounetError(
            f"lmax must be an int in [0, {limit}] for nside {nside} (HEALPix resolves at most "
            f"3 * nside - 1), got {lmax!r}; use a finer grid or a smaller lmax"
        )
    return lmax


# ---------------------------------------------------------------------- Legendre functions


def legendre(lmax: int, mmax: int, x: Tensor) -> Tensor:
    """Orthonormal λ_lm(x) with Condon-Shortley phase, ``[mmax+1, lmax+1, R]`` float64.

    ``x = cos θ`` is ``[R]`` float64 with |x| < 1. Entries with m > l are zero. Seeds
    λ_mm = (-1)^m sqrt((2m+1)!! / (4π (2m)!!)) sin^m θ are carried as mantissa and
    log-scale so they do not underflow; the recurrence

        λ_lm = α_lm (x λ_{l-1,m} - β_lm λ_{l-2,m}),
        α_lm = sqrt((4l² - 1) / (l² - m²)),  β_lm = sqrt(((l-1)² - m²) / (4(l-1)² - 1)),

    renormalises the mantissa whenever it exceeds 2^600.
    """
    x = x.to(torch.float64)
    sin = torch.sqrt((1 - x) * (1 + x))  # [R]
    m = torch.arange(mmax + 1, dtype=torch.float64)[:, None]  # [M, 1]
    # log |λ_mm| = log sqrt(1/4π) + Σ_{k<=m} ½ log((2k+1)/(2k)) + m log sin θ
    steps = 0.5 * torch.log((2 * m[1:] + 1) / (2 * m[1:]))
    log_seed = 0.5 * math.log(1 / (4 * math.pi)) + torch.cat([torch.zeros(1, 1), steps.cumsum(0)]) + m * torch.log(sin)
    sign = 1.0 - 2.0 * (m % 2)  # (-1)^m
    out = torch.zeros(mmax + 1, lmax + 1, x.numel(), dtype=torch.float64)
    prev2 = torch.zeros(mmax + 1, x.numel(), dtype=torch.float64)
    prev1 = torch.zeros_like(prev2)
    scale = log_seed.expand_as(prev2).clone()  # log of the mantissas' common factor
    big, log_big = 2.0**600, 600 * math.log(2.0)
    for ell in range(lmax + 1):
        active = m[:, 0] < ell
        ll = float(ell)
        alpha = torch.sqrt((4 * ll * ll - 1) / (ll * ll - m[active] ** 2))
        beta = torch.sqrt(((ll - 1) ** 2 - m[active] ** 2) / (4 * (ll - 1) ** 2 - 1))
        current = prev1.clone()
        current[active] = alpha * (x * prev1[active] - beta * prev2[active])
        if ell <= mmax:
            current[ell] = sign[ell]  # the seed λ_ll = sign * exp(scale[ell]); rows m >= ell were 0
        huge = current.abs() > big
        current = torch.where(huge, current / big, current)
        prev1 = torch.where(huge, prev1 / big, prev1)
        scale = scale + huge * log_big
        out[: min(ell, mmax) + 1, ell] = (current * torch.exp(scale))[: min(ell, mmax) + 1]
        prev2, prev1 = prev1, current
    return out


# ---------------------------------------------------------------------- ring layout


class _Rings:
    """HEALPix rings ordered north (incl. equator) first, then their southern mirrors.

    Two layouts of the ring pixels (RING order along each ring): padded, ``[R, n_max]``
    with n_max = 4 nside, ``pixels[r, j]`` the NEST index of pixel j of ring r for
    j < n_r and N (a spare zero entry) beyond; and grouped by ring length, the rings of
    each length laid end to end (``groups``, ``grouped_pixels``).
    """

    def __init__(self, nside: int):
        rings = np.arange(1, 4 * nside)  # healpy's 1-based ring numbers
        starts, lengths, cos_theta, _, _ = healpy.ringinfo(nside, rings)
        north = np.arange(2 * nside)  # 0-based rings 0 .. 2 nside - 1 (equator last)
        south = 4 * nside - 2 - north[:-1]  # mirror of each non-equator north ring
        order = np.concatenate([north, south])  # canonical position -> ring
        self.half = 2 * nside  # rings carrying Legendre values
        self.cos_theta = torch.from_numpy(cos_theta[north].copy())  # [H]
        phi0 = healpy.pix2ang(nside, starts, nest=False)[1]  # first pixel's longitude
        self.phi0 = torch.from_numpy(phi0[order].copy())  # [R] canonical order
        self.lengths = torch.from_numpy(lengths[order].astype(np.int64))  # [R] pixels per ring
        self.n_max = 4 * nside
        j = torch.arange(self.n_max)
        self.valid = j[None, :] < self.lengths[:, None]  # [R, n_max]
        ring_index = torch.from_numpy(starts[order])[:, None] + j[None, :]  # RING pixel numbers
        total = npix(nside)
        ring_nest = nest_of_ring(nside)
        self.pixels = torch.where(self.valid, ring_nest[ring_index.clamp(max=total - 1)], total)  # [R, n_max]
        position = np.empty_like(order)
        position[order] = np.arange(order.size)
        self.groups = []  # (canonical positions [G], ring length n) per distinct length
        grouped = []
        for length in np.unique(lengths):
            members = np.nonzero(lengths == length)[0]
            ring_pixels = torch.from_numpy(starts[members])[:, None] + torch.arange(int(length))
            self.groups.append((torch.from_numpy(position[members]), int(length)))
            grouped.append(ring_nest[ring_pixels].reshape(-1))
        self.grouped_pixels = torch.cat(grouped)  # [N] NEST index of each pixel in group order
        self.group_order = torch.argsort(torch.cat([p for p, _ in self.groups]))  # -> canonical


def _chirp(t: Tensor, n: Tensor, sign: int) -> Tensor:
    """e^{sign iπ t² / n} (complex128), with t² reduced modulo 2n in integers for accuracy."""
    angle = sign * math.pi * ((t * t) % (2 * n)).to(torch.float64) / n.to(torch.float64)
    return torch.polar(torch.ones_like(angle), angle)


def _chirp_kernel(size: int, low: Tensor | int, high: int, n: Tensor, sign: int) -> Tensor:
    """Row r: e^{sign iπ t² / n_r} at position t mod P for low_r <= t <= high, else 0; ``[R, P]``.

    Distinct t land on distinct positions because P >= high - low + 1.
    """
    t = torch.arange(size)[None, :]  # position p holds t = p (p <= high) or p - P (p > high)
    t = torch.where(t <= high, t, t - size)
    inside = t >= torch.as_tensor(low).reshape(-1, 1)
    return _chirp(t.abs(), n, sign) * inside


# ---------------------------------------------------------------------- Jacobi blocks


def coefficient_classes(lmax: int, mmax: int) -> list[Tensor]:
    """The real coefficients split into the 8 classes the Gram matrix A0 S never mixes.

    Entries are positions (l (mmax+1) + m) 2 + part in ``view_as_real`` of ``[lmax+1, mmax+1]``
    complex coefficients: part 0 (Re a_lm, m <= l) and part 1 (Im a_lm, 0 < m <= l). Class
    key: (part, m mod 2, l mod 2), see the module docstring; classes are in key order and
    each lists its positions in increasing order.
    """
    ell = torch.arange(lmax + 1)[:, None, None]
    m = torch.arange(mmax + 1)[None, :, None]
    part = torch.arange(2)[None, None, :]
    valid = (m <= ell) & ((part == 0) | (m > 0))  # [L, M, 2]
    key = (part * 4 + (m % 2) * 2 + ell % 2).expand(valid.shape)
    position = torch.arange(valid.numel()).reshape(valid.shape)
    return [position[valid & (key == k)] for k in range(8)]


def jacobi_polynomial(gram: Tensor, iterations: int) -> Tensor:
    """p_k(G) = Σ_{j<=k} (I - G)^j for a symmetric ``gram [..., n, n]``, through its eigenvalues:
    p_k(λ) = Σ_{j<=k} (1 - λ)^j (the sum, not (1 - (1 - λ)^{k+1}) / λ, so λ near 0 is exact)."""
    eigenvalues, vectors = torch.linalg.eigh(gram)
    damped = 1 - eigenvalues
    values, power = torch.ones_like(eigenvalues), torch.ones_like(eigenvalues)
    for _ in range(iterations):
        power = power * damped
        values = values + power
    return (vectors * values[..., None, :]) @ vectors.transpose(-1, -2)


# ---------------------------------------------------------------------- the transform


class HealpixSHT:
    """Analysis / synthesis between NEST HEALPix maps and a_lm, up to ``lmax``.

    Args:
        nside: grid resolution (power of two).
        lmax: band limit, at most 3 nside - 1; default 2 nside.
        mmax: largest order, default ``lmax``.
        iterations: Jacobi refinements of the analysis (healpy's ``iter``), default 3.
        jacobi: how they run: "folded" (p_k(G) precomputed once in float64, then one
            quadrature pass and one block-diagonal product per analysis, whatever k; see the
            module docstring), "iterated" (k synthesis + analysis passes per call) or "auto"
            (folded when its blocks take at most :data:`FOLDED_MAX_BYTES` in float64, else
            iterated, with a warning at the first analysis). Both are the same linear map,
            equal to round-off.
        ring_method: how the ring DFTs run: "grouped" (one FFT per distinct ring length,
            ~nside small FFTs: fastest on CPU), "chirp" (Bluestein chirp-z, all rings in a
            few large FFTs: few kernel launches, for GPUs) or "auto" (grouped on CPU,
            chirp elsewhere). Both are exact DFTs and agree to round-off.

    Maps are ``[..., 12 nside²]`` in NEST order; coefficients ``[..., lmax+1, mmax+1]``
    complex. Both directions are differentiable. The tables live in the transform's
    ``dtype`` on its ``device`` (float64 on the CPU until moved with :meth:`to`). Inputs of
    another dtype (float32 features on a float64 hierarchy) are served by a cast of the tables
    kept beside them, which neither a moved copy nor a pickle inherits; inputs on another
    device by a copy of the tables made for that call.
    """

    def __init__(self, nside: int, lmax: int | None = None, mmax: int | None = None, iterations: int = 3,
                 ring_method: str = "auto", jacobi: str = "auto"):
        self.nside = validate_nside(nside)
        self.lmax = check_lmax(nside, 2 * nside if lmax is None else lmax)
        self.mmax = self.lmax if mmax is None else mmax
        if not 0 <= self.mmax <= self.lmax:
            raise GeounetError(f"mmax must lie in [0, lmax={self.lmax}], got {mmax}")
        if iterations < 0:
            raise GeounetError(f"iterations must be >= 0, got {iterations}")
        if ring_method not in RING_METHODS:
            raise GeounetError(f"unknown ring_method {ring_method!r}; choose one of {RING_METHODS}")
        if jacobi not in JACOBI_METHODS:
            raise GeounetError(f"unknown jacobi {jacobi!r}; choose one of {JACOBI_METHODS}")
        self.ring_method = ring_method
        self.iterations = iterations
        self.jacobi = jacobi
        self.npix = npix(nside)
        self.device, self.dtype = torch.device("cpu"), torch.float64
        rings = _Rings(nside)
        self._half, self._n_max = rings.half, rings.n_max  # rings carrying Legendre values; longest ring
        self._group_shapes = [(positions.numel(), n) for positions, n in rings.groups]  # (rings, length)
        self._tables: dict[str, Any] = {}  # "legendre", "grouped", "chirp": built on first use
        self._casts: dict[tuple, Any] = {}  # (name, dtype) -> the table cast for inputs of that dtype

    def __repr__(self) -> str:
        return (f"HealpixSHT(nside={self.nside}, lmax={self.lmax}, mmax={self.mmax}, iterations={self.iterations}, "
                f"jacobi={self.jacobi!r})")

    # ------------------------------------------------------------------ data

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> HealpixSHT:
        """A copy with its tables on ``device`` and in ``dtype`` (real; complex tables in the
        complex dtype of that precision); tables not built yet are built by the copy. Returns
        ``self`` when nothing would change."""
        if (device is None or torch.device(device) == self.device) and dtype in (None, self.dtype):
            return self
        return self._map_tensors(mover(device, dtype))

    def _map_tensors(self, fn) -> HealpixSHT:
        copied = copy_moved(self, fn, skip=("_casts",))
        copied._casts = {}  # made for the original's dtype, not the copy's
        return copied

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_casts"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _casts={})

    def materialize(self) -> HealpixSHT:
        """Build the tables the transform uses on its device now (``self``, for chaining)."""
        self._table("legendre")
        self._table("chirp" if self._uses_chirp(self.device) else "grouped")
        if self._folds(self.iterations, warn=False):
            self._table("jacobi")
        return self

    def _table(self, name: str, like: Tensor | None = None) -> Any:
        """Table ``name``, built once in float64 and kept in this transform's dtype on its device;
        for an input ``like`` of another dtype its cast (made once), of another device its copy
        there (made per call)."""
        if name not in self._tables:
            build = {"legendre": self._legendre_blocks, "grouped": self._grouped_tables, "chirp": self._chirp_tables,
                     "jacobi": self._jacobi_blocks}
            self._tables[name] = map_tensors(build[name](_Rings(self.nside)), mover(self.device, self.dtype))
        table = self._tables[name]
        if like is None:
            return table
        dtype = like.real.dtype if like.is_complex() else like.dtype
        same_device = like.device.type == self.device.type and self.device.index in (None, like.device.index)
        if not same_device:
            return map_tensors(table, mover(like.device, dtype))
        if dtype == self.dtype:
            return table
        if (name, dtype) not in self._casts:
            self._casts[name, dtype] = map_tensors(table, mover(dtype=dtype))
        return self._casts[name, dtype]

    # ------------------------------------------------------------------ tables

    def _legendre_blocks(self, rings: _Rings) -> list[tuple[int, int, int, Tensor, Tensor]]:
        """λ in blocks ``(m0, m1, parity, lam [m1-m0, k, H], flat [(m1-m0) k])``, float64.

        Row k of a block holds degree l = m + parity + 2k, so each block only carries the
        degrees of one parity of l + m (the ones the even / odd ring combinations need)
        and starts at l = m (no m > l padding); blocks of ~(mmax+1)/8 orders keep the
        padding past lmax small. ``flat`` is the position m (lmax+1) + l of every row in
        the dense [M, L] coefficient grid, or (M)(L) (a spare zero row) past lmax.
        """
        lam = legendre(self.lmax, self.mmax, rings.cos_theta)  # [M, L, H] float64
        rows, spare = self.lmax + 1, (self.mmax + 1) * (self.lmax + 1)
        size = -(-(self.mmax + 1) // 8)
        blocks = []
        for m0 in range(0, self.mmax + 1, size):
            m1 = min(m0 + size, self.mmax + 1)
            for parity in (0, 1):
                count = (self.lmax - m0 - parity) // 2 + 1
                if count <= 0:
                    continue
                m = torch.arange(m0, m1)[:, None]
                ell = m + parity + 2 * torch.arange(count)[None, :]  # [mb, k]
                valid = ell <= self.lmax
                block = lam[m, ell.clamp(max=self.lmax)] * valid[..., None]  # [mb, k, H]
                blocks.append((m0, m1, parity, block, torch.where(valid, m * rows + ell, spare).reshape(-1)))
        return blocks

    def _chirp_tables(self, rings: _Rings) -> dict[str, Any]:
        """Chirps and kernel spectra of the chirp-z ring DFTs (complex128)."""
        n = rings.lengths[:, None]  # [R, 1]
        size = 1 << (rings.n_max + self.mmax).bit_length()  # P >= n_r + mmax + 1
        j = torch.arange(rings.n_max)[None, :]
        m = torch.arange(self.mmax + 1)[None, :]
        phase = torch.polar(torch.ones(rings.phi0.shape[0], self.mmax + 1, dtype=torch.float64),
                            rings.phi0[:, None] * m)  # e^{i m φ0_r}
        weights = torch.where(m == 0, 1.0, 2.0)  # w_m of a real map
        return {
            "size": size,
            "pixels": rings.pixels.reshape(-1),
            "valid": rings.valid.reshape(-1).nonzero().squeeze(1),
            "nest": rings.pixels[rings.valid],
            "in_chirp": _chirp(j, n, -1) * rings.valid,  # e^{-iπ j²/n}
            "in_kernel": torch.fft.fft(_chirp_kernel(size, -(n - 1), self.mmax, n, 1)),  # e^{+iπ t²/n}
            "out_chirp": _chirp(m, n, -1) * phase.conj(),  # e^{-iπ m²/n} e^{-i m φ0}
            "syn_chirp": _chirp(m, n, 1) * phase * weights,  # w_m e^{i m φ0} e^{+iπ m²/n}
            "syn_kernel": torch.fft.fft(_chirp_kernel(size, -self.mmax, rings.n_max - 1, n, -1)),
            "syn_out": _chirp(j, n, 1),  # e^{+iπ j²/n}
        }

    def _grouped_tables(self, rings: _Rings) -> dict[str, Any]:
        """Indices, bins m mod n and phases of the grouped ring FFTs (complex128 phases)."""
        m = torch.arange(self.mmax + 1, dtype=torch.float64)
        phase = torch.polar(torch.ones(rings.phi0.shape[0], m.numel(), dtype=torch.float64),
                            rings.phi0[:, None] * m[None, :])  # [R, M]
        # synthesis weights w_m n_r (w_0 = 1, w_m = 2; n_r undoes ifft's 1 / n_r)
        weights = torch.where(m == 0, 1.0, 2.0)[None, :] * rings.lengths[:, None]
        return {
            "phase": phase,
            "synthesis_phase": phase * weights,
            "pixels": rings.grouped_pixels,
            "order": rings.group_order,
            "ring_order": torch.cat([position for position, _ in rings.groups]),  # canonical ring of each group row
            "bins": [torch.arange(self.mmax + 1) % n for _, n in rings.groups],
        }

    def folded_bytes(self) -> int:
        """Bytes of the folded Jacobi operator in float64: 8 blocks of the largest class squared."""
        largest = max(len(positions) for positions in coefficient_classes(self.lmax, self.mmax))
        return 8 * largest * largest * 8

    def _jacobi_blocks(self, rings: _Rings) -> dict[str, Tensor]:
        """p_k(G) of :data:`iterations` per coefficient class, float64, padded to one size.

        ``operator [8, n, n]`` acts on the class's entries of ``view_as_real(alm)``
        (``index [8 n]``, the spare position 2 (L+1)(M+1) past a class's end), in which
        G = D⁻¹ G_c D with G_c the symmetric Gram matrix of the orthonormal real coefficients
        and D = diag(√2 for m > 0, 1 for m = 0); ``valid`` lists the padded positions that hold
        entries. G's columns are A0 S of unit coefficients, by a float64 transform of this band.
        """
        del rings  # the Gram matrix comes from the transform itself
        classes = coefficient_classes(self.lmax, self.mmax)
        size, spare = max(len(c) for c in classes), 2 * (self.lmax + 1) * (self.mmax + 1)
        exact = HealpixSHT(self.nside, self.lmax, self.mmax, iterations=0, ring_method="grouped")
        order = torch.arange(spare) // 2 % (self.mmax + 1)
        scale = torch.where(order == 0, 1.0, torch.tensor(2.0, dtype=torch.float64).sqrt())  # D, float64
        operator = torch.zeros(8, size, size, dtype=torch.float64)
        chunk = max(1, 2**22 // self.npix)  # unit columns per pass (a few hundred MB of intermediates)
        with torch.no_grad():
            for block, positions in enumerate(classes):
                gram = torch.empty(len(positions), len(positions), dtype=torch.float64)  # [n_c, n_c]
                for start in range(0, len(positions), chunk):
                    columns = positions[start: start + chunk]
                    unit = torch.zeros(len(columns), spare, dtype=torch.float64)
                    unit[torch.arange(len(columns)), columns] = 1.0
                    alm = torch.view_as_complex(unit.reshape(-1, self.lmax + 1, self.mmax + 1, 2))
                    image = exact._analysis0(exact.synthesis(alm))  # [chunk, L, M] = G e_j
                    gram[:, start: start + len(columns)] = torch.view_as_real(image).reshape(len(columns), -1)[
                        :, positions].T
                d = scale[positions]
                symmetric = d[:, None] * gram / d[None, :]  # G_c = D G D⁻¹
                polynomial = jacobi_polynomial((symmetric + symmetric.T) / 2, self.iterations)
                operator[block, : len(positions), : len(positions)] = polynomial / d[:, None] * d[None, :]
        padded = [torch.cat([c, torch.full((size - len(c),), spare)]) for c in classes]
        index = torch.cat(padded)  # [8 n]
        valid = (index < spare).nonzero().squeeze(1)
        return {"operator": operator, "index": index, "valid": valid, "targets": index[valid]}

    # ------------------------------------------------------------------ ring Fourier step

    def _uses_chirp(self, device: torch.device) -> bool:
        return self.ring_method == "chirp" or (self.ring_method == "auto" and device.type != "cpu")

    def _ring_fourier(self, x: Tensor) -> Tensor:
        """F_r(m) = e^{-i m φ0_r} Σ_j f_rj e^{-2πi m j / n_r}, ``[K, R, M]`` for x ``[K, N]``."""
        return self._fourier_chirp(x) if self._uses_chirp(x.device) else self._fourier_grouped(x)

    def _ring_synthesis(self, coeffs: Tensor) -> Tensor:
        """f_rj = Re Σ_m w_m G_r(m) e^{i m φ_rj} for G ``[K, R, M]``; maps ``[K, N]`` (NEST)."""
        return self._synthesis_chirp(coeffs) if self._uses_chirp(coeffs.device) else self._synthesis_grouped(coeffs)

    def _fourier_chirp(self, x: Tensor) -> Tensor:
        """All rings at once by Bluestein's chirp-z identity m j = (m² + j² - (m - j)²) / 2:

        F_r(m) = e^{-i m φ0} e^{-iπ m²/n} Σ_j (f_rj e^{-iπ j²/n}) e^{iπ (m - j)²/n}, a linear
        convolution evaluated with FFTs of one common size P >= n_max + mmax + 1: a few
        kernels whatever nside (the exact DFT at every m, also m >= n_r).
        """
        cached = self._table("chirp", x)
        k, size = x.shape[0], cached["size"]
        padded = torch.cat([x, x.new_zeros(k, 1)], dim=1)[:, cached["pixels"]]  # [K, R n_max]
        u = padded.reshape(k, -1, self._n_max) * cached["in_chirp"]  # [K, R, n_max]
        conv = torch.fft.ifft(torch.fft.fft(u, n=size) * cached["in_kernel"])  # [K, R, P]
        return conv[..., : self.mmax + 1] * cached["out_chirp"]  # [K, R, M]

    def _synthesis_chirp(self, coeffs: Tensor) -> Tensor:
        """The same chirp-z identity: f_rj = Re e^{iπ j²/n} Σ_m (w_m G_r(m) e^{i m φ0} e^{iπ m²/n})
        e^{-iπ (j - m)²/n}."""
        cached = self._table("chirp", coeffs)
        k, size = coeffs.shape[0], cached["size"]
        u = coeffs * cached["syn_chirp"]  # [K, R, M]
        conv = torch.fft.ifft(torch.fft.fft(u, n=size) * cached["syn_kernel"])  # [K, R, P]
        values = (conv[..., : self._n_max] * cached["syn_out"]).real.reshape(k, -1)  # [K, R n_max]
        values = values[:, cached["valid"]]  # [K, N] ring pixels
        return values.new_zeros(values.shape).index_copy(1, cached["nest"], values)

    def _fourier_grouped(self, x: Tensor) -> Tensor:
        """One FFT per distinct ring length (all rings of that length batched), bins m mod n_r."""
        cached = self._table("grouped", x)
        rings = x[:, cached["pixels"]]  # [K, N], ring pixels in group order
        # split, not slices: its backward writes one gradient instead of a zero-filled map per group
        groups = rings.split([count * n for count, n in self._group_shapes], dim=1)
        parts = [torch.fft.fft(block.reshape(x.shape[0], count, n), dim=-1)[..., bins]  # [K, G, M], bin m mod n
                 for block, (count, n), bins in zip(groups, self._group_shapes, cached["bins"], strict=True)]
        fourier = torch.cat(parts, dim=1).index_select(1, cached["order"])  # [K, R, M] canonical
        return fourier * cached["phase"].conj()

    def _synthesis_grouped(self, coeffs: Tensor) -> Tensor:
        """Fold m modulo n_r, then one inverse FFT per distinct ring length."""
        cached = self._table("grouped", coeffs)
        coeffs = coeffs * cached["synthesis_phase"]  # w_m n_r e^{i m φ0_r} G_r(m)
        grouped = coeffs[:, cached["ring_order"]]  # [K, R, M], rings in group order: one gather, then split
        parts = []
        for ring, (_, n), bins in zip(grouped.split([count for count, _ in self._group_shapes], dim=1),
                                      self._group_shapes, cached["bins"], strict=True):  # ring [K, G, M]
            folded = ring.new_zeros(*ring.shape[:2], n).index_add(-1, bins, ring)  # [K, G, n]
            parts.append(torch.fft.ifft(folded, dim=-1).real.reshape(coeffs.shape[0], -1))
        values = torch.cat(parts, dim=1)  # [K, N] in group order
        return values.new_zeros(values.shape).index_copy(1, cached["pixels"], values)

    # ------------------------------------------------------------------ Legendre step

    def _legendre_analysis(self, fourier: Tensor) -> Tensor:
        """a_lm = Σ_r λ_lm(θ_r) F_r(m) for F ``[K, R, M]``; returns ``[K, L, M]`` complex.

        With E = F_north + F_south and O = F_north - F_south (F_south = 0 on the equator),
        a_lm = Σ_{r north} λ_lm(θ_r) (E if l + m is even else O).
        """
        k, half = fourier.shape[0], self._half
        north, south = fourier[:, :half], fourier[:, half:]  # [K, H, M], [K, H-1, M]
        south = torch.cat([south, south.new_zeros(k, 1, south.shape[2])], dim=1)
        sums = [torch.view_as_real(c).permute(2, 1, 0, 3).reshape(self.mmax + 1, half, 2 * k)
                for c in (north + south, north - south)]  # [M, H, 2K] each
        blocks = self._table("legendre", fourier)
        size = blocks[0][1] - blocks[0][0]  # orders per block
        chunks = [part.split(size) for part in sums]  # one backward for all blocks, unlike slices
        values = torch.cat([torch.bmm(lam, chunks[parity][m0 // size]).reshape(-1, 2 * k)
                            for m0, _, parity, lam, _ in blocks])  # [rows, 2K]
        index = torch.cat([flat for *_, flat in blocks])
        out = values.new_zeros((self.mmax + 1) * (self.lmax + 1) + 1, 2 * k).index_copy(0, index, values)
        alm = out[:-1].reshape(self.mmax + 1, self.lmax + 1, k, 2).permute(2, 1, 0, 3)
        return torch.view_as_complex(alm.contiguous())  # [K, L, M]

    def _legendre_synthesis(self, alm: Tensor) -> Tensor:
        """G_r(m) = Σ_l λ_lm(θ_r) a_lm for a ``[K, L, M]``; returns ``[K, R, M]`` complex.

        North G = e + o and south G = e - o, with e (o) the sum over even (odd) l + m.
        """
        k = alm.shape[0]
        flat = torch.view_as_real(alm).permute(2, 1, 0, 3).reshape(-1, 2 * k)  # [M L, 2K]
        flat = torch.cat([flat, flat.new_zeros(1, 2 * k)])  # spare zero row
        blocks = self._table("legendre", alm)
        rows = flat[torch.cat([index for *_, index in blocks])].split([index.numel() for *_, index in blocks])
        parts: tuple[list, list] = ([], [])
        for (m0, m1, parity, lam, _), rhs in zip(blocks, rows, strict=True):
            rhs = rhs.reshape(m1 - m0, -1, 2 * k)  # [mb, k, 2K]
            parts[parity].append(torch.bmm(lam.transpose(1, 2), rhs))  # [mb, H, 2K]
        sums = []
        for blocks in parts:  # consecutive orders from m = 0; missing top orders are zero
            full = torch.cat(blocks)
            full = torch.cat([full, full.new_zeros(self.mmax + 1 - full.shape[0], *full.shape[1:])])
            sums.append(torch.view_as_complex(full.reshape(*full.shape[:2], k, 2)))  # [M, H, K]
        e, o = sums
        rings = torch.cat([e + o, (e - o)[:, :-1]], dim=1)  # north + equator, then south
        return rings.permute(2, 1, 0)  # [K, R, M]

    # ------------------------------------------------------------------ public API

    def synthesis(self, alm: Tensor) -> Tensor:
        """a_lm ``[..., lmax+1, mmax+1]`` complex -> real NEST map ``[..., 12 nside²]``."""
        shape = (self.lmax + 1, self.mmax + 1)
        if not alm.is_complex() or tuple(alm.shape[-2:]) != shape:
            raise GeounetError(f"expected complex coefficients [..., {shape[0]}, {shape[1]}], got "
                             f"{alm.dtype} {tuple(alm.shape)}")
        lead = alm.shape[:-2]
        flat = alm.reshape(-1, *shape)  # [K, L, M]
        return self._ring_synthesis(self._legendre_synthesis(flat)).reshape(*lead, self.npix)

    def _analysis0(self, x: Tensor) -> Tensor:
        """One quadrature pass A0: ``[K, N]`` -> ``[K, L, M]``."""
        return self._legendre_analysis(self._ring_fourier(x)) * (4 * math.pi / self.npix)

    def _folds(self, iterations: int, warn: bool = True) -> bool:
        """Whether an analysis with ``iterations`` applies the folded operator p_k(G)."""
        if iterations == 0 or iterations != self.iterations or self.jacobi == "iterated":
            return False
        if self.jacobi == "folded" or "jacobi" in self._tables or self.folded_bytes() <= FOLDED_MAX_BYTES:
            return True
        if warn:
            warnings.warn(f"HealpixSHT(nside={self.nside}, lmax={self.lmax}): the folded Jacobi operator needs "
                          f"{self.folded_bytes() / 2**20:.0f} MiB > FOLDED_MAX_BYTES, so {iterations} iterations run "
                          f"one by one (slow); pass jacobi='folded' to fold them anyway, or fewer iterations",
                          stacklevel=3)
        return False

    def _apply_folded(self, alm: Tensor) -> Tensor:
        """p_k(G) a for a ``[K, L, M]`` complex: gather the classes, one batched product, scatter."""
        table = self._table("jacobi", alm)
        k = alm.shape[0]
        flat = torch.view_as_real(alm).reshape(k, -1)  # [K, 2 L M]
        flat = torch.cat([flat, flat.new_zeros(k, 1)], dim=1)  # spare zero entry
        blocks = flat[:, table["index"]].reshape(k, 8, -1).permute(1, 2, 0)  # [8, n, K]
        mapped = torch.bmm(table["operator"], blocks).permute(2, 0, 1).reshape(k, -1)  # [K, 8 n]
        out = flat.new_zeros(k, flat.shape[1] - 1).index_copy(1, table["targets"], mapped[:, table["valid"]])
        return torch.view_as_complex(out.reshape(k, self.lmax + 1, self.mmax + 1, 2))

    def analysis(self, x: Tensor, iterations: int | None = None) -> Tensor:
        """Real NEST map ``[..., 12 nside²]`` -> a_lm ``[..., lmax+1, mmax+1]`` complex.

        ``iterations`` other than the transform's run one by one (nothing is folded for them)."""
        if x.is_complex() or x.shape[-1:] != (self.npix,):
            raise GeounetError(f"expected real maps [..., {self.npix}] (nside {self.nside}, NEST), got "
                             f"{x.dtype} {tuple(x.shape)}")
        iterations = self.iterations if iterations is None else iterations
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.npix)  # [K, N]
        alm = self._analysis0(flat)
        if self._folds(iterations):
            return self._apply_folded(alm).reshape(*lead, self.lmax + 1, self.mmax + 1)
        for _ in range(iterations):
            alm = alm + self._analysis0(flat - self._ring_synthesis(self._legendre_synthesis(alm)))
        return alm.reshape(*lead, self.lmax + 1, self.mmax + 1)


# ---------------------------------------------------------------------- coefficient layouts


def to_healpy_alm(alm: Tensor) -> Tensor:
    """``[..., L+1, M+1]`` -> healpy's packed ``[..., n_alm]`` (index m (2L+1-m)/2 + l)."""
    lmax, mmax = alm.shape[-2] - 1, alm.shape[-1] - 1
    l_idx, m_idx = _packed_lm(lmax, mmax)
    return alm[..., l_idx, m_idx]


def from_healpy_alm(packed: Tensor, lmax: int, mmax: int | None = None) -> Tensor:
    """healpy's packed ``[..., n_alm]`` -> ``[..., lmax+1, mmax+1]`` (zeros where m > l)."""
    mmax = lmax if mmax is None else mmax
    l_idx, m_idx = _packed_lm(lmax, mmax)
    if packed.shape[-1] != l_idx.numel():
        raise GeounetError(f"healpy alm for lmax={lmax}, mmax={mmax} has {l_idx.numel()} entries, "
                         f"got {packed.shape[-1]}")
    out = packed.new_zeros(*packed.shape[:-1], lmax + 1, mmax + 1)
    out[..., l_idx, m_idx] = packed
    return out


def _packed_lm(lmax: int, mmax: int) -> tuple[Tensor, Tensor]:
    l_idx, m_idx = healpy.Alm.getlm(lmax, np.arange(healpy.Alm.getsize(lmax, mmax)))
    return torch.from_numpy(l_idx), torch.from_numpy(m_idx)


def complex_to_real(alm: Tensor) -> Tensor:
    """Complex a_lm ``[..., L+1, L+1]`` of a real map -> real coefficients ``[..., (L+1)²]``.

    The real orthonormal basis (no Condon-Shortley phase, e3nn / Wikipedia convention)
    Y_{l,m} = sqrt2 (-1)^m Re Y_lm and Y_{l,-m} = sqrt2 (-1)^m Im Y_lm for m > 0 and
    Y_{l,0} = Y_l0, stored at index l² + l + m. For f = Σ a_l0 Y_l0 + 2 Re Σ a_lm Y_lm
    the coefficients are c_{l,0} = a_l0, c_{l,m} = sqrt2 (-1)^m Re a_lm and
    c_{l,-m} = -sqrt2 (-1)^m Im a_lm.
    """
    lmax = alm.shape[-2] - 1
    l_idx, m_idx = _real_lm(lmax)
    a = alm[..., l_idx, m_idx.abs()]  # [..., (L+1)²]
    sign = torch.where(m_idx % 2 == 0, 1.0, -1.0).to(a.real.dtype) * math.sqrt(2.0)
    return torch.where(m_idx > 0, sign * a.real, torch.where(m_idx < 0, -sign * a.imag, a.real))


def real_to_complex(coeffs: Tensor) -> Tensor:
    """Inverse of :func:`complex_to_real`: ``[..., (L+1)²]`` -> ``[..., L+1, L+1]`` complex."""
    lmax = math.isqrt(coeffs.shape[-1]) - 1
    if (lmax + 1) ** 2 != coeffs.shape[-1]:
        raise GeounetError(f"real coefficients need (lmax+1)**2 entries, got {coeffs.shape[-1]}")
    l_idx, m_idx = _real_lm(lmax)
    sign = torch.where(m_idx % 2 == 0, 1.0, -1.0).to(coeffs.dtype)
    scaled = coeffs * torch.where(m_idx == 0, 1.0, sign / math.sqrt(2.0))  # c_{l,0}, (-1)^m c_{l,±m} / sqrt2
    real = coeffs.new_zeros(*coeffs.shape[:-1], lmax + 1, lmax + 1)
    imag = torch.zeros_like(real)
    up, down = m_idx >= 0, m_idx < 0
    real[..., l_idx[up], m_idx[up]] = scaled[..., up]
    imag[..., l_idx[down], -m_idx[down]] = -scaled[..., down]
    return torch.complex(real, imag)


def _real_lm(lmax: int) -> tuple[Tensor, Tensor]:
    l_idx = torch.cat([torch.full((2 * ell + 1,), ell) for ell in range(lmax + 1)])
    m_idx = torch.cat([torch.arange(-ell, ell + 1) for ell in range(lmax + 1)])
    return l_idx, m_idx


def power_spectrum(alm: Tensor, other: Tensor | None = None) -> Tensor:
    """C_l = (|a_l0|² + 2 Σ_{m>0} |a_lm|²) / (2l + 1) (cross-spectrum with ``other``), ``[..., L+1]``.

    Equals healpy.alm2cl for real maps (mmax = lmax).
    """
    other = alm if other is None else other
    weights = torch.full((alm.shape[-1],), 2.0, dtype=alm.real.dtype, device=alm.device)
    weights[0] = 1.0
    product = (alm * other.conj()).real * weights  # [..., L, M]
    degree = torch.arange(alm.shape[-2], dtype=alm.real.dtype, device=alm.device)
    return product.sum(-1) / (2 * degree + 1)
