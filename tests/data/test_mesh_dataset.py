"""Data sets of many meshes: collation, per-mesh hierarchies, disk cache, workers, PyG interop."""

from dataclasses import dataclass

import pytest
import torch

from geounet.data.mesh_dataset import (
    Clusters,
    Eigenbases,
    MeshDataset,
    MeshSample,
    cached_hierarchy,
    collate,
)
from geounet.data.pyg import PygBatches, from_pyg, to_pyg
from geounet.data.samples import node_weights
from geounet.datagen.mesh_families import DarcyFamily
from geounet.functional.losses import weighted_mse
from geounet.geometry.cache_files import CacheRebuiltWarning
from geounet.geometry.mesh import Mesh
from geounet.hierarchy import BatchedHierarchy, SquareHaarHierarchy
from geounet.models import build_unet
from geounet.train.config import TrainConfig
from geounet.train.loop import evaluate, fit

FAMILY = DarcyFamily(num_meshes=6, faces=(150, 400), samples_per_mesh=3)


def _samples(ids=range(4), at="face", samples_per_mesh=1):
    out = []
    for mesh_id in ids:
        data = FAMILY.sample(mesh_id)
        mesh = Mesh(data["vertices"], data["faces"])
        for s in range(samples_per_mesh):
            k, u = (torch.from_numpy(data[f"{name}_{at}"][s]).float()[:, None] for name in ("k", "u"))
            out.append(MeshSample(mesh, k.log(), u * 100))
    return out


@dataclass(frozen=True)
class CountingClusters(Clusters):
    """Clusters that count their builds in a file (works across processes)."""

    counter: str = ""

    def build(self, mesh):
        with open(self.counter, "a") as file:
            file.write("x")
        return super().build(mesh)


def test_a_batch_of_different_meshes_is_their_union_and_each_mesh_gets_its_own_output():
    dataset = MeshDataset(_samples(), Clusters(3))
    batch = dataset.batch([0, 2, 3])
    assert isinstance(batch.hierarchy, BatchedHierarchy)
    sizes = [dataset.samples[i].mesh.num_faces for i in (0, 2, 3)]
    assert batch.inputs.shape == (1, sum(sizes), 1) and batch.hierarchy.components(2) == sizes
    torch.manual_seed(0)
    model = build_unet(dataset.hierarchy(0), 1, 1, width=4).double()
    together = batch.hierarchy.split(model(batch.inputs.double(), batch.hierarchy), 2)
    for part, i in zip(together, (0, 2, 3), strict=True):
        alone = dataset[i]
        torch.testing.assert_close(part, model(alone.inputs.double(), alone.hierarchy), rtol=1e-10, atol=1e-12)


