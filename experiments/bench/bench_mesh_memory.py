"""Benchmark: resident memory over a long mixed-mesh training run (issue 24, memory drift).

A Multi-ResNet (cluster-Haar spaces, width 16, 4 levels) trains on Darcy samples from
``--meshes`` random domains, every step a freshly collated batch of ``--batch`` different
meshes (as :func:`geounet.train.loop.fit` does). Every ``--every`` steps it records

- ``rss``: the process's anonymous resident memory (``RssAnon`` of ``/proc/self/status``), MB;
- ``rss_trimmed``: the same right after glibc's ``malloc_trim(0)`` (returns the free
  memory at the top of every heap arena to the system): what is left is memory in use
  plus fragmentation the trim cannot return;
- ``memo_entries``: the number of memoised tensors on the data set's per-mesh
  hierarchies (:meth:`Hierarchy.cached`), the one Python-level cache that grows with the
  meshes seen;
- ``objects``: Python objects tracked by the garbage collector.

With ``--trim-every N`` the run itself calls ``malloc_trim(0)`` every N steps (the
candidate fix for fragmentation). It prints the table and the drift over the second half
of the run: ``(rss(end) - rss(middle)) / rss(middle)``, and writes the rows as JSON.

    .venv/bin/python experiments/bench/bench_mesh_memory.py --steps 4000 --every 250 --json out.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json

import torch
from bench_mesh_batches import samples, trainer  # a sibling script

from geounet.data.mesh_dataset import Clusters, MeshDataset
from geounet.datagen.mesh_families import DarcyFamily
from geounet.models import build_unet

_LIBC = ctypes.CDLL("libc.so.6")


def rss_mb() -> float:
    """Anonymous resident memory (``RssAnon``), MB: the heap and tensors, not the pages of
    shared libraries, which the kernel drops and reloads under memory pressure."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("RssAnon:"))
    return int(line.split()[1]) / 1024


def memo_entries(dataset: MeshDataset) -> int:
    return sum(len(h.__dict__.get("_memo", {})) for h in dataset._hierarchies.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trim-every", type=int, default=0, help="call malloc_trim(0) every N steps (0: never)")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    family = DarcyFamily(num_meshes=args.meshes)
    dataset = MeshDataset(samples(family, range(args.meshes)), Clusters(4)).build_all()
    step = trainer(build_unet(dataset.hierarchy(0), 1, 1, width=16))
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(1, args.steps + 1):
        step(dataset.batch(torch.randperm(args.meshes, generator=generator)[: args.batch].tolist()))
        if args.trim_every and i % args.trim_every == 0:
            _LIBC.malloc_trim(0)
        if i % args.every == 0:
            row = {"step": i, "rss": rss_mb()}
            _LIBC.malloc_trim(0)
            row.update(rss_trimmed=rss_mb(), memo_entries=memo_entries(dataset), objects=len(gc.get_objects()))
            rows.append(row)
            print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    middle, end = rows[len(rows) // 2 - 1], rows[-1]
    for key in ("rss", "rss_trimmed"):
        print(f"{key} drift over the second half (steps {middle['step']}-{end['step']}): "
              f"{100 * (end[key] - middle[key]) / middle[key]:+.2f} %")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
