"""Spherical-harmonic hierarchy on HEALPix: band-limited functions sampled on pixels.

Level i is the HEALPix NEST grid at ``nside_i`` and V_i the band-limited functions of
degree <= L_i, represented by their values at the pixel centres. By default
``L_i = min(2 nside_i, 3 nside_i - 1)``: 2 nside_i is the largest band for which the
HEALPix quadrature, refined by Jacobi iterations, converges (3 nside - 1 is healpy's
default band but is not determined by the samples; see geounet.functional.sht). Then
L_{i-1} = nside_i <= L_i, so V_{i-1} ⊂ V_i.

With S_i^L the synthesis on grid i up to degree L and A_i^L the iterated analysis
(least squares in the equal-area pixel inner product, truncated Neumann series), two
projections are offered; prolong is band-limited interpolation for both,

    prolong_i = S_{i+1}^{L_i} ∘ A_i^{L_i},

    restrict_i = S_{i-1}^{L_{i-1}} ∘ A_i^{L_{i-1}}          projection="pixel" (default)
    restrict_i = S_{i-1}^{L_{i-1}} ∘ T ∘ A_i^{L_i}          projection="spectral"

where T truncates the coefficients to degree L_{i-1}. "pixel" fits the best degree
L_{i-1} function in the pixel inner product (the hierarchy's mass), so prolong ∘ restrict
is an orthogonal projection in that inner product; "spectral" is the L2(S²) projection
of degree-L_i functions (truncation), exactly rotation-equivariant on V_i, but the
HEALPix pixel inner product does not separate degrees exactly, so it is self-adjoint in
the mass inner product only to ~1e-1. The two differ on V_i by that aliasing (largest
for L_i = 2 nside_i). Measured in tests/hierarchy/test_healpix_sh.py (float64, 20
Jacobi iterations, nside 2..16):

- restrict(prolong(x)) == x for x in V_i (pixel values of a degree-L_i function) to
  ~1e-14 (both); for an arbitrary pixel vector it returns its band-limited part
  instead, since V_i has (L_i + 1)² < 12 nside_i² dimensions, so
  ``geounet.testing.check_nestedness`` (random pixel vectors) does not apply;
- Q = prolong ∘ restrict: idempotent to ~1e-14 (both); self-adjoint in the pixel
  inner product to ~1e-14 ("pixel": S p(A0 S) A0 is symmetric for every iteration
  count) or ~1e-1 ("spectral");
- constants are reproduced to ~1e-13; integrals are preserved only up to the HEALPix
  quadrature error of the non-band-limited part of x, so ``preserves_integrals`` is False.

Accuracy against Jacobi iterations. With G = A0 S the Gram matrix of a band in the pixel
inner product (symmetric positive definite for L <= 2 nside), k iterations give the
analysis A_k = p_k(G) A0, p_k(G) = Σ_{j<=k} (I - G)^j, and on a band-limited map with
exact coefficients a the error is A_k S a - a = -(I - G)^{k+1} a: it decays like
ρ^{k+1}, ρ = max |1 - λ(G)|. The samples of a degree-L function over-determine it more
the smaller L / nside is, so ρ is small for the restriction's analysis (L_{i-1} = nside_i)
and largest for the prolongation's (L_i = 2 nside_i): the identities above (restrict ∘
prolong = id on V_i, Q idempotent) hold to about ρ^{k+1}, which is why the default is 20
(round-off). Accuracy does not cost time: every transform folds p_k(G) into one
precomputed block-diagonal operator (``jacobi="folded"``, see geounet.functional.sht), so
an analysis is one quadrature pass and one batched matrix product whatever k; only the
one-off float64 build grows with the band (about (L+1)² unit transforms, and (L+1)⁴/8
stored numbers). ``jacobi="iterated"`` runs the k passes per call instead (2k + 1
transforms per analysis): the same map, for bands whose folded operator exceeds the
memory cap. experiments/bench/README.md measures the errors and times against k.
"""

from __future__ import annotations

import itertools

from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.sht import HealpixSHT, check_lmax
from geounet.hierarchy.healpix import HealpixLevels