def test_hierarchies_are_built_once_per_mesh_and_cached_on_disk(tmp_path):
    counter = tmp_path / "builds"
    recipe = CountingClusters(3, counter=str(counter))
    samples = _samples(range(3), samples_per_mesh=2)  # 6 samples on 3 meshes
    dataset = MeshDataset(samples, recipe, cache_dir=tmp_path).build_all()
    assert dataset.num_meshes == 3 and counter.read_text() == "xxx"
    assert dataset.hierarchy(0) is dataset.hierarchy(1)  # two samples, one mesh
    again = MeshDataset(samples, recipe, cache_dir=tmp_path).build_all()
    assert counter.read_text() == "xxx"  # loaded from disk
    x = torch.randn(1, samples[0].mesh.num_faces, 1, dtype=torch.float64)
    torch.testing.assert_close(again.hierarchy(0).restrict(x, 2), dataset.hierarchy(0).restrict(x, 2))
    assert again.hierarchy(0).content_key == dataset.hierarchy(0).content_key
    # a damaged file is named and rebuilt, never unpickled
    path = next((tmp_path / "hierarchies").glob("*.pkl"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(CacheRebuiltWarning, match=f"{path.name} is damaged .*SHA-256.*rebuilding it") as caught:
        rebuilt = MeshDataset(samples, recipe, cache_dir=tmp_path).build_all()
    assert len(caught) == 1 and counter.read_text() == "xxxx"
    for i in range(0, 6, 2):
        assert torch.equal(rebuilt.hierarchy(i).parents(2), dataset.hierarchy(i).parents(2))


def test_hierarchies_built_in_worker_processes_equal_those_built_here(tmp_path):
    samples = _samples(range(3))
    here = MeshDataset(samples, Clusters(3)).build_all()
    there = MeshDataset(samples, Clusters(3), cache_dir=tmp_path).build_all(workers=2)
    assert len(list((tmp_path / "hierarchies").glob("*.pkl"))) == 3
    for i in range(3):
        for level in range(1, 3):
            assert torch.equal(here.hierarchy(i).parents(level), there.hierarchy(i).parents(level))


def test_a_dataloader_with_workers_collates_like_the_dataset(tmp_path):
    dataset = MeshDataset(_samples(), Clusters(3), cache_dir=tmp_path)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=collate, num_workers=1)
    for start, batch in zip((0, 2), loader, strict=True):
        expected = dataset.batch([start, start + 1])
        assert torch.equal(batch.inputs, expected.inputs)
        assert batch.hierarchy.components(0) == expected.hierarchy.components(0)


def test_samples_on_one_grid_stack_on_the_shared_hierarchy():
    from geounet.data.samples import Batch

    grid = SquareHaarHierarchy(4, 2)
    batches = [Batch(torch.randn(1, 16, 2), torch.randn(1, 16, 1), grid) for _ in range(3)]
    stacked = collate(batches)
    assert stacked.hierarchy is grid and stacked.inputs.shape == (3, 16, 2)


def test_pyg_round_trip_and_vertex_fields():
    pytest.importorskip("torch_geometric")
    sample = _samples([1], at="vertex")[0]
    data = to_pyg(sample)
    assert data.face.shape == (3, sample.mesh.num_faces) and data.pos.shape == (sample.mesh.num_vertices, 2)
    back = from_pyg(data)
    assert back.mesh.content_hash == Mesh(data.pos.double().numpy(), data.face.t().numpy()).content_hash
    torch.testing.assert_close(back.inputs, sample.inputs)
    torch.testing.assert_close(back.targets, sample.targets)
    dataset = MeshDataset([back], Eigenbases((4, 16)))
    assert dataset.batch([0]).inputs.shape == (1, sample.mesh.num_vertices, 1)
    with pytest.raises(ValueError, match="face must be \\[3, F\\]"):
        from_pyg(type(data)(pos=data.pos, face=data.face.t(), x=data.x, y=data.y))


def test_bad_samples_are_named():
    samples = _samples(range(2))
    with pytest.raises(ValueError, match=r"sample 0: inputs must be \[\d+, channels\] \(vertex values"):
        MeshDataset(samples, Eigenbases((4, 8)))
    with pytest.raises(ValueError, match="face values: Clusters takes those, or convert them with Mesh.face_to_vertex"):
        MeshDataset(samples, Eigenbases((4, 8)))
    vertex_samples = _samples(range(2), at="vertex")
    with pytest.raises(ValueError, match="vertex values: Eigenbases takes those, or convert them with "
                                         "Mesh.vertex_to_face"):
        MeshDataset(vertex_samples, Clusters(3))
    converted = [MeshSample(s.mesh, s.mesh.vertex_to_face(s.inputs), s.mesh.vertex_to_face(s.targets))
                 for s in vertex_samples]
    assert len(MeshDataset(converted, Clusters(3))) == 2  # what the message says works
    samples[1].targets[5, 0] = float("nan")
    with pytest.raises(ValueError, match="sample 1's targets contain NaN or Inf .* node 5"):
        MeshDataset(samples, Clusters(3))


def test_a_model_learns_on_mixed_mesh_batches():
    """Darcy k -> u on 4 domains in mixed batches: the training loss falls and the error on new
    fields (held-out samples of the same domains) drops below the untrained model's."""
    samples = _samples(range(4), samples_per_mesh=3)
    scale = torch.cat([s.targets for s in samples]).std()
    samples = [MeshSample(s.mesh, s.inputs, s.targets / scale) for s in samples]
    train = MeshDataset([s for i, s in enumerate(samples) if i % 3 < 2], Clusters(3))
    test = MeshDataset([s for i, s in enumerate(samples) if i % 3 == 2], Clusters(3))
    torch.manual_seed(0)
    model = build_unet(train.hierarchy(0), 1, 1, width=4)
    before = evaluate(model, test, 4, torch.device("cpu"))["rel_l2_mean"]
    result = fit(model, train, TrainConfig(steps=40, batch_size=4, lr=5e-3, warmup_steps=4), progress=False)
    after = evaluate(model, test, 4, torch.device("cpu"))["rel_l2_mean"]
    assert result.history[-1]["loss"] < 0.3 * result.history[0]["loss"]
    assert after < 0.75 * before, (before, after)  # 8 training samples: 0.91 -> 0.61 measured


def test_cached_hierarchy_without_a_cache_dir_builds_in_memory():
    sample = _samples([0])[0]
    h = cached_hierarchy(sample.mesh, Clusters(2))
    assert h.content_key is not None and h.num_levels == 2


def test_a_union_whose_meshes_choose_different_paths_uses_edge_lists():
    """Under backend "auto" one vertex graph may fit a neighbour table and another not; their
    union must still carry every edge (the PyG path), and equal the per-mesh outputs."""
    from geounet.nn.message_passing import prepared_graph, uses_table

    dataset = MeshDataset(_samples(range(6), at="vertex"), Eigenbases((4, 16)))
    choices = [uses_table(dataset.hierarchy(i), 2, "auto") for i in range(6)]
    assert len(set(choices)) == 2, choices  # the case under test: the meshes disagree
    batch = dataset.batch(range(6))
    union = prepared_graph(batch.hierarchy, 2, None, "auto", torch.float64)
    assert union.neighbours is None and union.edge_features is not None
    torch.manual_seed(0)
    model = build_unet(dataset.hierarchy(0), 1, 1, width=4).double()
    together = batch.hierarchy.split(model(batch.inputs.double(), batch.hierarchy), 2)
    for i, part in enumerate(together):
        alone = dataset[i]
        torch.testing.assert_close(part, model(alone.inputs.double(), alone.hierarchy), rtol=1e-10, atol=1e-12)


def _pyg_graphs(at):
    pytest.importorskip("torch_geometric")
    return [to_pyg(s) for s in _samples(range(4), at=at)]


@pytest.mark.parametrize("at, recipe", [("face", Clusters(3)), ("vertex", Eigenbases((4, 16)))])
def test_from_pyg_splits_a_pyg_batch_into_its_graphs_and_collates_as_the_list(at, recipe):
    """A PyG Batch offsets each graph's faces by the vertices before it; from_pyg undoes that,
    so the union geounet collates from the Batch is the union of the original graphs."""
    from torch_geometric.data import Batch as PygBatch

    graphs = _pyg_graphs(at)
    pyg_batch = PygBatch.from_data_list(graphs)
    split = from_pyg(pyg_batch, at=at)
    assert isinstance(split, list) and len(split) == len(graphs)
    for part, graph in zip(split, graphs, strict=True):
        alone = from_pyg(graph, at=at)
        assert part.mesh.content_hash == alone.mesh.content_hash
        assert torch.equal(part.inputs, alone.inputs) and torch.equal(part.targets, alone.targets)
    from_list = MeshDataset([from_pyg(g, at=at) for g in graphs], recipe).batch(range(4))
    from_batch = MeshDataset(split, recipe).batch(range(4))
    assert torch.equal(from_batch.inputs, from_list.inputs) and torch.equal(from_batch.targets, from_list.targets)
    for level in range(3):
        assert from_batch.hierarchy.components(level) == from_list.hierarchy.components(level)
    x = torch.randn(1, from_list.inputs.shape[1], 2, dtype=torch.float64)
    torch.testing.assert_close(from_batch.hierarchy.restrict(x, 2), from_list.hierarchy.restrict(x, 2))
    # the batch vector alone (no ptr) splits the same way
    no_ptr = PygBatch.from_data_list(graphs)
    del no_ptr.ptr
    assert [s.mesh.content_hash for s in from_pyg(no_ptr, at=at)] == [s.mesh.content_hash for s in split]


def test_pyg_dataloader_batches_go_through_the_adapter_like_the_dataset():
    from torch_geometric.loader import DataLoader as PygLoader

    graphs = _pyg_graphs("face")
    dataset = MeshDataset.from_pyg(graphs, Clusters(3))
    to_geounet = PygBatches(Clusters(3))
    torch.manual_seed(0)
    model = build_unet(dataset.hierarchy(0), 1, 1, width=4)
    for start, pyg_batch in zip((0, 2), PygLoader(graphs, batch_size=2), strict=True):
        batch, expected = to_geounet(pyg_batch), dataset.batch([start, start + 1])
        assert torch.equal(batch.inputs, expected.inputs) and torch.equal(batch.targets, expected.targets)
        torch.testing.assert_close(model(batch.inputs, batch.hierarchy), model(expected.inputs, expected.hierarchy))
    assert len(to_geounet._hierarchies) == 4  # one build per mesh
    to_geounet(next(iter(PygLoader(graphs, batch_size=2))))
    assert len(to_geounet._hierarchies) == 4  # reused, not rebuilt


def test_from_pyg_refuses_what_it_cannot_split_or_place():
    from torch_geometric.data import Batch as PygBatch
    from torch_geometric.data import Data

    graphs = _pyg_graphs("vertex")
    with pytest.raises(ValueError, match="at must be 'vertex'"):
        from_pyg(graphs[0], at="cell")
    with pytest.raises(ValueError, match=r"x must be \[\d+, C\] \(face values.*pass at='vertex'.*Mesh.vertex_to_face"):
        from_pyg(graphs[0], at="face")
    with pytest.raises(ValueError, match=r"the PyG Batch's x has \d+ rows, not its \d+ faces; pass at='vertex'"):
        from_pyg(PygBatch.from_data_list(graphs[:2]), at="face")
    fused = PygBatch.from_data_list(graphs[:2])
    fused.face = torch.cat([graphs[0].face, graphs[1].face], dim=1)  # indices not offset: graph 1 points into graph 0
    fused.face[:, -1] = torch.tensor([0, 1, int(fused.ptr[1])])
    with pytest.raises(ValueError, match="joins vertices of graphs \\[0, 1\\]"):
        from_pyg(fused)
    with pytest.raises(ValueError, match="face must be \\[3, F\\]"):
        from_pyg(Data(pos=graphs[0].pos, face=graphs[0].face.t(), x=graphs[0].x, y=graphs[0].y))
    face_graphs = [Data(pos=g.pos, face=g.face, x=g.x, y=g.y) for g in _pyg_graphs("face")[:2]]  # no num_nodes
    with pytest.raises(ValueError, match="give each Data num_nodes=V"):
        from_pyg(PygBatch.from_data_list(face_graphs), at="face")


def test_memoised_operators_stop_growing_once_every_mesh_has_been_trained_on():
    """The per-mesh memo (prepared graphs, sparse operators, node weights) is the one cache
    that grows over mixed-mesh training: it fills in the first pass over the meshes and then
    stays, whatever batches follow (the CI-sized form of experiments/bench/bench_mesh_memory.py)."""
    dataset = MeshDataset(_samples(range(5)), Clusters(3)).build_all()
    torch.manual_seed(0)
    model = build_unet(dataset.hierarchy(0), 1, 1, width=4)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train(indices):
        batch = dataset.batch(indices)
        loss = weighted_mse(model(batch.inputs, batch.hierarchy), batch.targets, node_weights(batch.hierarchy))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def memo_entries():
        return sum(len(dataset.hierarchy(i).__dict__.get("_memo", {})) for i in range(len(dataset)))

    for first_pass in ([0, 1], [2, 3], [4, 0]):
        train(first_pass)
    seen = memo_entries()
    assert seen > 0
    generator = torch.Generator().manual_seed(1)
    for _ in range(12):
        train(torch.randperm(5, generator=generator)[:3].tolist())
        assert memo_entries() == seen
