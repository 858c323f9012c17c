import healpy as hp
import numpy as np
import pytest
import torch

from geounet.functional.sht import from_healpy_alm, to_healpy_alm
from geounet.geometry.healpix import from_nest, to_nest
from geounet.hierarchy.healpix_sh import HealpixSHHierarchy
from geounet.testing import (
    check_constants_and_integrals,
    check_device_consistency,
    check_gradients,
    check_graphs,
    check_mass,
    check_orthogonal_projection,
)

# Measured (float64, 20 Jacobi iterations): projection and constants to ~1e-14, nestedness
# on band-limited signals to ~1e-14; the declared tolerance leaves a margin.
TOL = 1e-11


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These tests run thousands of small transforms: intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hierarchy():
    return HealpixSHHierarchy(8, 3)  # nside 2, 4, 8 with lmax 4, 8, 16


@pytest.fixture(scope="module")
def spectral():
    return HealpixSHHierarchy(8, 3, projection="spectral")


def _band_limited(h, level, channels=3, seed=0):
    """Pixel values at ``level`` of a random function of degree <= L_level, [2, N, C]."""
    np.random.seed(seed)
    lmax = h.lmax[level]
    alms = [hp.synalm(np.ones(lmax + 1), lmax=lmax) for _ in range(2 * channels)]
    dense = from_healpy_alm(torch.from_numpy(np.stack(alms)), lmax).reshape(2, channels, lmax + 1, lmax + 1)
    return h.sht(level).synthesis(dense).transpose(1, 2)


def test_invariants_that_hold(hierarchy):
    check_mass(hierarchy)
    check_orthogonal_projection(hierarchy, TOL)
    check_constants_and_integrals(hierarchy, TOL)  # constants; integrals are declared not preserved
    check_graphs(hierarchy)
    assert hierarchy.lmax == [4, 8, 16] and not hierarchy.preserves_integrals


@pytest.mark.parametrize("jacobi", ["folded", "iterated"])
def test_gradcheck(jacobi):
    """float64 gradcheck of both projections (linear maps: the iteration count is irrelevant;
    the folded operator's adjoint is its transpose)."""
    for projection in ("pixel", "spectral"):
        check_gradients(HealpixSHHierarchy(2, 2, iterations=2, projection=projection, jacobi=jacobi))


@pytest.mark.parametrize("projection", ["pixel", "spectral"])
def test_folded_jacobi_gives_the_iterated_projections(projection):
    """Folding the iterations into p_k(A0 S) changes no restriction or prolongation beyond round-off."""
    folded, iterated = (HealpixSHHierarchy(8, 3, iterations=20, projection=projection, jacobi=jacobi)
                        for jacobi in ("folded", "iterated"))
    for level in range(1, 3):
        fine = torch.randn(2, folded.num_nodes(level), 3, dtype=torch.float64)
        coarse = torch.randn(2, folded.num_nodes(level - 1), 3, dtype=torch.float64)
        torch.testing.assert_close(folded.restrict(fine, level), iterated.restrict(fine, level), rtol=0, atol=1e-12)
        torch.testing.assert_close(folded.prolong(coarse, level - 1), iterated.prolong(coarse, level - 1),
                                   rtol=0, atol=1e-12)


def test_fewer_iterations_leave_an_aliasing_error_that_decays_geometrically(hierarchy):
    """restrict ∘ prolong on V_1 (L = 2 nside at nside 4, the slowest analysis): the error of k
    iterations is (I - A0 S)^{k+1} applied to the exact coefficients, so it falls by a factor
    per iteration and reaches round-off at the default 20."""
    x = _band_limited(hierarchy, 1)
    errors = []
    for k in (0, 1, 3, 10, 20):
        h = HealpixSHHierarchy(8, 3, iterations=k)
        errors.append((h.restrict(h.prolong(x, 1), 2) - x).abs().max().item())
    assert errors == sorted(errors, reverse=True) and errors[0] > 1e-2 and errors[-1] < TOL
    assert errors[3] < errors[1] ** 3  # geometric: seven more iterations, at least cubed


def test_spectral_projection_invariants(spectral):
    """Truncation: idempotent and reproduces constants; self-adjoint only to ~1e-1."""
    check_constants_and_integrals(spectral, TOL)
    with pytest.raises(AssertionError, match="not self-adjoint") as failure:
        check_orthogonal_projection(spectral, TOL)
    deviation = float(str(failure.value).split("max deviation ")[1].split(" ")[0])
    assert 1e-3 < deviation < 0.5  # measured ~1e-1
    x = torch.randn(2, spectral.num_nodes(2), 3, dtype=torch.float64)
    qx = spectral.prolong(spectral.restrict(x, 2), 1)
    torch.testing.assert_close(spectral.prolong(spectral.restrict(qx, 2), 1), qx, rtol=0, atol=TOL)


