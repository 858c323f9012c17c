"""(u, v) <-> 3-D tangent vectors on lat-lon and HEALPix grids, poles included."""

import math

import numpy as np
import pytest
import torch

from geounet.errors import GeounetError
from geounet.geometry.tangent import (
    east_north,
    healpix_points,
    latlon_points,
    project_tangent,
    unit_vectors,
    uv_from_vectors,
    vectors_from_uv,
)


def test_frame_is_the_derivative_of_the_embedding():
    """east = (∂p/∂λ) / cos φ and north = ∂p/∂φ, by central differences of p(λ, φ) (away from the poles)."""
    lon, lat = torch.rand(50, dtype=torch.float64) * 2 * math.pi, (torch.rand(50, dtype=torch.float64) - 0.5) * 3
    step = 1e-6
    d_lon = (unit_vectors(lon + step, lat) - unit_vectors(lon - step, lat)) / (2 * step)
    d_lat = (unit_vectors(lon, lat + step) - unit_vectors(lon, lat - step)) / (2 * step)
    east, north = east_north(lon, lat)
    torch.testing.assert_close(east, d_lon / lat.cos()[:, None], atol=1e-8, rtol=0)
    torch.testing.assert_close(north, d_lat, atol=1e-8, rtol=0)
    # right-handed orthonormal frame (east, north, p)
    torch.testing.assert_close(torch.linalg.cross(east, north), unit_vectors(lon, lat), atol=1e-14, rtol=0)


def test_latlon_round_trip_with_poles():
    lat = torch.linspace(-90, 90, 7, dtype=torch.float64)  # both poles are grid rows
    lon = torch.arange(0, 360, 45, dtype=torch.float64)
    lons, lats = latlon_points(lat, lon)
    u, v = torch.randn(2, 3, lons.numel(), dtype=torch.float64)
    w = vectors_from_uv(u, v, lons, lats)  # [3, N, 3]
    assert (w * unit_vectors(lons, lats)).sum(-1).abs().max() < 1e-15  # exactly tangent, at the poles too
    torch.testing.assert_close(w.norm(dim=-1), torch.hypot(u, v), atol=1e-14, rtol=0)
    u2, v2 = uv_from_vectors(w, lons, lats)
    torch.testing.assert_close(u2, u, atol=1e-14, rtol=0)
    torch.testing.assert_close(v2, v, atol=1e-14, rtol=0)


def test_pole_vector_is_one_vector_in_every_column_frame():
    """A 3-D vector at the north pole has one (u, v) per grid column (the frame turns with λ);
    all of them map back to the same vector: no pole singularity in the 3-D form."""
    w = torch.tensor([0.3, -1.2, 0.0], dtype=torch.float64)
    lon = torch.arange(8, dtype=torch.float64) * math.pi / 4
    lat = torch.full_like(lon, math.pi / 2)
    u, v = uv_from_vectors(w.expand(8, 3), lon, lat)
    assert u.std() > 0.1  # the components differ per column ...
    torch.testing.assert_close(vectors_from_uv(u, v, lon, lat), w.expand(8, 3), atol=1e-15, rtol=0)  # the vector not


@pytest.mark.parametrize("nside", [1, 4, 16])
def test_healpix_round_trip_and_points(nside):
    import healpy

    lon, lat = healpix_points(nside)
    centres = np.stack(healpy.pix2vec(nside, np.arange(12 * nside**2), nest=True), axis=1)
    np.testing.assert_allclose(unit_vectors(lon, lat).numpy(), centres, atol=1e-15)
    u, v = torch.randn(2, 12 * nside**2, dtype=torch.float64)
    w = vectors_from_uv(u, v, lon, lat)
    assert (w * unit_vectors(lon, lat)).sum(-1).abs().max() < 1e-15
    u2, v2 = uv_from_vectors(w, lon, lat)
    torch.testing.assert_close(torch.stack([u2, v2]), torch.stack([u, v]), atol=1e-14, rtol=0)
    polar = lat.abs().argmax()  # the pixels nearest the poles keep their (u, v) too
    assert abs(float(u2[polar] - u[polar])) < 1e-14


def test_project_tangent_removes_only_the_normal_part():
    points = torch.nn.functional.normalize(torch.randn(20, 3, dtype=torch.float64), dim=-1)
    w = torch.randn(4, 20, 2, 3, dtype=torch.float64)
    tangent = project_tangent(w, points[:, None, :])
    assert (tangent * points[:, None, :]).sum(-1).abs().max() < 1e-15
    torch.testing.assert_close(project_tangent(tangent, points[:, None, :]), tangent, atol=1e-15, rtol=0)


def test_bad_shapes_name_the_layout():
    lon, lat = healpix_points(1)
    with pytest.raises(GeounetError, match=r"values \[..., N\] with lon, lat \[N\]"):
        vectors_from_uv(torch.zeros(5), torch.zeros(5), lon, lat)
    with pytest.raises(GeounetError, match="3 components"):
        uv_from_vectors(torch.zeros(12, 2), lon, lat)
