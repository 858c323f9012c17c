"""Restriction and prolongation of vector fields commute with rotations and keep fields tangent."""

import math

import numpy as np
import pytest
import torch
import trimesh

from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.vector_fields import prolong_vectors, restrict_vectors, sphere_normals, tangent_part


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def rotate(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate every vector of ``x [..., N, 3C]``."""
    return (x.unflatten(-1, (-1, 3)) @ rotation.T).flatten(-2)


def bumpy_mesh() -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.creation.icosphere(2)
    return mesh.vertices * np.array([1.0, 0.6, 1.4]), mesh.faces


def test_cluster_vector_projections_commute_with_rotation():
    """P(R w) = R P(w) and ι(R w) = R ι(w) for world-coordinate vectors, the cluster hierarchy
    of the rotated mesh built from scratch (it is built from intrinsic geometry)."""
    vertices, faces = bumpy_mesh()
    rotation = random_rotation(1)
    h = ClusterHierarchy(Mesh(vertices, faces), num_levels=3)
    h_rotated = ClusterHierarchy(Mesh(vertices @ rotation.numpy().T, faces), num_levels=3)
    fine, coarse = h.finest_level, h.finest_level - 1
    w = torch.randn(2, h.num_nodes(fine), 6, dtype=torch.float64)
    torch.testing.assert_close(restrict_vectors(h_rotated, rotate(w, rotation), fine),
                               rotate(restrict_vectors(h, w, fine), rotation), atol=1e-12, rtol=0)
    c = torch.randn(2, h.num_nodes(coarse), 6, dtype=torch.float64)
    torch.testing.assert_close(prolong_vectors(h_rotated, rotate(c, rotation), coarse),
                               rotate(prolong_vectors(h, c, coarse), rotation), atol=1e-12, rtol=0)


def test_eigenbasis_vector_projection_commutes_with_rotation():
    """On an eigenbasis hierarchy the coarse levels are coefficients (basis-dependent signs), so
    the rotation-covariant object is the projection ι P onto the band-limited vertex fields:
    ι P(R w) = R ι P(w), the eigenbasis of the rotated mesh solved from scratch."""
    vertices, faces = bumpy_mesh()
    rotation = random_rotation(2)
    h = MeshSpectralHierarchy(Mesh(vertices, faces), band_limits=[4, 16], use_cache=False)
    h_rotated = MeshSpectralHierarchy(Mesh(vertices @ rotation.numpy().T, faces), band_limits=[4, 16],
                                      use_cache=False)
    fine = h.finest_level
    w = torch.randn(2, h.num_nodes(fine), 6, dtype=torch.float64)

    def band_limited(hierarchy, x):
        return prolong_vectors(hierarchy, restrict_vectors(hierarchy, x, fine), fine - 1)

    torch.testing.assert_close(band_limited(h_rotated, rotate(w, rotation)), rotate(band_limited(h, w), rotation),
                               atol=1e-8, rtol=0)  # two eigensolves of the same operator, to solver accuracy


def polar_quarter_turn(h: HealpixHaarHierarchy) -> tuple[torch.Tensor, torch.Tensor]:
    """``(perm, R)``: the node symmetry and its rotation, R p[perm[n]] = p[n]."""
    perm = h.node_symmetries()["rotate_90"]
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    p = sphere_normals(h, h.finest_level)
    torch.testing.assert_close(p[perm] @ rotation.T, p, atol=1e-14, rtol=0)
    return perm, rotation


def coarse_permutation(perm: torch.Tensor, levels_down: int) -> torch.Tensor:
    """The NEST pixel permutation ``levels_down`` levels coarser (children 4p .. 4p + 3 move together)."""
    return perm[:: 4**levels_down] // 4**levels_down


def test_healpix_tangent_projections_commute_with_the_polar_quarter_turn():
    h = HealpixHaarHierarchy(8, 3)
    perm, rotation = polar_quarter_turn(h)
    fine = h.finest_level
    w = tangent_part(h, torch.randn(3, h.num_nodes(fine), 6, dtype=torch.float64), fine)
    g_w = rotate(w[:, perm], rotation)  # (g w)(p_n) = R w(p_perm[n])
    coarse_perm = coarse_permutation(perm, 1)
    torch.testing.assert_close(restrict_vectors(h, g_w, fine, tangent=True),
                               rotate(restrict_vectors(h, w, fine, tangent=True)[:, coarse_perm], rotation),
                               atol=1e-14, rtol=0)
    c = tangent_part(h, torch.randn(3, h.num_nodes(fine - 1), 6, dtype=torch.float64), fine - 1)
    torch.testing.assert_close(prolong_vectors(h, rotate(c[:, coarse_perm], rotation), fine - 1, tangent=True),
                               rotate(prolong_vectors(h, c, fine - 1, tangent=True)[:, perm], rotation),
                               atol=1e-14, rtol=0)


def test_healpix_tangent_projections_keep_fields_tangent():
    h = HealpixHaarHierarchy(8, 3)
    fine = h.finest_level
    w = tangent_part(h, torch.randn(2, h.num_nodes(fine), 3, dtype=torch.float64), fine)

    def normal_part(x, level):
        return (x.unflatten(-1, (-1, 3)) * sphere_normals(h, level)[:, None, :]).sum(-1).abs().max()

    assert normal_part(restrict_vectors(h, w, fine, tangent=True), fine - 1) < 1e-15
    assert normal_part(prolong_vectors(h, restrict_vectors(h, w, fine, tangent=True), fine - 1, tangent=True),
                       fine) < 1e-15
    # negative control: the plain per-component average of tangent vectors leaves the coarse tangent plane
    assert normal_part(restrict_vectors(h, w, fine), fine - 1) > 1e-3


def test_tangent_restriction_of_a_rigid_rotation_field_stays_close():
    """The tangent field of a rigid rotation about the polar axis, w(p) = e_z × p, is restricted
    to itself up to the Haar smoothing error of order (pixel size)², and stays exactly tangent."""
    h = HealpixHaarHierarchy(16, 2)
    fine = h.finest_level
    field = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(h.num_nodes(fine), 3),
                               sphere_normals(h, fine))
    coarse_field = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(
        h.num_nodes(fine - 1), 3), sphere_normals(h, fine - 1))
    restricted = restrict_vectors(h, field, fine, tangent=True)
    pixel = math.sqrt(4 * math.pi / h.num_nodes(fine))
    assert (restricted - coarse_field).abs().max() < pixel**2


def test_vector_layout_is_checked():
    h = HealpixHaarHierarchy(2, 2)
    with pytest.raises(GeounetError, match=r"\[..., nodes, 3 \* vectors\]"):
        restrict_vectors(h, torch.zeros(1, 48, 4, dtype=torch.float64), 1)