@pytest.mark.parametrize("name", ["hierarchy", "spectral"])
def test_nestedness_on_band_limited_signals(name, request):
    h = request.getfixturevalue(name)
    for level in range(h.num_levels - 1):
        x = _band_limited(h, level, seed=level)
        roundtrip = h.restrict(h.prolong(x, level), level + 1)
        torch.testing.assert_close(roundtrip, x, rtol=0, atol=TOL)


def test_nestedness_fails_for_arbitrary_pixels(hierarchy):
    """V_i has (L_i + 1)² < N_i dimensions: restrict ∘ prolong keeps only the band-limited part."""
    x = torch.randn(1, hierarchy.num_nodes(1), 1, dtype=torch.float64)
    assert (hierarchy.restrict(hierarchy.prolong(x, 1), 2) - x).abs().max() > 0.1


def test_restrict_matches_healpy_pipeline(hierarchy):
    """restrict = alm2map(map2alm(x, lmax=L_{i-1}, iter=20), nside_{i-1}) for any map x."""
    x = torch.randn(1, hierarchy.num_nodes(2), 1, dtype=torch.float64)
    ring = from_nest(x[0, :, 0], "ring").numpy()
    alm = hp.map2alm(ring, lmax=8, iter=20)
    expected = to_nest(torch.from_numpy(hp.alm2map(alm, 4, lmax=8)), "ring")
    torch.testing.assert_close(hierarchy.restrict(x, 2)[0, :, 0], expected, rtol=0, atol=1e-12)


def test_prolong_is_band_limited_interpolation(hierarchy):
    np.random.seed(4)
    alm = hp.synalm(np.ones(9), lmax=8)
    coarse = to_nest(torch.from_numpy(hp.alm2map(alm, 4, lmax=8)), "ring")
    fine = to_nest(torch.from_numpy(hp.alm2map(alm, 8, lmax=8)), "ring")
    torch.testing.assert_close(hierarchy.prolong(coarse[None, :, None], 1)[0, :, 0], fine, rtol=0, atol=TOL)


def test_spectral_restrict_commutes_with_rotations(spectral, hierarchy):
    """Truncation commutes with rotation (healpy.Rotator.rotate_alm as the reference).

    The "pixel" projection differs from truncation on V_i by the quadrature aliasing
    between degrees <= 8 and 9..16 at nside 8 (measured ~1e-1 here).
    """
    np.random.seed(5)
    alm = hp.synalm(np.ones(17), lmax=16)
    rotator = hp.Rotator(rot=[30.0, -20.0, 75.0], deg=True)
    rotated = rotator.rotate_alm(alm)
    fine = spectral.sht(2).synthesis(from_healpy_alm(torch.from_numpy(rotated), 16))[None, :, None]
    truncated = from_healpy_alm(torch.from_numpy(alm), 16)[:9, :9]
    expected_alm = rotator.rotate_alm(to_healpy_alm(truncated).numpy())
    expected = spectral.sht(1).synthesis(from_healpy_alm(torch.from_numpy(expected_alm), 8))
    torch.testing.assert_close(spectral.restrict(fine, 2)[0, :, 0], expected, rtol=0, atol=1e-10)
    aliasing = (hierarchy.restrict(fine, 2)[0, :, 0] - expected).abs().max().item()
    assert 1e-3 < aliasing < 0.5


def test_float32_batched():
    h = HealpixSHHierarchy(4, 2, iterations=5)
    x = torch.randn(2, 5, 192, 3)
    out = h.restrict(x, 1)
    assert out.shape == (2, 5, 48, 3) and out.dtype == torch.float32
    assert h.prolong(out, 0).shape == (2, 5, 192, 3)


def test_lmax_rules_and_errors():
    assert HealpixSHHierarchy(8, 4, lmax_ratio=3.0).lmax == [2, 5, 11, 23]  # capped at 3 nside - 1
    with pytest.raises(ValueError, match="nside must be a power of two"):
        HealpixSHHierarchy(12, 2)
    with pytest.raises(ValueError, match="lmax_ratio must be positive"):
        HealpixSHHierarchy(8, 2, lmax_ratio=0)
    with pytest.raises(ValueError, match="projection must be 'pixel' or 'spectral'"):
        HealpixSHHierarchy(8, 2, projection="l2")


@pytest.mark.cuda
def test_cuda_matches_cpu(hierarchy):
    check_device_consistency(hierarchy, "cuda", tol=1e-10)
