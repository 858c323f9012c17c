"""Time to build every level of a HEALPix Haar hierarchy, neighbour tables and edge geometry included.

    .venv/bin/python experiments/bench/bench_healpix_build.py [--nside 1024]

Target: all levels of nside 1024 (12.6 M pixels, 100 M edges) in under 10 s. Also prints
healpy.get_all_neighbours on the finest grid, timed in the same run, as a reference.
"""

from __future__ import annotations

import argparse
import time

import healpy
import numpy as np

from geounet.hierarchy.healpix import HealpixHaarHierarchy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=1024)
    args = parser.parse_args()
    levels = args.nside.bit_length()
    start = time.perf_counter()
    h = HealpixHaarHierarchy(args.nside, levels)
    for level in range(h.num_levels - 1, -1, -1):
        t0 = time.perf_counter()
        graph = h.graph(level)
        print(f"level {level:>2} nside {h.nside_at(level):>5}: {graph.num_edges:>10} edges "
              f"in {time.perf_counter() - t0:.3f} s")
    total = time.perf_counter() - start
    t0 = time.perf_counter()
    healpy.get_all_neighbours(args.nside, np.arange(h.num_nodes(h.finest_level)), nest=True)
    reference = time.perf_counter() - t0
    print(f"all {levels} levels: {total:.2f} s (target < 10 s); "
          f"healpy.get_all_neighbours alone at nside {args.nside}: {reference:.2f} s")


if __name__ == "__main__":
    main()
