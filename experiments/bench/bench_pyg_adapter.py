"""PyG DataLoader batches through geounet.data.pyg.PygBatches against MeshDataset.batch.

Both turn the same graphs (DarcyFamily domains, face fields, Clusters(3)) into the same
union batch with hierarchies already built; the adapter also splits the PyG Batch and
rebuilds each graph's Mesh (validation + content hash) on every batch. Prints the
median and min-max over repeats of the time per batch, the variants interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore", category=FutureWarning)  # torch_geometric's torch.jit.script

from torch_geometric.data import Batch as PygBatch  # noqa: E402

from geounet.data.mesh_dataset import Clusters, MeshDataset, MeshSample  # noqa: E402
from geounet.data.pyg import PygBatches, to_pyg  # noqa: E402
from geounet.datagen.mesh_families import DarcyFamily  # noqa: E402
from geounet.geometry.mesh import Mesh  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graphs", type=int, default=4, help="graphs per batch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="batches per timed repeat")
    args = parser.parse_args()
    family = DarcyFamily(num_meshes=args.graphs)
    samples = []
    for mesh_id in range(args.graphs):
        data = family.sample(mesh_id)
        fields = [torch.from_numpy(data[f"{name}_face"][0]).float()[:, None] for name in ("k", "u")]
        samples.append(MeshSample(Mesh(data["vertices"], data["faces"]), *fields))
    dataset = MeshDataset(samples, Clusters(3)).build_all()
    adapter = PygBatches(Clusters(3))
    pyg_batch = PygBatch.from_data_list([to_pyg(s) for s in samples])
    adapter(pyg_batch)  # hierarchies built once, outside the timing
    indices = list(range(args.graphs))
    variants = {"MeshDataset.batch": lambda: dataset.batch(indices), "PygBatches": lambda: adapter(pyg_batch)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, call in variants.items():  # interleaved
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    faces = sum(s.mesh.num_faces for s in samples)
    print(f"{args.graphs} graphs, {faces} faces per batch; ms per batch, median (min-max) of {args.repeats}:")
    for name, values in times.items():
        print(f"  {name:18s} {statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})")
    print(f"  ratio PygBatches / MeshDataset.batch: "
          f"{statistics.median(times['PygBatches']) / statistics.median(times['MeshDataset.batch']):.2f}")


if __name__ == "__main__":
    main()
