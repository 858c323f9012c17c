from functools import partial

import pytest
import torch
import trimesh

from geounet.functional.block_diagonal import offsets_of
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


def _check_blockwise(union_map, part_maps, xs):
    """``union_map`` on the joined ``xs`` equals each ``part_maps[j]`` on ``xs[j]`` (float64), and
    so do the gradients of a random linear functional of the outputs."""
    xs = [x.detach().requires_grad_() for x in xs]
    joined = torch.cat(xs, dim=-2)
    together = union_map(joined)
    alone = [f(x) for f, x in zip(part_maps, xs, strict=True)]
    parts = list(together.split([a.shape[-2] for a in alone], dim=-2))
    for a, t in zip(alone, parts, strict=True):
        torch.testing.assert_close(t, a, rtol=0, atol=1e-14)
    cotangents = [torch.randn_like(a) for a in alone]
    grads_together = torch.autograd.grad(together, xs, torch.cat(cotangents, dim=-2))
    grads_alone = torch.autograd.grad(alone, xs, cotangents)
    for t, a in zip(grads_together, grads_alone, strict=True):
        torch.testing.assert_close(t, a, rtol=0, atol=1e-14)


def _check_batched_equals_separate(parts):
    batched = batch_hierarchies(parts)
    check_hierarchy(batched)
    for level in range(1, batched.num_levels):
        xs = [torch.randn(2, h.num_nodes(level), 3, dtype=torch.float64) for h in parts]
        _check_blockwise(partial(batched.restrict, level=level), [partial(h.restrict, level=level) for h in parts], xs)
        cs = [torch.randn(1, h.num_nodes(level - 1), 2, dtype=torch.float64) for h in parts]
        _check_blockwise(partial(batched.prolong, level=level - 1),
                         [partial(h.prolong, level=level - 1) for h in parts], cs)
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
    # the parameter gradients of a loss summed over the meshes: the sum of each mesh's alone
    cotangents = [torch.randn_like(out) for out in together]
    params = list(model.parameters())
    grads_together = torch.autograd.grad(together, params, cotangents, allow_unused=True)
    grads_alone = [torch.autograd.grad(model(x, h), params, c, allow_unused=True)
                   for h, x, c in zip(parts, xs, cotangents, strict=True)]
    for g, *alone in zip(grads_together, *grads_alone, strict=True):
        if g is not None:
            torch.testing.assert_close(g, sum(alone), rtol=1e-10, atol=1e-12)
    # changing the signal on one mesh leaves the output on the other alone
    shifted = union.split(model(union.join([xs[0], 5 * xs[1] + 3], 2), union), 2)
    torch.testing.assert_close(shifted[0], together[0], rtol=1e-10, atol=1e-12)


def test_merged_partitions_are_the_parts_concatenated():
    """The union's Haar operators are the parts' own weights and parent maps (offset), equal to a
    partition hierarchy built from scratch on the concatenated finest masses."""
    from geounet.hierarchy.haar import PartitionHaarHierarchy

    torus, sphere = _meshes()
    parts = [ClusterHierarchy(torus, 3), ClusterHierarchy(sphere, 3)]
    merged = batch_hierarchies(parts)._merged
    offsets = [0, parts[0].num_nodes(1), parts[0].num_nodes(1) + parts[1].num_nodes(1)]
    rebuilt = PartitionHaarHierarchy([None] + [torch.cat([h.parents(level) + offsets_of([g.num_nodes(level - 1)
                                                                                        for g in parts])[j]
                                                          for j, h in enumerate(parts)]) for level in (1, 2)],
                                     torch.cat([h.mass(2) for h in parts]))
    for level in range(3):
        assert torch.equal(merged.mass(level), torch.cat([h.mass(level) for h in parts]))
        torch.testing.assert_close(merged.mass(level), rebuilt.mass(level), rtol=1e-15, atol=0)
    for level in (1, 2):
        assert torch.equal(merged.parents(level), rebuilt.parents(level))
        assert torch.equal(merged._child_weights[level], torch.cat([h._child_weights[level] for h in parts]))
    assert torch.equal(merged.parents(2)[parts[0].num_nodes(2):], parts[1].parents(2) + offsets[1])


