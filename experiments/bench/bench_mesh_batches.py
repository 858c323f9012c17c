"""Benchmark: training throughput of mixed-mesh batches against batches of one mesh.

A Multi-ResNet (cluster-Haar spaces, width 16, 4 levels) trains on Darcy samples from
``--meshes`` different random domains (geounet.datagen.mesh_families.DarcyFamily). Timed,
in the same run and on the same number of faces per batch:

- **mixed**: every batch is the disjoint union of ``--batch`` different meshes (collation,
  per-mesh prepared graphs concatenated, per-mesh norms);
- **one mesh**: every batch is ``--batch`` samples on one mesh, ``[B, N, C]`` on a shared
  hierarchy (the fixed-degree fast path with no per-sample copies).

It prints samples/s and faces/s of both, and the ratio (the cost of mixing meshes).

Then, on the mixed-mesh batches (issue 20: batches at the speed of one mesh):

- **fresh**: a training step on a batch collated just before it (``dataset.batch``: the
  union hierarchy and its operators are new, joined from each mesh's memoised parts);
- **reused**: a step on a batch of the same meshes collated once before timing (its union
  operators memoised on it).

Steps alternate fresh, reused, fresh, .. over the same index batches, after one warm-up
pass that memoises every mesh's own parts (as an epoch of training does). Each of
``--repeats`` passes gives fresh / reused (summed step times); it prints their median and
range.

    .venv/bin/python experiments/bench/bench_mesh_batches.py --meshes 40 --batch 8 --steps 30 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from geounet.data.mesh_dataset import Clusters, MeshDataset, MeshSample
from geounet.data.samples import Batch, node_weights
from geounet.datagen.mesh_families import DarcyFamily
from geounet.functional.losses import weighted_mse
from geounet.geometry.mesh import Mesh
from geounet.models import build_unet


def samples(family: DarcyFamily, ids) -> list[MeshSample]:
    out = []
    for mesh_id in ids:
        data = family.sample(mesh_id)
        mesh = Mesh(data["vertices"], data["faces"])
        k, u = (torch.from_numpy(data[f"{name}_face"][0]).float()[:, None] for name in ("k", "u"))
        out.append(MeshSample(mesh, k.log(), u * 30))
    return out


def trainer(model) -> Callable[[Batch], int]:
    """One forward + backward + Adam step on a batch; returns the batch's faces."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch: Batch) -> int:
        loss = weighted_mse(model(batch.inputs, batch.hierarchy), batch.targets, node_weights(batch.hierarchy))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return batch.inputs.shape[0] * batch.inputs.shape[1]

    return step


def throughput(model, dataset: MeshDataset, batches: list[list[int]]) -> tuple[float, float]:
    """(samples/s, faces/s) of forward + backward + Adam over ``batches`` (after one warm-up)."""
    step = trainer(model)
    step(dataset.batch(batches[0]))
    faces, start = 0, time.perf_counter()
    for indices in batches:
        faces += step(dataset.batch(indices))
    seconds = time.perf_counter() - start
    return sum(len(b) for b in batches) / seconds, faces / seconds


def fresh_over_reused(model, dataset: MeshDataset, batches: list[list[int]], repeats: int) -> list[float]:
    """Per pass over ``batches``: time of steps on freshly collated batches (collation
    included) / time of steps on the same batches collated once, steps interleaved."""
    step = trainer(model)
    reused = [dataset.batch(indices) for indices in batches]
    for indices, batch in zip(batches, reused, strict=True):  # memoise every mesh's parts and each reused union
        step(dataset.batch(indices))
        step(batch)
    ratios = []
    for _ in range(repeats):
        fresh_seconds = reused_seconds = 0.0
        for indices, batch in zip(batches, reused, strict=True):
            start = time.perf_counter()
            step(dataset.batch(indices))
            middle = time.perf_counter()
            step(batch)
            fresh_seconds += middle - start
            reused_seconds += time.perf_counter() - middle
        ratios.append(fresh_seconds / reused_seconds)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="passes of fresh vs reused steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    family = DarcyFamily(num_meshes=args.meshes)
    mixed = MeshDataset(samples(family, range(args.meshes)), Clusters(4)).build_all()
    # one mesh of about the mean face count, repeated: the same number of faces per batch
    mean_faces = sum(s.mesh.num_faces for s in mixed.samples) / len(mixed)
    typical = min(mixed.samples, key=lambda s: abs(s.mesh.num_faces - mean_faces))
    single = MeshDataset([typical] * args.meshes, Clusters(4)).build_all()

    generator = torch.Generator().manual_seed(0)
    batches = [torch.randperm(args.meshes, generator=generator)[: args.batch].tolist() for _ in range(args.steps)]
    torch.manual_seed(0)
    model = build_unet(mixed.hierarchy(0), 1, 1, width=16)
    rows = {"mixed meshes": throughput(model, mixed, batches), "one mesh": throughput(model, single, batches)}
    print(f"{args.batch} samples per batch, {args.steps} steps, {args.threads} thread(s), mean faces {mean_faces:.0f}")
    for name, (per_second, faces) in rows.items():
        print(f"{name:<13} {per_second:8.1f} samples/s {faces:10.0f} faces/s")
    ratio = rows["mixed meshes"][1] / rows["one mesh"][1]
    print(f"mixed / one mesh (faces per second): {ratio:.2f}")
    ratios = fresh_over_reused(model, mixed, batches, args.repeats)
    print(f"fresh / reused mixed-mesh batch (step time, {args.repeats} passes of {args.steps} steps): median "
          f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}")


if __name__ == "__main__":
    main()
