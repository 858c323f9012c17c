"""SO(3) behaviour of the spherical-harmonic Multi-ResNet (HealpixSHHierarchy, E_i = id).

Rotations are realised independently of geounet: a field f = Σ c_lm Y_lm (real harmonics from
scipy's complex ones) is evaluated at the pixel centres (healpy, NEST) and its rotation
f_R(p) = f(R^T p), R from scipy's ``Rotation.random``, at the back-rotated centres.

- **The encoder commutes with rotations exactly.** The Multi-ResNet's skip at level j is
  P_j ... P_{I-1} lift(x); for f of degree <= L_I the "spectral" projection is truncation to
  degree L_j, which commutes with every rotation, and the pointwise lift commutes with
  everything (P 1 = 1 on SH bands, so its bias passes through). Checked against the lift of
  the truncated expansion evaluated at the rotated level-j centres: 1e-11 relative (measured
  ~5e-15 with another field and rotation). The default "pixel" projection is the
  least-squares fit in the pixel inner product, which HEALPix does not make
  degree-separating: it commutes only up to that aliasing (measured with another field and
  rotation: 1.2e-2 at level 1, 3.5e-2 at level 0); tolerance 1e-1, and above 1e-3: it is
  not exact.
- **The zero-initialised model is exactly equivariant.** With every residual branch zero the
  model is head ι L ... ι L U_0(P_0 lift x) with U_0 linear (:func:`~geounet.models.unet.zero_init_residuals`):
  pointwise linear maps, band projections and band-limited interpolations, so with the
  "spectral" projection U(f_R) = U(f)_R to round-off (tolerance 1e-10) for f of degree
  <= L_I; with the "pixel" projection it inherits the encoder's aliasing (tolerance 1e-1).
- **The trained-shape model is equivariant only as far as its operators allow.** Graph
  operators on the HEALPix 8-neighbour stencils and the pointwise nonlinearities (whose output
  leaves the band and aliases) break exactness. Measured at random initialisation, nside 8,
  inputs of degree <= 4, as the relative error ‖U(f_R) - U(f)_R‖ / ‖U(f_R) - mean‖ (U(f)_R by a
  degree-16 least-squares fit of the output, evaluated at the rotated centres): isotropic
  kernels (the distance as the only edge feature) 0.134 mean over seeds 0 to 9 (0.068 to
  0.303), the default kernels with the local (east, north) frame 0.577 (0.267 to 0.891): the
  frame terms are not rotation-invariant. The test takes seeds 0 to 3 (means 0.167 and 0.507)
  and requires the isotropic mean below 0.25 and the default mean above 0.3 (the negative
  control).
"""

from __future__ import annotations

import functools

import healpy as hp
import numpy as np
import pytest
import scipy.special as sp
import torch
from scipy.spatial.transform import Rotation

from geounet.hierarchy import HealpixSHHierarchy
from geounet.models import build_unet

NSIDE = 8


@functools.cache
def sh_hierarchy(projection: str = "pixel") -> HealpixSHHierarchy:
    """nside 2, 4, 8 with bands L = 4, 8, 16, float64 (built once per module)."""
    return HealpixSHHierarchy(NSIDE, 3, projection=projection).to(dtype=torch.float64)


def real_harmonics(lmax: int, points: np.ndarray) -> np.ndarray:
    """Real orthonormal Y_lm at unit vectors ``points [P, 3]``, ``[P, (lmax + 1)²]``, degree-major."""
    theta, phi = np.arccos(np.clip(points[:, 2], -1, 1)), np.arctan2(points[:, 1], points[:, 0])
    columns = []
    for ell in range(lmax + 1):
        for m in range(-ell, ell + 1):
            y = sp.sph_harm_y(ell, abs(m), theta, phi)
            columns.append(y.real if m == 0 else np.sqrt(2) * (y.real if m > 0 else y.imag))
    return np.stack(columns, axis=-1)


def centres(nside: int) -> np.ndarray:
    """Pixel centres ``[12 nside², 3]`` in NEST order, from healpy."""
    return np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=-1)


def field(coeffs: np.ndarray, nside: int, rotation: np.ndarray | None = None) -> torch.Tensor:
    """``[1, N, C]`` pixel values of f = Σ c_lm Y_lm (``coeffs [(L + 1)², C]``), or of f(R^T p)."""
    lmax = int(round(np.sqrt(coeffs.shape[0]))) - 1
    points = centres(nside) if rotation is None else centres(nside) @ rotation  # rows R^T p
    return torch.from_numpy(real_harmonics(lmax, points) @ coeffs)[None]