@pytest.mark.parametrize("mixed_first", [False, True])
def test_union_linear_operators_are_the_meshes_operators_block_by_block(mixed_first):
    """A union's sparse operators are block-diagonal in its meshes' memoised ones (values and
    gradients of the sparse product, float64) and equal the operators built from the union's
    own prepared graph."""
    from geounet.nn.message_passing import csr_product, linear_operator, linear_operators, prepared_graph

    torus, sphere = _meshes()
    parts = [ClusterHierarchy(torus, 3), SubdivisionHierarchy(sphere, 3, project=sphere_projection),
             ClusterHierarchy(sphere, 3)]
    union = batch_hierarchies(parts)
    for level in range(3):
        operator = linear_operators(union, level, None, "auto", torch.float64, mixed_first)
        blocks = [linear_operators(h, level, None, "auto", torch.float64, mixed_first) for h in parts]
        dense = torch.block_diag(*[b.matrix().to_dense() for b in blocks])
        assert torch.equal(operator.matrix().to_dense(), dense)
        assert torch.equal(operator.transpose().to_dense(), dense.T)
        own = linear_operator(prepared_graph(union, level, None, "auto", torch.float64), mixed_first)
        torch.testing.assert_close(operator.matrix().to_dense(), own.matrix().to_dense(), rtol=1e-14, atol=0)
        xs = [torch.randn(2, b.matrix().shape[1], 3, dtype=torch.float64) for b in blocks]
        _check_blockwise(lambda x, a=operator: csr_product(x, *a.parts),
                         [lambda x, b=b: csr_product(x, *b.parts) for b in blocks], xs)


def test_collating_the_same_meshes_twice_gives_equal_tensors_without_rebuilding_mesh_operators(monkeypatch):
    """A second batch of the same meshes joins the memoised per-mesh operators again: equal
    tensors, and no mesh's sparse operator is built (sorted, coalesced) a second time."""
    import geounet.nn.message_passing as message_passing
    from geounet.data.mesh_dataset import collate
    from geounet.data.samples import Batch, node_weights
    from geounet.models import build_unet

    torus, sphere = _meshes()
    parts = [ClusterHierarchy(torus, 3), ClusterHierarchy(sphere, 3)]
    items = [Batch(torch.randn(1, h.num_nodes(2), 1), torch.randn(1, h.num_nodes(2), 1), h) for h in parts]
    torch.manual_seed(0)
    model = build_unet(parts[0], 1, 1, width=4)
    built = []
    monkeypatch.setattr(message_passing, "linear_operator",
                        lambda *args, build=message_passing.linear_operator: built.append(1) or build(*args))
    first, second = collate(items), collate(items)
    assert first.hierarchy is not second.hierarchy
    outputs = [model(batch.inputs, batch.hierarchy) for batch in (first, second)]
    count = len(built)
    assert count > 0
    model(collate(items).inputs, collate(items).hierarchy)
    assert len(built) == count  # the meshes' operators were memoised on the meshes
    assert torch.equal(outputs[0], outputs[1])
    a, b = first.hierarchy, second.hierarchy
    assert torch.equal(node_weights(a), node_weights(b))
    for level in range(3):
        assert torch.equal(a.batch(level), b.batch(level)) and torch.equal(a.mass(level), b.mass(level))
        assert torch.equal(a.graph(level).edge_index, b.graph(level).edge_index)
        assert torch.equal(a.graph(level).neighbours, b.graph(level).neighbours)
        operators = [h.cached(("linear_operator", None, "auto", torch.float32, True), level, None) for h in (a, b)]
        for x, y in zip(*(operator.parts for operator in operators), strict=True):
            assert torch.equal(x, y)
    for level in (1, 2):
        assert torch.equal(a._merged.parents(level), b._merged.parents(level))


def test_a_union_is_built_where_its_parts_live():
    """Parent maps, masses, graphs and batch vectors of a union are joined on the parts' device,
    with no host round trip: on the meta device (shapes, no data) a copy to the CPU would fail."""
    torus, sphere = _meshes()
    parts = [ClusterHierarchy(torus, 3).to("meta"), ClusterHierarchy(sphere, 3).to("meta")]
    union = batch_hierarchies(parts)
    for level in range(3):
        assert union.batch(level).device.type == "meta" and union.mass(level).device.type == "meta"
        assert union.graph(level).neighbours.device.type == "meta"
        assert union.batch(level).shape == (sum(h.num_nodes(level) for h in parts),)
    assert union._merged.parents(2).device.type == "meta"
    x = torch.zeros(2, union.num_nodes(2), 3, device="meta")
    assert union.prolong(union.restrict(x, 2), 1).shape == x.shape
