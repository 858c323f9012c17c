import healpy as hp
import numpy as np
import pytest
import scipy.special as sp
import torch
from e3nn import o3

from geounet.functional import sht as sht_module
from geounet.functional.sht import (
    HealpixSHT,
    coefficient_classes,
    complex_to_real,
    from_healpy_alm,
    jacobi_polynomial,
    legendre,
    power_spectrum,
    real_to_complex,
    to_healpy_alm,
)
from geounet.geometry.healpix import from_nest, to_nest


def _random_alm(lmax, seed=0):
    """A healpy-packed a_lm of a real band-limited map (white spectrum)."""
    np.random.seed(seed)
    return hp.synalm(np.ones(lmax + 1), lmax=lmax)


def test_legendre_against_scipy():
    x = torch.tensor([-0.99, -0.3, 0.0, 0.41, 0.97], dtype=torch.float64)
    lam = legendre(12, 9, x)  # [M, L, R]
    theta = np.arccos(x.numpy())
    for m in range(10):
        for ell in range(13):
            expected = sp.sph_harm_y(ell, m, theta, 0.0).real if m <= ell else np.zeros(5)
            np.testing.assert_allclose(lam[m, ell].numpy(), expected, rtol=0, atol=1e-13)


def test_legendre_has_no_underflow_trouble_at_high_order():
    """Seeds sin^m θ underflow float64 for m ~ 500 near the pole; values stay finite."""
    x = torch.tensor([np.cos(1e-3), 0.5], dtype=torch.float64)
    lam = legendre(600, 600, x)
    assert torch.isfinite(lam).all()
    theta = np.arccos(0.5)
    for ell, m in [(600, 550), (600, 3), (320, 300)]:
        expected = sp.sph_harm_y(ell, m, theta, 0.0).real
        np.testing.assert_allclose(lam[m, ell, 1].item(), expected, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("ring_method", ["grouped", "chirp"])
@pytest.mark.parametrize("nside,lmax", [(1, 2), (4, 8), (8, 23)])
def test_synthesis_matches_healpy(nside, lmax, ring_method):
    alm = _random_alm(lmax)
    sht = HealpixSHT(nside, lmax, ring_method=ring_method)
    mine = sht.synthesis(from_healpy_alm(torch.from_numpy(alm), lmax))
    ref = to_nest(torch.from_numpy(hp.alm2map(alm, nside, lmax=lmax)), "ring")
    torch.testing.assert_close(mine, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ring_method", ["grouped", "chirp"])
@pytest.mark.parametrize("iterations", [0, 3])
def test_analysis_matches_healpy_map2alm(iterations, ring_method):
    nside, lmax = 8, 16
    ring_map = np.random.default_rng(0).standard_normal(12 * nside**2)  # not band-limited
    ref = hp.map2alm(ring_map, lmax=lmax, iter=iterations)
    sht = HealpixSHT(nside, lmax, iterations=iterations, ring_method=ring_method)
    mine = sht.analysis(to_nest(torch.from_numpy(ring_map), "ring"))
    np.testing.assert_allclose(to_healpy_alm(mine).numpy(), ref, rtol=0, atol=1e-13)


def test_iterated_analysis_converges_on_band_limited_maps():
    """Measured accuracy of the Jacobi-refined quadrature at lmax = 2 nside (nside 8)."""
    nside, lmax = 8, 16
    alm = from_healpy_alm(torch.from_numpy(_random_alm(lmax, seed=3)), lmax)
    sht = HealpixSHT(nside, lmax)
    f = sht.synthesis(alm)
    errors = [(sht.analysis(f, iterations=k) - alm).abs().max().item() for k in (0, 3, 10, 25)]
    assert errors[0] > 1e-3 and errors == sorted(errors, reverse=True)
    assert errors[2] < 1e-8 and errors[3] < 1e-13


@pytest.mark.parametrize("ring_method", ["grouped", "chirp"])
@pytest.mark.parametrize("nside,lmax,mmax,iterations", [(1, 2, None, 4), (4, 8, None, 20), (8, 16, 11, 3),
                                                       (8, 8, None, 1), (16, 32, None, 20)])
def test_folded_analysis_is_the_iterated_one(nside, lmax, mmax, iterations, ring_method):
    """p_k(A0 S) A0 precomputed equals k Jacobi passes, float64, on maps that are not band-limited."""
    x = torch.randn(2, 3, 12 * nside**2, dtype=torch.float64)
    folded, iterated = (HealpixSHT(nside, lmax, mmax, iterations=iterations, ring_method=ring_method, jacobi=j)
                        for j in ("folded", "iterated"))
    expected = iterated.analysis(x)
    torch.testing.assert_close(folded.analysis(x), expected, rtol=0, atol=1e-13 * expected.abs().max().item())


def test_gram_matrix_is_block_diagonal_and_symmetric_over_the_coefficient_classes():
    """G = A0 S never mixes (Re / Im, m mod 2, l mod 2), and D G D⁻¹ is symmetric (D = √2 for m > 0)."""
    nside, lmax = 4, 11  # beyond 2 nside as well: the structure is the grid's, not the band's
    sht = HealpixSHT(nside, lmax, iterations=0)
    classes = coefficient_classes(lmax, lmax)
    positions = torch.cat(classes)
    assert positions.numel() == (lmax + 1) ** 2 and positions.unique().numel() == positions.numel()
    unit = torch.zeros(positions.numel(), 2 * (lmax + 1) ** 2, dtype=torch.float64)
    unit[torch.arange(positions.numel()), positions] = 1.0
    image = sht.analysis(sht.synthesis(torch.view_as_complex(unit.reshape(-1, lmax + 1, lmax + 1, 2))))
    gram = torch.view_as_real(image).reshape(positions.numel(), -1)[:, positions].T  # [K, K] in class order
    key = torch.cat([torch.full((c.numel(),), i) for i, c in enumerate(classes)])
    assert gram[key[:, None] != key[None, :]].abs().max() < 1e-14
    assert gram[key[:, None] == key[None, :]].abs().max() > 0.5
    d = torch.full((positions.numel(),), 2.0**0.5, dtype=torch.float64)
    d[positions // 2 % (lmax + 1) == 0] = 1.0  # m = 0
    symmetric = d[:, None] * gram / d[None, :]
    torch.testing.assert_close(symmetric, symmetric.T, rtol=0, atol=1e-14)


def test_jacobi_polynomial_is_the_neumann_sum():
    matrix = torch.randn(6, 6, dtype=torch.float64)
    gram = torch.eye(6, dtype=torch.float64) + 0.1 * (matrix + matrix.T)
    expected, power = torch.eye(6, dtype=torch.float64), torch.eye(6, dtype=torch.float64)
    for _ in range(7):
        power = power @ (torch.eye(6, dtype=torch.float64) - gram)
        expected = expected + power
    torch.testing.assert_close(jacobi_polynomial(gram, 7), expected, rtol=0, atol=1e-13)
    torch.testing.assert_close(jacobi_polynomial(gram, 0), torch.eye(6, dtype=torch.float64), rtol=0, atol=1e-14)


def test_auto_jacobi_folds_under_the_memory_cap_and_warns_above(monkeypatch):
    x = torch.randn(2, 192, dtype=torch.float64)
    expected = HealpixSHT(4, 8, iterations=5, jacobi="iterated").analysis(x)
    auto = HealpixSHT(4, 8, iterations=5)
    torch.testing.assert_close(auto.analysis(x), expected, rtol=0, atol=1e-13)
    assert "jacobi" in auto._tables
    monkeypatch.setattr(sht_module, "FOLDED_MAX_BYTES", auto.folded_bytes() - 1)
    capped = HealpixSHT(4, 8, iterations=5)
    with pytest.warns(UserWarning, match=r"folded Jacobi operator needs .* jacobi='folded'"):
        torch.testing.assert_close(capped.analysis(x), expected, rtol=0, atol=1e-13)
    assert "jacobi" not in capped._tables
    forced = HealpixSHT(4, 8, iterations=5, jacobi="folded")  # the cap only guides "auto"
    torch.testing.assert_close(forced.analysis(x), expected, rtol=0, atol=1e-13)
    assert "jacobi" not in HealpixSHT(4, 8, iterations=0).materialize()._tables  # nothing to fold


def test_batched_float32_and_layout():
    sht = HealpixSHT(4, 6)
    x = torch.randn(2, 3, 192)
    alm = sht.analysis(x)
    assert alm.shape == (2, 3, 7, 7) and alm.dtype == torch.complex64
    assert torch.all(alm[..., 0, 1:] == 0)  # m > l is zero
    single = sht.analysis(x[1, 2].double())
    torch.testing.assert_close(alm[1, 2].to(torch.complex128), single, rtol=0, atol=1e-5)
    assert sht.synthesis(alm).shape == (2, 3, 192)


def test_ring_methods_agree_in_float32():
    x = torch.randn(3, 12 * 16**2)
    grouped, chirp = HealpixSHT(16, 40, ring_method="grouped"), HealpixSHT(16, 40, ring_method="chirp")
    a, b = grouped.analysis(x), chirp.analysis(x)
    assert (a - b).abs().max() < 1e-5 * a.abs().max()
    assert (grouped.synthesis(a) - chirp.synthesis(a)).abs().max() < 1e-5 * x.abs().max()


@pytest.mark.parametrize("ring_method", ["grouped", "chirp"])
@pytest.mark.parametrize("jacobi", ["folded", "iterated"])
def test_gradcheck_float64(ring_method, jacobi):
    sht = HealpixSHT(2, 4, iterations=3, ring_method=ring_method, jacobi=jacobi)
    x = torch.randn(1, 48, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: torch.view_as_real(sht.analysis(v)), (x,))
    alm = sht.analysis(x.detach()).requires_grad_(True)
    assert torch.autograd.gradcheck(sht.synthesis, (alm,))


def test_healpy_packing_round_trip():
    alm = torch.from_numpy(_random_alm(5))
    dense = from_healpy_alm(alm, 5)
    assert dense.shape == (6, 6) and torch.equal(to_healpy_alm(dense), alm)
    assert dense[2, 1] == alm[hp.Alm.getidx(5, 2, 1)]


def test_power_spectrum_matches_healpy():
    alm, other = _random_alm(10, 1), _random_alm(10, 2)
    dense = from_healpy_alm(torch.from_numpy(alm), 10)
    np.testing.assert_allclose(power_spectrum(dense).numpy(), hp.alm2cl(alm), rtol=1e-12)
    cross = power_spectrum(dense, from_healpy_alm(torch.from_numpy(other), 10)).numpy()
    np.testing.assert_allclose(cross, hp.alm2cl(alm, other), rtol=1e-12)


def _real_sh_scipy(lmax, theta, phi):
    """Real orthonormal SH at points from scipy's complex ones, straight from the definition."""
    columns = []
    for ell in range(lmax + 1):
        for m in range(-ell, ell + 1):
            y = sp.sph_harm_y(ell, abs(m), theta, phi)
            sign = (-1) ** abs(m) * np.sqrt(2)
            columns.append(y.real if m == 0 else sign * (y.real if m > 0 else y.imag))
    return np.stack(columns, axis=-1)  # [P, (L+1)²]


def _evaluate_complex(alm_dense, theta, phi):
    """f(θ, φ) = Σ a_l0 Y_l0 + 2 Re Σ_{m>0} a_lm Y_lm with scipy."""
    lmax = alm_dense.shape[0] - 1
    total = np.zeros_like(theta)
    for ell in range(lmax + 1):
        for m in range(ell + 1):
            term = (alm_dense[ell, m] * sp.sph_harm_y(ell, m, theta, phi)).real
            total += term if m == 0 else 2 * term
    return total


def test_real_basis_round_trip_and_values():
    lmax = 4
    alm = from_healpy_alm(torch.from_numpy(_random_alm(lmax, 5)), lmax)
    real = complex_to_real(alm)
    torch.testing.assert_close(real_to_complex(real), alm, rtol=0, atol=1e-15)
    rng = np.random.default_rng(0)
    theta, phi = np.arccos(rng.uniform(-1, 1, 50)), rng.uniform(0, 2 * np.pi, 50)
    np.testing.assert_allclose(_real_sh_scipy(lmax, theta, phi) @ real.numpy(),
                               _evaluate_complex(alm.numpy(), theta, phi), atol=1e-12)


def test_rotation_with_e3nn_wigner_d():
    """Rotating real coefficients with e3nn's Wigner-D rotates the function: g(v) = f(R^T v).

    e3nn's real harmonics are ours in a permuted frame; the change of basis B_l (orthogonal)
    is fitted per degree, then c' = B_l^T D_l(R) B_l c and g is checked at random points
    against scipy's evaluation of f at the back-rotated points.
    """
    lmax = 4
    alm = from_healpy_alm(torch.from_numpy(_random_alm(lmax, 6)), lmax)
    coeffs = complex_to_real(alm).numpy()
    rng = np.random.default_rng(1)
    points = rng.standard_normal((200, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    theta, phi = np.arccos(points[:, 2]), np.arctan2(points[:, 1], points[:, 0])
    ours = _real_sh_scipy(lmax, theta, phi)  # [P, (L+1)²]
    rotation = o3.rand_matrix(dtype=torch.float64)
    angles = o3.matrix_to_angles(rotation)
    rotated = np.zeros_like(coeffs)
    for ell in range(lmax + 1):
        block = slice(ell * ell, (ell + 1) ** 2)
        theirs = o3.spherical_harmonics(ell, torch.from_numpy(points), True, normalization="integral").numpy()
        basis = np.linalg.lstsq(ours[:, block], theirs, rcond=None)[0]  # ours @ B = theirs
        np.testing.assert_allclose(basis @ basis.T, np.eye(2 * ell + 1), atol=1e-10)
        wigner = o3.wigner_D(ell, *angles).numpy()
        rotated[block] = basis @ wigner @ basis.T @ coeffs[block]
    back = points @ rotation.numpy()  # rows R^T v
    expected = _evaluate_complex(alm.numpy(), np.arccos(np.clip(back[:, 2], -1, 1)), np.arctan2(back[:, 1], back[:, 0]))
    np.testing.assert_allclose(ours @ rotated, expected, atol=1e-5)  # e3nn's angles are ~1e-7 accurate


def test_sht_is_rotation_equivariant_on_band_limited_maps():
    """Turning by π/2 about the z axis permutes HEALPix faces and multiplies a_lm by e^{-imπ/2}."""
    nside, lmax = 4, 8
    sht = HealpixSHT(nside, lmax)
    alm = from_healpy_alm(torch.from_numpy(_random_alm(lmax, 7)), lmax)
    f = sht.synthesis(alm)
    face = from_nest(f, "face")  # [12, 4, 4]
    rows = face.reshape(3, 4, nside, nside)
    turned = to_nest(torch.roll(rows, 1, dims=1).reshape(12, nside, nside), "face")  # f(φ - π/2)
    phase = torch.exp(-0.5j * torch.pi * torch.arange(lmax + 1, dtype=torch.float64))  # complex128
    expected = sht.analysis(f) * phase
    torch.testing.assert_close(sht.analysis(turned), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(turned, sht.synthesis(alm * phase), rtol=0, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"lmax must be an int in \[0, 23\] for nside 8"):
        HealpixSHT(8, 24)
    with pytest.raises(ValueError, match="nside must be a power of two"):
        HealpixSHT(6)
    sht = HealpixSHT(2)
    with pytest.raises(ValueError, match=r"expected real maps \[\.\.\., 48\]"):
        sht.analysis(torch.randn(3, 47))
    with pytest.raises(ValueError, match=r"expected complex coefficients \[\.\.\., 5, 5\]"):
        sht.synthesis(torch.randn(5, 5))
    with pytest.raises(ValueError, match="unknown ring_method 'fft'"):
        HealpixSHT(2, ring_method="fft")
    with pytest.raises(ValueError, match="unknown jacobi 'dense'"):
        HealpixSHT(2, jacobi="dense")
    with pytest.raises(ValueError, match="has 21 entries"):
        from_healpy_alm(torch.zeros(20, dtype=torch.complex128), 5)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    sht = HealpixSHT(16, 32)  # chirp-z rings on CUDA, grouped FFTs on the CPU
    x = torch.randn(2, 12 * 256, dtype=torch.float64)
    torch.testing.assert_close(sht.analysis(x.cuda()).cpu(), sht.analysis(x), rtol=0, atol=1e-10)
    alm = sht.analysis(x)
    torch.testing.assert_close(sht.synthesis(alm.cuda()).cpu(), sht.synthesis(alm), rtol=0, atol=1e-10)


def test_to_casts_the_tables_of_a_copy_and_leaves_the_original_unchanged():
    import pickle

    sht = HealpixSHT(4, 8, iterations=10).materialize()
    before = pickle.dumps(sht)
    x = torch.randn(3, 192, dtype=torch.float64)
    single = sht.to(dtype=torch.float32)
    assert single.dtype == torch.float32 and sht.dtype == torch.float64
    torch.testing.assert_close(single.analysis(x.float()), sht.analysis(x).to(torch.complex64), rtol=0, atol=1e-5)
    single.synthesis(single.analysis(x.float()))
    chirp = HealpixSHT(4, 8, ring_method="chirp").to(dtype=torch.float32)  # tables built by the copy itself
    chirp.synthesis(chirp.analysis(x.float()))
    assert pickle.dumps(sht) == before, "using the float32 copy changed the original transform"
    lam = single._tables["legendre"][0][3]
    assert lam.dtype == torch.float32 and single._tables["grouped"]["phase"].dtype == torch.complex64
    assert sht._tables["legendre"][0][3].dtype == torch.float64


def test_float32_inputs_on_a_float64_transform_use_one_cast_that_copies_and_pickles_leave_out():
    import pickle

    sht = HealpixSHT(4, 8).materialize()
    before = pickle.dumps(sht)
    x = torch.randn(2, 192, dtype=torch.float64)
    first = sht.analysis(x.float())
    torch.testing.assert_close(first, sht.analysis(x).to(torch.complex64), rtol=0, atol=1e-5)
    cast = sht._table("legendre", x.float())
    assert cast[0][3].dtype == torch.float32 and sht._table("legendre", x.float()) is cast  # made once
    assert pickle.dumps(sht) == before and not sht.to(dtype=torch.float32)._casts
