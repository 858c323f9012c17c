"""Forecast data loading against a training step at nside 64, and peak memory against data length.

Each data-set length runs in a fresh process, which writes a synthetic ERA5-like lat-lon
netCDF (1° grid, ``--variables`` fields, 6-hourly), builds the HEALPix cache through
:func:`geounet.data.climate_dataset.open_archive` (lazy xarray + dask reads, a few time
steps at a time), computes the training statistics and fetches ``--batches`` random
batches. It reports the median seconds per batch fetch, the median seconds of one
training step (forward + backward + AdamW) of the Multi-ResNet on such a batch, their
ratio, and the process's peak resident memory (``ru_maxrss``) after building the cache and after training. With
lengths differing by ``4x`` the file grows 4x; the peak memory should not.

    .venv/bin/python experiments/bench/bench_climate_loading.py [--nside 64] [--days 20 80]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(path: Path, days: float, variables: int) -> None:
    """Smooth random fields (a few low spherical modes with random phases per step), written in time slabs."""
    import xarray as xr

    lat, lon = np.arange(90.0, -90.5, -1.0), np.arange(0.0, 360.0, 1.0)
    times = np.datetime64("2000-01-01", "ns") + np.arange(int(days * 4)) * np.timedelta64(6, "h")
    rng = np.random.default_rng(0)
    la, lo = np.radians(lat)[:, None], np.radians(lon)[None]
    data = np.empty((times.size, variables, lat.size, lon.size), np.float32)
    for t in range(times.size):
        for c in range(variables):
            phase = rng.uniform(0, 2 * np.pi, 3)
            data[t, c] = np.cos(la) * np.sin(3 * lo + phase[0]) + np.sin(2 * la + phase[1]) + 0.3 * np.cos(
                5 * lo - phase[2]) * np.cos(la) ** 2
    ds = xr.Dataset({f"f{c}": (("time", "latitude", "longitude"), data[:, c], {"units": "1"})
                     for c in range(variables)}, coords={"time": times, "latitude": lat, "longitude": lon})
    ds.to_netcdf(path)


def child(args: argparse.Namespace) -> dict:
    import torch

    from geounet.data.climate_dataset import ForecastSamples, TrainingStatistics, open_archive, split_inits, window
    from geounet.hierarchy import HealpixHaarHierarchy
    from geounet.models import build_unet
    from geounet.models.autoregressive import Autoregressive
    from geounet.nn.message_passing import MessagePassingFactory

    torch.set_num_threads(args.threads)
    path = Path(args.child)
    work = path.parent
    start_memory = peak_mb()
    names = [f"f{c}" for c in range(args.variables)]
    started = time.perf_counter()
    archive = open_archive(str(path), names, "latlon", args.nside, work / f"cache-{args.nside}")
    build_seconds = time.perf_counter() - started
    win = window(archive, 2, 2, 6.0)
    inits = split_inits(archive, win, 1, str(archive.times[0]), str(archive.times[-1]), "train")
    stats = TrainingStatistics.of(archive, np.arange(len(archive.times)))
    hierarchy = HealpixHaarHierarchy(args.nside, 4)
    normalisation = stats.normalisation(archive.valid)
    samples = ForecastSamples(archive, hierarchy, normalisation, win, inits, steps=1)
    after_build = peak_mb()
    rng = np.random.default_rng(0)
    fetch = []
    for _ in range(args.batches):
        indices = rng.choice(len(samples), args.batch_size, replace=False)
        start = time.perf_counter()
        batch = samples.batch(indices)
        fetch.append(time.perf_counter() - start)
    channels = len(names)
    net = build_unet(hierarchy, 2 * channels + 2 * 5, 2 * channels, MessagePassingFactory(hierarchy), width=16,
                     cond_dim=1)
    model = Autoregressive(net, normalisation, 2, 2, 1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = ((model(batch.inputs, hierarchy) - batch.targets) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps.append(time.perf_counter() - start)
    return {"file_mb": path.stat().st_size / 2**20, "samples": len(samples),
            "build_s": build_seconds, "fetch_s": float(np.median(fetch)), "step_s": float(np.median(steps[1:])),
            "peak_mb_at_start": start_memory, "peak_mb_after_cache_and_stats": after_build,
            "peak_mb_after_training": peak_mb()}


def measure(work: Path, days: float, args: argparse.Namespace) -> dict:
    """Write ``days`` of data here, then read and train on it in a fresh process."""
    path = work / f"data-{days:g}d.nc"
    write_file(path, days, args.variables)  # here, so that the reading process's peak memory is its own
    command = [sys.executable, __file__, "--child", str(path), *sys.argv[1:]]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=64)
    parser.add_argument("--days", type=float, nargs="+", default=[20.0, 80.0])
    parser.add_argument("--variables", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # the data file to read
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args)))
        return
    print(f"nside {args.nside}, {args.variables} variables, batch {args.batch_size}, 2 in / 2 out, "
          f"{args.threads} threads")
    print(f"{'days':>6} {'file MB':>8} {'samples':>8} {'cache s':>8} {'fetch s':>8} {'step s':>8} {'fetch/step':>10} "
          f"{'peak MB: cache':>15} {'train':>7}")
    work = Path(tempfile.mkdtemp(prefix="bench_climate_"))
    try:
        rows = [measure(work, days, args) for days in args.days]
    finally:
        shutil.rmtree(work)
    for days, row in zip(args.days, rows, strict=True):
        print(f"{days:>6g} {row['file_mb']:>8.0f} {row['samples']:>8} {row['build_s']:>8.1f} {row['fetch_s']:>8.3f} "
              f"{row['step_s']:>8.3f} {row['fetch_s'] / row['step_s']:>10.3f} "
              f"{row['peak_mb_after_cache_and_stats']:>15.0f} "
              f"{row['peak_mb_after_training']:>7.0f}")


if __name__ == "__main__":
    main()