class HealpixSHHierarchy(HealpixLevels):
    """Band-limited (spherical-harmonic) hierarchy on HEALPix grids.

    Args:
        nside: finest nside, a power of two.
        num_levels: number of levels I + 1 (coarsest nside at least 1).
        lmax_ratio: L_i = min(floor(lmax_ratio * nside_i), 3 nside_i - 1); default 2.
            Above 2 the pixel values no longer determine the band edge and the analysis
            does not converge there: measured at nside 8 with 20 iterations, prolong ∘
            restrict is an orthogonal projection to 1e-12 (ratio 2), 1e-8 (2.5), 1e-6 (3).
        iterations: Jacobi refinements of every analysis (default 20, which reaches
            float64 round-off for L = 2 nside at nside >= 8; fewer is less exact, and faster
            only where the iterations are not folded).
        projection: "pixel" (least squares in the pixel inner product) or "spectral"
            (truncation of the full-band coefficients); see the module docstring.
        jacobi: how the iterations run, for every transform (see
            :class:`~geounet.functional.sht.HealpixSHT`): "folded" into one precomputed
            operator per transform, "iterated" one by one, or "auto" (folded where its float64
            blocks fit :data:`~geounet.functional.sht.FOLDED_MAX_BYTES`). The same maps to round-off.
    """

    kind = "HealpixSHHierarchy"
    preserves_integrals = False

    def __init__(
        self, nside: int, num_levels: int, lmax_ratio: float = 2.0, iterations: int = 20, projection: str = "pixel",
        jacobi: str = "auto",
    ):
        super().__init__(nside, num_levels)
        if projection not in ("pixel", "spectral"):
            raise GeounetError(f"projection must be 'pixel' or 'spectral', got {projection!r}")
        self.projection = projection
        if not lmax_ratio > 0:
            raise GeounetError(f"lmax_ratio must be positive, got {lmax_ratio}")
        self.lmax_ratio = lmax_ratio
        self.iterations = iterations
        self.jacobi = jacobi
        nsides = [self.nside_at(i) for i in range(num_levels)]
        self.lmax = [check_lmax(n, min(int(lmax_ratio * n), 3 * n - 1)) for n in nsides]
        if any(coarse > fine for coarse, fine in itertools.pairwise(self.lmax)):
            raise GeounetError(f"band limits must not decrease from coarse to fine, got {self.lmax}")
        # full[i]: (nside_i, L_i); down[i]: (nside_i, L_{i-1}), shared by restrict_i and prolong_{i-1};
        # their tables are tensors of this hierarchy, built on first use (or by materialize).
        self._full = [HealpixSHT(n, lmax, iterations=iterations, jacobi=jacobi)
                      for n, lmax in zip(nsides, self.lmax, strict=True)]
        self._down = [None] + [HealpixSHT(n, lmax, iterations=iterations, jacobi=jacobi)
                               for n, lmax in zip(nsides[1:], self.lmax[:-1], strict=True)]

    def __repr__(self) -> str:
        return (f"HealpixSHHierarchy(nside={self.nside}, num_levels={self.num_levels}, "
                f"lmax={self.lmax}, iterations={self.iterations}, projection={self.projection!r}, "
                f"jacobi={self.jacobi!r})")

    def materialize(self) -> HealpixSHHierarchy:
        """Build the level graphs and the tables of every transform restrict and prolong use now
        (``self``, for chaining). The finest band's transform, which only the "spectral" restriction
        uses, is otherwise built by :meth:`sht` on first use."""
        super().materialize()
        full = self._full if self.projection == "spectral" else self._full[:-1]
        for sht in full + self._down[1:]:
            sht.materialize()
        return self

    def space_dimension(self, level: int) -> int:
        """(L_i + 1)² band-limited functions below the finest level; the finest level holds
        the pixel values themselves (the data's space)."""
        self._check_level(level)
        return self.num_nodes(level) if level == self.finest_level else (self.lmax[level] + 1) ** 2

    def sht(self, level: int) -> HealpixSHT:
        """The transform of ``level`` (grid nside_i, band L_i)."""
        self._check_level(level)
        return self._full[level]

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        if self.projection == "pixel":
            alm = self._down[level].analysis(x.transpose(-1, -2))  # [..., C, L_{i-1}+1, L_{i-1}+1]
        else:
            band = self.lmax[level - 1] + 1
            alm = self._full[level].analysis(x.transpose(-1, -2))[..., :band, :band]  # truncated
        return self._full[level - 1].synthesis(alm).transpose(-1, -2)  # [..., N_{i-1}, C]

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        alm = self._full[level].analysis(x.transpose(-1, -2))  # [..., C, L_i+1, M+1]
        return self._down[level + 1].synthesis(alm).transpose(-1, -2)  # [..., N_{i+1}, C]
