"""geounet.testing.check_model on every hierarchy kind, and the checks catch what they claim to."""

import pytest
import torch
import trimesh
from torch import nn

from geounet.geometry.mesh import Mesh
from geounet.hierarchy import (
    ClusterHierarchy,
    HealpixHaarHierarchy,
    HealpixSHHierarchy,
    MeshSpectralHierarchy,
    SquareHaarHierarchy,
    TriangleHierarchy,
)
from geounet.models import build_unet
from geounet.models.baselines import ChebUNet, FlatResNet
from geounet.testing import (
    check_batch_independence,
    check_equivariance,
    check_model,
    check_parameters_only,
)


def _mesh(subdivisions: int, scale: float = 1.0) -> Mesh:
    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Mesh(scale * ico.vertices, ico.faces)


def _torus() -> Mesh:
    torus = trimesh.creation.torus(1.0, 0.4, major_sections=12, minor_sections=6)
    return Mesh(torus.vertices, torus.faces)


CASES = {
    "healpix_isotropic": (lambda: [HealpixHaarHierarchy(2, 2)], {"edge_features": [2]}, True),
    "square_isotropic": (lambda: [SquareHaarHierarchy(4, 2, periodic=True)], {"edge_features": [2]}, True),
    "healpix_sh": (lambda: [HealpixSHHierarchy(2, 2)], {}, False),
    "triangle": (lambda: [TriangleHierarchy(2)], {}, False),
    "clusters": (lambda: [ClusterHierarchy(_mesh(1), 2), ClusterHierarchy(_torus(), 2)], {}, False),
    "spectral": (lambda: [MeshSpectralHierarchy(_mesh(1), [4, 9], use_cache=False),
                          MeshSpectralHierarchy(_mesh(1, 2.0), [4, 9], use_cache=False)], {}, False),
}


@pytest.mark.parametrize("case", CASES)
def test_unets_pass_every_model_check(case):
    build, options, isotropic = CASES[case]
    hierarchies = build()
    torch.manual_seed(0)
    model = build_unet(hierarchies[0], 2, 1, width=2, variant="residual", **options)
    check_model(model, hierarchies, 2, isotropic=isotropic)


def test_baselines_pass_the_batch_and_parameter_checks():
    hierarchies = [ClusterHierarchy(_mesh(1), 2), ClusterHierarchy(_torus(), 2)]
    for model in (ChebUNet(hierarchies[0], 2, 1, width=2, depth=2), FlatResNet(hierarchies[0], 2, 1, width=2)):
        check_parameters_only(model)
        check_batch_independence(model, hierarchies, 2)


def test_healpix_rotation_is_a_symmetry_of_the_pixels():
    import healpy
    import numpy as np

    h = HealpixHaarHierarchy(4, 1)
    perm = h.node_symmetries()["rotate_90"]
    theta, phi = healpy.pix2ang(4, np.arange(192), nest=True)
    theta_src, phi_src = healpy.pix2ang(4, perm.numpy(), nest=True)  # the pixel each one receives
    np.testing.assert_allclose(theta_src, theta, atol=1e-12)
    np.testing.assert_allclose(np.mod(phi - phi_src, 2 * np.pi), np.pi / 2, atol=1e-12)


def test_the_checks_fail_on_models_that_break_them():
    """An anisotropic kernel is not rot90-equivariant; a norm over the whole union couples meshes;
    a geometry buffer is caught."""
    square = SquareHaarHierarchy(4, 2, periodic=True)
    with pytest.raises(AssertionError, match="not equivariant under rot90"):
        check_equivariance(build_unet(square, 2, 1, width=2), square, 2)

    class UnionNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x, hierarchy):
            return self.scale * (x - x.mean(dim=1, keepdim=True))

    meshes = [ClusterHierarchy(_mesh(1), 2), ClusterHierarchy(_torus(), 2)]
    with pytest.raises(AssertionError, match="another output in a batch than alone"):
        check_batch_independence(UnionNorm(), meshes, 2)
    holder = UnionNorm()
    holder.register_buffer("edge_index", torch.zeros(2, 5))
    with pytest.raises(AssertionError, match="edge_index"):
        check_parameters_only(holder)
