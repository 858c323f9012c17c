"""PyTorch Geometric interop: ``Data`` and ``Batch`` in, geounet samples and batches out, and back.

PyG stores a mesh as ``Data(pos [V, D], face [3, F], x, y)``. Its ``Batch`` (what
``torch_geometric.loader.DataLoader`` yields) concatenates B graphs: ``pos`` and vertex
fields along the vertices, ``face`` along the faces with every index offset by the
vertices of the graphs before it, ``ptr [B + 1]`` the vertex offsets and ``batch [Σ V]``
the graph of each vertex.

- :func:`from_pyg` turns a ``Data`` into a :class:`~geounet.data.mesh_dataset.MeshSample`
  and a ``Batch`` into one sample per graph: split at ``ptr`` (or at the runs of
  ``batch``), faces shifted back to each graph's own vertices, so meshes are never fused.
- :meth:`MeshDataset.from_pyg(data_list, recipe) <geounet.data.mesh_dataset.MeshDataset.from_pyg>`
  is a data set of PyG graphs for :func:`geounet.train.loop.fit`.
- :class:`PygBatches` is the adapter for PyG's own ``DataLoader``: it turns each PyG
  ``Batch`` into the geounet :class:`~geounet.data.samples.Batch` that
  :func:`~geounet.data.mesh_dataset.collate` makes of the same graphs (``[1, Σ N_j, C]``
  on their disjoint union), building each distinct mesh's hierarchy once.
- :func:`to_pyg` is the inverse of :func:`from_pyg` on one sample.

``x`` / ``y`` hold vertex values (``at="vertex"``, ``[V, C]``) or face values
(``at="face"``, ``[F, C]``, in the order of ``face``'s columns); 1-D fields get one channel.
PyG counts a graph's nodes from ``x`` unless told, so a ``Data`` with face values needs
``num_nodes=V`` before it is batched (:func:`to_pyg` sets it).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from geounet.data.mesh_dataset import HierarchyRecipe, MeshSample, cached_hierarchy, check_sample, collate
from geounet.data.samples import Batch
from geounet.errors import GeounetError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy

PLACES = ("vertex", "face")


def from_pyg(data, at: str = "vertex") -> MeshSample | list[MeshSample]:
    """A sample from a PyG ``Data``, or the list of its graphs' samples from a PyG ``Batch``
    (see the module docstring); ``at`` says whether ``x`` / ``y`` are vertex or face values."""
    if at not in PLACES:
        raise GeounetError(f"at must be 'vertex' ([V, C] fields) or 'face' ([F, C] fields), got {at!r}")
    for name in ("pos", "face", "x", "y"):
        if getattr(data, name, None) is None:
            raise GeounetError(f"the PyG Data needs '{name}' (pos [V, D], face [3, F], x and y); it has {data.keys()}")
    if data.face.dim() != 2 or data.face.shape[0] != 3:
        raise GeounetError(f"PyG's face must be [3, F], got {tuple(data.face.shape)}")
    ptr = _vertex_offsets(data)
    if ptr is None:
        return _sample(data.pos, data.face, data.x, data.y, at, "the PyG Data")
    face_ptr = _face_offsets(data.face, ptr)
    offsets = ptr if at == "vertex" else face_ptr
    for name in ("x", "y"):
        if getattr(data, name).shape[0] != int(offsets[-1]):
            raise GeounetError(f"the PyG Batch's {name} has {getattr(data, name).shape[0]} rows, not its "
                               f"{int(offsets[-1])} {at}s; {_other_place(at)}")
    samples = []
    for g in range(len(ptr) - 1):
        v0, v1, f0, f1 = int(ptr[g]), int(ptr[g + 1]), int(face_ptr[g]), int(face_ptr[g + 1])
        n0, n1 = int(offsets[g]), int(offsets[g + 1])
        samples.append(_sample(data.pos[v0:v1], data.face[:, f0:f1] - v0, data.x[n0:n1], data.y[n0:n1], at,
                               f"graph {g} of the PyG Batch"))
    return samples


def to_pyg(sample: MeshSample):
    """The PyG ``Data(pos, face, x, y, num_nodes)`` of ``sample`` (``face`` in PyG's ``[3, F]``
    layout; ``num_nodes`` the vertex count, which PyG would otherwise read off face-valued ``x``)."""
    from torch_geometric.data import Data

    return Data(pos=torch.tensor(sample.mesh.vertices, dtype=torch.float32),
                face=torch.tensor(np.ascontiguousarray(sample.mesh.faces.T), dtype=torch.long),
                x=sample.inputs, y=sample.targets, num_nodes=sample.mesh.num_vertices)


class PygBatches:
    """The adapter from PyG's ``DataLoader`` to geounet models::

        loader = torch_geometric.loader.DataLoader(data_list, batch_size=4, shuffle=True)
        to_geounet = PygBatches(Clusters(3), cache_dir="data")
        for pyg_batch in loader:
            batch = to_geounet(pyg_batch)                      # a geounet Batch, [1, Σ N_j, C]
            prediction = model(batch.inputs, batch.hierarchy)  # on the union of the meshes

    A batch equals :func:`~geounet.data.mesh_dataset.collate` of the graphs' one-sample
    batches. Hierarchies are built once per distinct mesh (by content hash) and kept, on
    disk too with ``cache_dir``; ``device`` is where they are moved once.
    """

    def __init__(self, recipe: HierarchyRecipe, cache_dir: str | os.PathLike | None = None,
                 device: torch.device | str = "cpu"):
        self.recipe = recipe
        self.cache_dir = cache_dir
        self.device = torch.device(device)
        self._hierarchies: dict[str, Hierarchy] = {}

    def hierarchy(self, mesh: Mesh) -> Hierarchy:
        """``recipe``'s hierarchy on ``mesh`` (built, or loaded from the cache, once)."""
        key = mesh.content_hash
        if key not in self._hierarchies:
            self._hierarchies[key] = cached_hierarchy(mesh, self.recipe, self.cache_dir).to(self.device)
        return self._hierarchies[key]

    def __call__(self, pyg_batch) -> Batch:
        converted = from_pyg(pyg_batch, at=self.recipe.at)
        samples = converted if isinstance(converted, list) else [converted]
        for index, sample in enumerate(samples):
            check_sample(sample, self.recipe, f"graph {index} of the PyG Batch", samples[0])
        return collate([Batch(s.inputs[None], s.targets[None], self.hierarchy(s.mesh)) for s in samples])


