import pytest
import torch
import trimesh

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.batching import batch_hierarchies
from geounet.hierarchy.mesh_clusters import ClusterHierarchy
from geounet.hierarchy.mesh_spectral import MeshSpectralHierarchy
from geounet.hierarchy.mesh_subdivision import SubdivisionHierarchy, sphere_projection
from geounet.testing import check_hierarchy


def _meshes():
    torus = trimesh.creation.torus(1.0, 0.3, major_sections=16, minor_sections=8)
    ico = trimesh.creation.icosphere(subdivisions=2)
    return Mesh(torus.vertices, torus.faces), Mesh(ico.vertices, ico.faces)


def _check_batched_equals_separate(parts):
    batched = batch_hierarchies(parts)
    check_hierarchy(batched)
    for level in range(1, batched.num_levels):
        xs = [torch.randn(2, h.num_nodes(level), 3, dtype=torch.float64) for h in parts]
        out = batched.split(batched.restrict(batched.join(xs, level), level), level - 1)
        for h, x, o in zip(parts, xs, out, strict=False):
            torch.testing.assert_close(o, h.restrict(x, level), rtol=0, atol=1e-14)
        cs = [torch.randn(1, h.num_nodes(level - 1), 2, dtype=torch.float64) for h in parts]
        up = batched.split(batched.prolong(batched.join(cs, level - 1), level - 1), level)
        for h, c, u in zip(parts, cs, up, strict=False):
            torch.testing.assert_close(u, h.prolong(c, level - 1), rtol=0, atol=1e-14)
    return batched


def test_batched_haar_hierarchies_equal_separate_ones():
    torus, sphere = _meshes()
    parts = [
        ClusterHierarchy(torus, 3),
        SubdivisionHierarchy(sphere, 3, project=sphere_projection),
        ClusterHierarchy(sphere, 3),
    ]
    batched = _check_batched_equals_separate(parts)
    assert batched._merged is not None  # the single index_add fast path
    level = 1
    graph = batched.graph(level)
    offsets = batched.offsets(level)
    for j, h in enumerate(parts):
        inside = (graph.edge_index[1] >= offsets[j]) & (graph.edge_index[1] < offsets[j + 1])
        torch.testing.assert_close(graph.edge_index[:, inside] - offsets[j], h.graph(level).edge_index)
        torch.testing.assert_close(graph.edge_attr[inside], h.graph(level).edge_attr)
        assert ((graph.edge_index[0][inside] >= offsets[j]) & (graph.edge_index[0][inside] < offsets[j + 1])).all()
    assert graph.neighbours.shape[0] == batched.num_nodes(level)


def test_batched_spectral_hierarchies_equal_separate_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path))
    torus, sphere = _meshes()
    parts = [MeshSpectralHierarchy(torus, [1, 10]), MeshSpectralHierarchy(sphere, [1, 9])]
    _check_batched_equals_separate(parts)


def test_batching_errors():
    torus, sphere = _meshes()
    with pytest.raises(ValueError, match="same number of levels"):
        batch_hierarchies([ClusterHierarchy(torus, 2), ClusterHierarchy(sphere, 3)])
    with pytest.raises(ValueError, match="at least one"):
        batch_hierarchies([])
    with pytest.raises(ValueError, match="must be of one kind"):
        batch_hierarchies([ClusterHierarchy(torus, 2), MeshSpectralHierarchy(sphere, [1, 4], use_cache=False)])
    batched = batch_hierarchies([ClusterHierarchy(torus, 2)])
    with pytest.raises(ValueError, match="expected features"):
        batched.split(torch.zeros(1, 3, 1), 0)


@pytest.mark.parametrize("architecture", ["unet", "cheb_unet", "flat_resnet"])
def test_a_model_on_a_union_of_meshes_equals_the_same_model_on_each_mesh(architecture):
    """Group norms take their statistics per mesh, so a mesh's output does not depend on its
    batch companions: the union model's output on part j equals the moved model's on mesh j."""
    from geounet.models import build_unet
    from geounet.models.baselines import ChebUNet, FlatResNet
    from geounet.nn.message_passing import MessagePassingFactory

    def build(h):
        torch.manual_seed(0)
        if architecture == "cheb_unet":
            return ChebUNet(h, 2, 1, width=4, depth=3)
        if architecture == "flat_resnet":
            return FlatResNet(h, 2, 1, width=4, num_blocks=2)
        return build_unet(h, 2, 1, MessagePassingFactory(h), variant="residual", width=4)

    torus, sphere = _meshes()
    parts = [ClusterHierarchy(torus, 3), ClusterHierarchy(sphere, 3)]
    union = batch_hierarchies(parts)
    model = build(union).double()
    with torch.no_grad():  # non-trivial affine maps and zero-initialised output layers
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    xs = [torch.randn(3, h.num_nodes(2), 2, dtype=torch.float64) for h in parts]
    together = union.split(model(union.join(xs, 2), union), 2)
    for h, x, out in zip(parts, xs, together, strict=True):
        torch.testing.assert_close(out, model(x, h), rtol=1e-10, atol=1e-12)  # the same weights, one mesh
    # changing the signal on one mesh leaves the output on the other alone
    shifted = union.split(model(union.join([xs[0], 5 * xs[1] + 3], 2), union), 2)
    torch.testing.assert_close(shifted[0], together[0], rtol=1e-10, atol=1e-12)
