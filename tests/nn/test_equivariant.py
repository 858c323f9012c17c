"""The equivariant U-Net family: e3nn's own equivariance checker on meshes, the polar quarter
turn on HEALPix, and the parts that a scalar-channel U-Net gets wrong.

Tolerances are for float64: every check below is exact up to round-off (errors ~1e-14 on
outputs of size ~1); 1e-9 leaves room for the cluster hierarchy of a rotated mesh, whose
areas and lengths differ from the original's in the last bits."""

import sys

import pytest
import torch
import trimesh
from e3nn import o3
from e3nn.util.test import assert_equivariant

from geounet.errors import GeounetError
from geounet.functional.fields import FieldSpec
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.batching import batch_hierarchies
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.vector_fields import sphere_normals
from geounet.models import build_equivariant_unet, build_unet
from geounet.models.equivariant import EquivariantUNet
from geounet.nn.equivariant_conv import EquivariantConv, EquivariantFactory
from geounet.nn.message_passing import MessagePassingFactory

TOLERANCE = 1e-9
FIELDS_IN, FIELDS_OUT = FieldSpec(scalars=2, vectors=1), FieldSpec(scalars=1, vectors=2)
FACES = trimesh.creation.icosphere(1).faces


def vertices() -> torch.Tensor:
    """An ellipsoid (no symmetry beyond reflections in its axes), ``[42, 3]``."""
    return torch.tensor(trimesh.creation.icosphere(1).vertices) * torch.tensor([1.0, 0.7, 1.3])


def clusters(points: torch.Tensor) -> ClusterHierarchy:
    return ClusterHierarchy(Mesh(points.detach().numpy(), FACES), num_levels=3)


@pytest.fixture(autouse=True)
def float64():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn makes its parameters in the default dtype
    yield
    torch.set_default_dtype(default)


def mesh_model(points: torch.Tensor) -> EquivariantUNet:
    torch.manual_seed(0)
    return build_equivariant_unet(clusters(points), FIELDS_IN, FIELDS_OUT, width=4, vectors=2, decoder_blocks=1)


def test_unet_on_a_mesh_is_o3_and_translation_equivariant():
    """e3nn's checker rotates (and reflects, and translates) the mesh's vertices and rotates the
    input vectors; the U-Net, run on the cluster hierarchy of the moved mesh, must rotate its
    output vectors the same way."""
    points = vertices()
    model = mesh_model(points)
    x = torch.randn(2, clusters(points).num_nodes(2), FIELDS_IN.dim)
    errors = assert_equivariant(lambda x, p: model(x, clusters(p)), args_in=[x, points],
                                irreps_in=[FIELDS_IN.irreps, "cartesian_points"], irreps_out=[FIELDS_OUT.irreps],
                                ntrials=2, tolerance=TOLERANCE)
    assert len(errors) == 4  # (rotation, rotation + inversion) x (with, without translation)


def test_negative_control_scalar_channel_unet_is_not_equivariant():
    points = vertices()
    h = clusters(points)
    torch.manual_seed(0)
    model = build_unet(h, FIELDS_IN.dim, FIELDS_OUT.dim, MessagePassingFactory(h), width=8).double()
    x = torch.randn(2, h.num_nodes(2), FIELDS_IN.dim)
    with pytest.raises(AssertionError, match="Largest componentwise equivariance error"):
        assert_equivariant(lambda x, p: model(x, clusters(p)), args_in=[x, points],
                           irreps_in=[FIELDS_IN.irreps, "cartesian_points"], irreps_out=[FIELDS_OUT.irreps],
                           tolerance=1e-3, do_parity=False, do_translation=False)


def test_convolution_on_a_point_cloud_graph_is_equivariant():
    """The level operator alone, with harmonics up to l = 2 and an l = 2 output, on a batch of two
    meshes; the second is the first scaled by 1.5, which the per-mesh edge scale makes the same input."""
    conv = EquivariantConv(2, "3x0e+2x1o", "2x0e+1x1o+1x2e", lmax=2)

    def run(x, p):
        union = batch_hierarchies([clusters(p), clusters(1.5 * p)])  # per-mesh edge scales: the same features
        return conv(x, union)

    points = vertices()
    x = torch.randn(3, 2 * clusters(points).num_nodes(2), o3.Irreps("3x0e+2x1o").dim)
    assert_equivariant(run, args_in=[x, points], irreps_in=["3x0e+2x1o", "cartesian_points"],
                       irreps_out=["2x0e+1x1o+1x2e"], ntrials=2, tolerance=TOLERANCE)
    y = run(x, points)
    half = y.shape[1] // 2
    torch.testing.assert_close(y[:, half:], conv(x[:, half:], clusters(points)), atol=1e-12, rtol=0)