def _vertex_offsets(data) -> Tensor | None:
    """``ptr [B + 1]`` of a PyG ``Batch`` (from ``ptr``, or from the runs of ``batch``); None for a ``Data``."""
    ptr, batch = getattr(data, "ptr", None), getattr(data, "batch", None)
    if ptr is None and batch is None:
        return None
    if ptr is None:
        if batch.numel() != data.pos.shape[0] or (batch.numel() and bool((batch[1:] < batch[:-1]).any())):
            raise GeounetError("the PyG Batch's batch vector must give each of its vertices' graph in ascending "
                               "order (as Batch.from_data_list makes it)")
        counts = torch.bincount(batch.cpu(), minlength=int(batch.max()) + 1 if batch.numel() else 0)
        ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    ptr = ptr.cpu().long()
    if int(ptr[0]) != 0 or int(ptr[-1]) != data.pos.shape[0] or bool((ptr[1:] <= ptr[:-1]).any()):
        raise GeounetError(f"the PyG Batch's ptr {ptr.tolist()[:6]}... must rise from 0 to its {data.pos.shape[0]} "
                           "vertices, one step per graph; with face-valued x give each Data num_nodes=V (PyG "
                           "counts nodes from x otherwise)")
    return ptr


def _face_offsets(face: Tensor, ptr: Tensor) -> Tensor:
    """``[B + 1]`` offsets of each graph's faces: the faces of graph g are those whose corners
    lie in ``[ptr[g], ptr[g + 1])``, consecutive as PyG concatenates them."""
    graph = torch.searchsorted(ptr[1:], face.cpu().long(), right=True)  # [3, ΣF] the graph of every corner
    if bool((graph != graph[0]).any()):
        bad = int((graph != graph[0]).any(dim=0).nonzero()[0])
        raise GeounetError(f"face {bad} of the PyG Batch joins vertices of graphs {sorted(set(graph[:, bad].tolist()))}"
                           "; its face indices must be offset by ptr as Batch.from_data_list does")
    graph = graph[0]
    if graph.numel() and bool((graph[1:] < graph[:-1]).any()):
        raise GeounetError("the PyG Batch's faces are not grouped by graph in ascending order (as "
                           "Batch.from_data_list makes them)")
    counts = torch.bincount(graph, minlength=len(ptr) - 1)
    if bool((counts == 0).any()):
        raise GeounetError(f"graph {int((counts == 0).nonzero()[0])} of the PyG Batch has no faces")
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _sample(pos: Tensor, face: Tensor, x: Tensor, y: Tensor, at: str, what: str) -> MeshSample:
    try:
        mesh = Mesh(pos.detach().cpu().double().numpy(), face.t().cpu().numpy())
    except GeounetError as error:
        raise GeounetError(f"{what}: {error}") from error
    count = mesh.num_vertices if at == "vertex" else mesh.num_faces
    fields = []
    for name, values in (("x", x), ("y", y)):
        values = values[:, None] if values.dim() == 1 else values
        if values.dim() != 2 or values.shape[0] != count:
            raise GeounetError(f"{what}: {name} must be [{count}, C] ({at} values: its mesh has {mesh.num_vertices} "
                               f"vertices and {mesh.num_faces} faces), got {tuple(values.shape)}; {_other_place(at)}")
        fields.append(values.detach().cpu().float())
    return MeshSample(mesh, *fields)


def _other_place(at: str) -> str:
    other = "face" if at == "vertex" else "vertex"
    return f"pass at={other!r} if they are {other} values, or convert them with Mesh.{other}_to_{at}"