def rotated_by_fit(y: torch.Tensor, nside: int, lmax: int, rotation: np.ndarray) -> torch.Tensor:
    """``y [1, N, C]`` rotated through its degree-``lmax`` least-squares expansion."""
    coeffs = np.linalg.lstsq(real_harmonics(lmax, centres(nside)), y[0].numpy(), rcond=None)[0]
    return field(coeffs, nside, rotation)


def encoder_skips(model, x: torch.Tensor, hierarchy) -> list[torch.Tensor]:
    """The skips E_i v_i of levels I .. 0: v_I = lift(x), v_{i-1} = P_{i-1} E_i v_i."""
    skips = [model.encoders[str(hierarchy.finest_level)](model.lift(x), hierarchy)]
    for level in range(hierarchy.finest_level, 0, -1):
        coarse = hierarchy.restrict(skips[-1], level)
        skips.append(coarse if level == 1 else model.encoders[str(level - 1)](coarse, hierarchy))
    return skips


@pytest.mark.parametrize(("projection", "tol", "inexact"), [("spectral", 1e-11, None), ("pixel", 1e-1, 1e-3)])
def test_the_encoder_commutes_with_rotations(projection, tol, inexact):
    hierarchy = sh_hierarchy(projection)
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, width=4).double()
    rng = np.random.default_rng(0)
    coeffs = rng.standard_normal(((hierarchy.lmax[-1] + 1) ** 2, 2))  # degree <= L_I = 16
    rotation = Rotation.random(random_state=1).as_matrix()
    with torch.no_grad():
        skips = encoder_skips(model, field(coeffs, NSIDE, rotation), hierarchy)
        errors = []
        for level, skip in zip(range(hierarchy.finest_level, -1, -1), skips, strict=True):
            band = (hierarchy.lmax[level] + 1) ** 2
            expected = model.lift(field(coeffs[:band], hierarchy.nside_at(level), rotation))  # lift of (P_j f)_R
            errors.append(((skip - expected).abs().max() / expected.abs().max()).item())
    assert max(errors) < tol, errors
    if inexact is not None:
        assert max(errors[1:]) > inexact, errors  # the pixel projection aliases: not exact


@pytest.mark.parametrize(("projection", "tol"), [("spectral", 1e-10), ("pixel", 1e-1)])
def test_the_zero_initialised_multiresnet_is_equivariant(projection, tol):
    hierarchy = sh_hierarchy(projection)
    torch.manual_seed(0)
    model = build_unet(hierarchy, 2, 1, width=4, zero_init=True).double()
    rng = np.random.default_rng(2)
    coeffs = rng.standard_normal(((hierarchy.lmax[-1] + 1) ** 2, 2))
    rotation = Rotation.random(random_state=3).as_matrix()
    with torch.no_grad():
        y = model(field(coeffs, NSIDE), hierarchy)
        y_rotated = model(field(coeffs, NSIDE, rotation), hierarchy)
    expected = rotated_by_fit(y, NSIDE, hierarchy.lmax[-1], rotation)
    error = ((y_rotated - expected).norm() / (expected - expected.mean()).norm()).item()
    assert error < tol


def equivariance_error(seed: int, **options) -> float:
    """‖U(f_R) - U(f)_R‖ / ‖U(f_R) - mean‖ at random initialisation, f of degree <= 4 (module docstring)."""
    hierarchy = sh_hierarchy()
    torch.manual_seed(seed)
    model = build_unet(hierarchy, 2, 1, width=8, **options).double()
    rng = np.random.default_rng(seed)
    coeffs = rng.standard_normal((25, 2))
    rotation = Rotation.random(random_state=10 + seed).as_matrix()
    with torch.no_grad():
        y = model(field(coeffs, NSIDE), hierarchy)
        y_rotated = model(field(coeffs, NSIDE, rotation), hierarchy)
    expected = rotated_by_fit(y, NSIDE, hierarchy.lmax[-1], rotation)
    return ((y_rotated - expected).norm() / (y_rotated - y_rotated.mean()).norm()).item()


def test_isotropic_kernels_keep_the_model_nearly_equivariant_and_frame_kernels_do_not():
    isotropic = [equivariance_error(seed, edge_features=[2]) for seed in range(4)]
    framed = [equivariance_error(seed) for seed in range(4)]  # (east, north, distance): the negative control
    assert np.mean(isotropic) < 0.25, isotropic
    assert np.mean(framed) > 0.3, framed
