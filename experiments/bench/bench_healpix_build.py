"""Time and peak memory to build every level of a HEALPix Haar hierarchy's graphs.

    .venv/bin/python experiments/bench/bench_healpix_build.py [--nside 1024]

Target (issue 14): all levels of nside 1024 (12.6 M pixels, 100 M edges) in under 5 s with
a peak resident set under 2 GB. The graphs store the int32 neighbour table and its mask
only; the edge geometry is computed on demand, so the script also times that, once, for
the finest level (what a model's first call at this nside pays, per level). As a
reference in the same run: ``healpy.get_all_neighbours`` on the finest grid, the table
alone. Peak memory is the rise of the peak resident set (VmHWM, reset through
/proc/self/clear_refs) over the resident set before each phase.
"""

from __future__ import annotations

import argparse
import time

import healpy
import numpy as np
import torch
from peak_memory import reset_peak, status_bytes

from geounet.hierarchy.healpix import HealpixHaarHierarchy


def phase(fn):
    """``(result, (wall, CPU) seconds, peak bytes above the resident set before the call)`` of ``fn()``."""
    base = reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, (time.perf_counter() - start, time.process_time() - cpu), status_bytes("VmHWM") - base


def show(seconds: tuple[float, float], peak: int) -> str:
    return f"{seconds[0]:.2f} s wall, {seconds[1]:.2f} s CPU, peak +{peak / 2**30:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = args.nside.bit_length()
    h = HealpixHaarHierarchy(args.nside, levels)
    graphs, build, build_peak = phase(h.materialize)
    resident = status_bytes("VmRSS")
    for level in range(h.num_levels):
        graph = h.graph(level)
        print(f"level {level:>2} nside {h.nside_at(level):>5}: {graph.num_edges:>10} edges, "
              f"stores {graph!r}")
    stored = sum(t.numel() * t.element_size() for level in range(h.num_levels)
                 for t in (h.graph(level).neighbours, h.graph(level).neighbour_mask))
    finest = h.graph(h.finest_level)
    _, geometry, geometry_peak = phase(lambda: finest.neighbour_attr)
    pixels = np.arange(h.num_nodes(h.finest_level))
    _, reference, reference_peak = phase(lambda: healpy.get_all_neighbours(args.nside, pixels, nest=True))
    print(f"all {levels} levels: {show(build, build_peak)}, stored {stored / 2**30:.2f} GB (target < 5 s, < 2 GB); "
          f"resident set after it {resident / 2**30:.2f} GB")
    print(f"edge geometry of the finest level on demand: {show(geometry, geometry_peak)}")
    print(f"reference, healpy.get_all_neighbours at nside {args.nside}: {show(reference, reference_peak)}; "
          f"build / reference (wall) = {build[0] / reference[0]:.2f}")


if __name__ == "__main__":
    main()