def test_unet_on_healpix_commutes_with_the_polar_quarter_turn():
    """HEALPix pixels are permuted by the 90° turns about the polar axis (``node_symmetries``):
    model(g x) = g model(x) with (g x)[n] = D(R) x[perm[n]], the Wigner matrices D from e3nn.
    With ``tangent_output`` the output vectors are tangent to the sphere."""
    h = HealpixHaarHierarchy(4, 3)
    perm = h.node_symmetries()["rotate_90"]
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    normals = sphere_normals(h, 2)
    torch.testing.assert_close(normals[perm] @ rotation.T, normals, atol=1e-14, rtol=0)
    d_in, d_out = (o3.Irreps(f.irreps).D_from_matrix(rotation) for f in (FIELDS_IN, FIELDS_OUT))
    torch.manual_seed(0)
    model = build_equivariant_unet(h, FIELDS_IN, FIELDS_OUT, width=4, vectors=2, tangent_output=True)
    x = torch.randn(2, h.num_nodes(2), FIELDS_IN.dim)
    y = model(x, h)
    torch.testing.assert_close(model(x[:, perm] @ d_in.T, h), y[:, perm] @ d_out.T, atol=TOLERANCE, rtol=0)
    _, vectors = FIELDS_OUT.split(y)
    assert (vectors * normals[:, None, :]).sum(-1).abs().max() < 1e-14  # tangent
    assert vectors.norm(dim=-1).mean() > 0.1  # and not zero


def test_build_unet_selects_the_equivariant_family():
    h = clusters(vertices())
    model = build_unet(h, FIELDS_IN, FIELDS_OUT, EquivariantFactory(h.kind), width=4)
    assert isinstance(model, EquivariantUNet) and model.in_channels == 5 and model.out_channels == 7
    with pytest.raises(GeounetError, match="variant='multiresnet'"):
        build_unet(h, FIELDS_IN, FIELDS_OUT, EquivariantFactory(h.kind), variant="residual")
    with pytest.raises(GeounetError, match="not HealpixHaarHierarchy"):
        build_unet(HealpixHaarHierarchy(2, 2), 1, 1, EquivariantFactory(h.kind))


def test_gradcheck_through_the_equivariant_decoder():
    h = clusters(vertices())
    model = build_equivariant_unet(h, FieldSpec(1, 1), FieldSpec(0, 1), width=2, vectors=1, bottleneck_blocks=0)
    x = torch.randn(1, h.num_nodes(2), 4, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x, h), (x,), fast_mode=True)


def test_missing_e3nn_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "e3nn" or m.startswith("e3nn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import e3nn raises ImportError
    with pytest.raises(GeounetError, match=r"pip install 'geounet\[equivariant\]'"):
        EquivariantFactory("ClusterHierarchy")(1, "1x0e", "1x0e")


def test_field_spec_layout_and_errors():
    spec = FieldSpec(scalars=2, vectors=1)
    assert spec.irreps == "2x0e+1x1o" and spec.dim == 5 and FieldSpec(vectors=3).irreps == "3x1o"
    x = torch.arange(5.0)[None]
    rotation = o3.rand_matrix()
    torch.testing.assert_close(spec.rotate(x, rotation), x @ o3.Irreps(spec.irreps).D_from_matrix(rotation).T)
    with pytest.raises(GeounetError, match="at least one scalar or vector"):
        FieldSpec()
    with pytest.raises(GeounetError, match="FieldSpec.vectors must be an int >= 0"):
        FieldSpec(vectors=-1)


def test_meshes_of_a_batch_stay_independent():
    """On a disjoint union of two meshes (norm statistics and edge scales per mesh) each mesh
    gets exactly the output it gets alone."""
    points = vertices()
    first, second = clusters(points), clusters(points * torch.tensor([1.2, 1.0, 0.8]))
    model = mesh_model(points)
    x1, x2 = (torch.randn(2, h.num_nodes(2), FIELDS_IN.dim) for h in (first, second))
    both = model(torch.cat([x1, x2], dim=1), batch_hierarchies([first, second]))
    torch.testing.assert_close(both, torch.cat([model(x1, first), model(x2, second)], dim=1), atol=1e-12, rtol=0)
