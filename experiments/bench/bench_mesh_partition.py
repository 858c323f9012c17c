"""Benchmark: cluster-hierarchy construction and restrict / prolong on a large mesh.

Builds a torus grid mesh with about ``--faces`` triangles, times
``ClusterHierarchy(mesh, levels)`` (target: under 60 s for 1 M faces on 2 CPU cores)
and one restrict + prolong of a ``[batch, F, channels]`` signal at the finest level,
printed as a ratio to a same-size tensor copy timed in the same run (target: < 4x).

    .venv/bin/python experiments/bench/bench_mesh_partition.py --faces 1000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from geounet.geometry.mesh import Mesh
from geounet.hierarchy.mesh_clusters import ClusterHierarchy


def torus_grid(faces: int, major: float = 1.0, minor: float = 0.3) -> Mesh:
    """A triangulated torus with about ``faces`` faces (2 per quad of an n x 2n grid)."""
    n = max(3, int(round(np.sqrt(faces / 4))))
    m = 2 * n
    u, v = np.meshgrid(np.arange(m) * 2 * np.pi / m, np.arange(n) * 2 * np.pi / n, indexing="ij")
    ring = major + minor * np.cos(v)
    vertices = np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], axis=-1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    a, b = i * n + j, ((i + 1) % m) * n + j
    c, d = ((i + 1) % m) * n + (j + 1) % n, i * n + (j + 1) % n
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Mesh(vertices, faces)


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    mesh = torus_grid(args.faces)
    mesh_time = time.perf_counter() - start
    start = time.perf_counter()
    hierarchy = ClusterHierarchy(mesh, args.levels)
    build_time = time.perf_counter() - start
    print(f"mesh: {mesh.num_faces} faces, {mesh.num_vertices} vertices (made in {mesh_time:.2f} s)")
    print(f"cells per level: {[hierarchy.num_nodes(i) for i in range(hierarchy.num_levels)]}")
    print(f"construction: {build_time:.2f} s (target < 60 s for 1 M faces)")

    start = time.perf_counter()
    edges = [hierarchy.graph(level).num_edges for level in range(hierarchy.num_levels)]
    print(f"level graphs (edges {edges}): {time.perf_counter() - start:.2f} s")

    top = hierarchy.finest_level
    x = torch.randn(args.batch, mesh.num_faces, args.channels, device=args.device)
    hierarchy.prolong(hierarchy.restrict(x, top), top - 1)  # warm the operator cache
    copy = best_time(lambda: x.clone(), args.repeats)
    round_trip = best_time(lambda: hierarchy.prolong(hierarchy.restrict(x, top), top - 1), args.repeats)
    print(f"tensor copy [{args.batch}, {mesh.num_faces}, {args.channels}]: {copy * 1e3:.2f} ms")
    print(f"restrict + prolong at the finest level: {round_trip * 1e3:.2f} ms")
    print(f"ratio (restrict + prolong) / copy = {round_trip / copy:.2f} (target < 4)")


if __name__ == "__main__":
    main()
