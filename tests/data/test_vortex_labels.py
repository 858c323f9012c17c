"""Okubo-Weiss vortex labels: the spherical velocity gradient, and labels that satisfy their criterion."""

import numpy as np
import pytest

from geounet.datagen.shallow_water import generate_shallow_water
from geounet.datagen.vortex_labels import okubo_weiss, velocity_gradient, vortex_core, vortex_labels
from geounet.errors import GeounetError
from geounet.geometry.healpix import neighbour_table, pixel_vectors

RADIUS = 6.371e6


def _grid(nlat=91, nlon=180):
    return np.linspace(90, -90, nlat), np.arange(nlon) * 360.0 / nlon


def test_solid_body_rotation_is_pure_vorticity():
    """u = U cos φ, v = 0 rotates the sphere rigidly: ω = 2 U sin φ / a, no divergence, no strain, W = -ω²."""
    lat, lon = _grid()
    phi = np.radians(lat)[:, None] * np.ones(len(lon))
    u, v = 20.0 * np.cos(phi), np.zeros_like(phi)
    ux, uy, vx, vy = velocity_gradient(u, v, lat, lon, RADIUS)
    inner = slice(1, -1)  # the pole rows are set to 0
    omega = 2 * 20.0 * np.sin(phi) / RADIUS
    scale = np.abs(omega).max()
    assert np.abs((vx - uy) - omega)[inner].max() < 1e-3 * scale
    assert np.abs(ux + vy)[inner].max() < 1e-3 * scale
    w = okubo_weiss(u, v, lat, lon, RADIUS)
    assert np.abs(w + omega**2)[inner].max() < 1e-2 * scale**2
    assert (w[[0, -1]] == 0).all()


def test_gradient_matches_the_solvers_spectral_vorticity_and_divergence():
    """The finite-difference ∂_x v - ∂_y u and ∂_x u + ∂_y v of a solver state against the
    solver's own (spectral) vorticity and divergence."""
    ds = generate_shallow_water(1, steps=1, dt_hours=1.0, nlat=48, nlon=96, seed=3, spinup_hours=2.0)
    lat, lon, radius = ds["lat"].values, ds["lon"].values, float(ds.attrs["radius_m"])
    ux, uy, vx, vy = velocity_gradient(ds["u"].values, ds["v"].values, lat, lon, radius)
    inner = np.abs(lat) < 80

    def relative_rms(estimate, truth):
        return np.sqrt(((estimate - truth)[..., inner, :] ** 2).mean() / (truth[..., inner, :] ** 2).mean())

    vorticity = ds["vorticity"].values
    assert relative_rms(vx - uy, vorticity) < 0.08  # second-order differences at lmax 16
    divergence_error = (ux + vy - ds["divergence"].values)[..., inner, :]
    assert np.sqrt((divergence_error**2).mean() / (vorticity[..., inner, :] ** 2).mean()) < 0.08


def _smooth_maps(nside=8, count=3, seed=0):
    rng = np.random.default_rng(seed)
    x = pixel_vectors(nside).numpy()  # [N, 3]
    waves = rng.normal(size=(count, 6, 3)) * 3
    w = np.cos(np.einsum("skd,nd->skn", waves, x) + rng.uniform(0, 6, (count, 6, 1))).sum(1)  # [S, N]
    vorticity = np.sin(np.einsum("skd,nd->skn", waves[:, ::-1], x)).sum(1)
    return w, vorticity, x[:, 2]


def test_labels_satisfy_the_okubo_weiss_criterion():
    w, vorticity, sin_lat = _smooth_maps()
    labels = vortex_labels(w, vorticity, sin_lat, threshold=0.5, min_pixels=1)  # no region dropped
    core = vortex_core(w, 0.5)
    assert ((labels > 0) == (core & (vorticity * sin_lat != 0))).all()
    assert (vorticity * sin_lat)[labels == 1].min() > 0 and (vorticity * sin_lat)[labels == 2].max() < 0
    assert (w[labels > 0] < -0.5 * np.repeat(w.std(axis=1, keepdims=True), w.shape[1], 1)[labels > 0]).all()
    assert set(np.unique(labels)) == {0, 1, 2}


def test_small_regions_become_background():
    w, vorticity, sin_lat = _smooth_maps()
    full = vortex_labels(w, vorticity, sin_lat, threshold=0.5, min_pixels=1)
    pruned = vortex_labels(w, vorticity, sin_lat, threshold=0.5, min_pixels=6)
    assert ((pruned == full) | (pruned == 0)).all() and (pruned != full).any()
    neighbours = neighbour_table(8).numpy()
    for sample in pruned:  # every kept region, grown over same-class neighbours, has >= 6 pixels
        for start in np.flatnonzero(sample > 0)[:20]:
            region, frontier = {start}, [start]
            while frontier:
                node = frontier.pop()
                for other in neighbours[node]:
                    if other >= 0 and sample[other] == sample[start] and other not in region:
                        region.add(other)
                        frontier.append(other)
            assert len(region) >= 6


def test_bad_settings_are_refused():
    w, vorticity, sin_lat = _smooth_maps()
    with pytest.raises(GeounetError, match="threshold must be positive"):
        vortex_labels(w, vorticity, sin_lat, threshold=0.0, min_pixels=1)
