"""Winds on the sphere: one-hour forecasts of the shallow-water velocity as a 3-D tangent
vector field (equivariant U-Net) or as two scalar channels (u, v) (message-passing U-Net).

Data: the shallow_water_healpix task's trajectories (torch-harmonics' solver, lat-lon
64 x 128, 32 training and 4 test trajectories of 24 hourly steps after a 6 h spin-up).
The wind is turned into 3-D tangent vectors on the lat-lon grid
(:func:`geounet.geometry.tangent.vectors_from_uv`), each Cartesian component regridded to
HEALPix NEST (bilinear) and projected onto the pixels' tangent planes; (u, v) for the
scalar model are that field's components in the pixels' east / north frames, so both
models see the same information. Input: the height h (scalar) and the wind at t; output:
the wind increment to t + 1 h in units of its RMS. All are Multi-ResNets of constant width
on a 3-level HEALPix Haar hierarchy, matched in parameters:

- ``vector``: the equivariant U-Net on (h; wind), tangent output;
- ``vector_axis``: the same told the planet's axis, inputs (h, sin φ; wind, ẑ): a model that
  commutes with every rotation cannot know where the pole is, but the Coriolis parameter
  2Ω sin φ = 2Ω ẑ · p is what drives these dynamics;
- ``uv``: the message-passing U-Net on (h, sin φ, u, v) (its edge features are east / north
  displacements, which also carry the pole's direction).

Scores: relative L2 error of the increment, in 3-D, over all test windows (below 1 beats
persistence), and the same on the test set turned by 90° about the polar axis (the
hierarchy's symmetry, an exact pixel permutation: a symmetry of the rotating shallow-water
equations too). Rotations that move the pole are not symmetries of the data (the Coriolis
parameter 2Ω sin φ is tied to the polar axis), so a test set rotated that way would not
hold solutions of the same equations; they are not used here.

    PYTHONPATH=$PWD python experiments/vector_fields/shallow_water_winds.py --seeds 0 1 2 \
        --cache-dir data --out experiments/vector_fields/shallow_water_winds.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from common import metric_names, parameters, summarise

from geounet.datagen.shallow_water import load_or_generate_shallow_water
from geounet.functional.fields import FieldSpec
from geounet.functional.regrid import latlon_to_healpix
from geounet.geometry.tangent import healpix_points, latlon_points, uv_from_vectors, vectors_from_uv
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.hierarchy.vector_fields import tangent_part
from geounet.models import build_equivariant_unet, build_unet
from geounet.tasks import data_splits
from geounet.tasks.shallow_water_healpix import Config

MODELS = ("vector", "vector_axis", "uv")
QUARTER_TURN = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def healpix_states(config: Config, split: str, nside: int, hierarchy) -> torch.Tensor:
    """``[S, T, N, 4]`` float32: h and the 3-D tangent wind on HEALPix NEST at ``nside``."""
    count, seed = data_splits(config)[split]
    ds = load_or_generate_shallow_water(config.cache_dir, num_trajectories=count, steps=config.steps,
                                        dt_hours=config.dt_hours, nlat=config.nlat, nlon=config.nlon, seed=seed,
                                        initial_condition="random", mach=config.mach, spinup_hours=config.spinup_hours)
    lat, lon = ds["lat"].values, ds["lon"].values
    lons, lats = latlon_points(torch.from_numpy(lat), torch.from_numpy(lon))
    u, v = (torch.from_numpy(ds[name].values).double().flatten(-2) for name in ("u", "v"))  # [S, T, H W]
    wind = vectors_from_uv(u, v, lons, lats).unflatten(-2, (len(lat), len(lon)))  # [S, T, H, W, 3]
    wind = torch.stack([latlon_to_healpix(wind[..., k], lat, lon, nside) for k in range(3)], dim=-1)  # [S, T, N, 3]
    wind = tangent_part(hierarchy, wind, hierarchy.finest_level)
    height = latlon_to_healpix(torch.from_numpy(ds["h"].values).double(), lat, lon, nside)[..., None]
    return torch.cat([height, wind], dim=-1).float()


class Windows:
    """One-step windows (state at t, increment to t + 1) standardised with training statistics."""

    def __init__(self, states: torch.Tensor, stats: dict[str, float]):
        self.inputs = states[:, :-1].flatten(0, 1).clone()  # [W, N, 4]
        self.inputs[..., 0] = (self.inputs[..., 0] - stats["h_mean"]) / stats["h_std"]
        self.inputs[..., 1:] /= stats["wind_rms"]
        self.targets = (states[:, 1:, :, 1:] - states[:, :-1, :, 1:]).flatten(0, 1) / stats["increment_rms"]

    def rotated(self, perm: torch.Tensor) -> Windows:
        """The windows turned by 90° about the polar axis: (g w)[n] = R w[perm[n]]."""
        turned = object.__new__(Windows)
        turned.inputs = torch.cat([self.inputs[:, perm, :1], self.inputs[:, perm, 1:] @ QUARTER_TURN.T], dim=-1)
        turned.targets = self.targets[:, perm] @ QUARTER_TURN.T
        return turned


class UVModel(torch.nn.Module):
    """A scalar-channel U-Net on (h, sin φ, u, v) that returns its (u, v) increment as 3-D vectors."""

    def __init__(self, net: torch.nn.Module, lon: torch.Tensor, lat: torch.Tensor):
        super().__init__()
        self.net, self.lon, self.lat = net, lon, lat

    def forward(self, x: torch.Tensor, hierarchy) -> torch.Tensor:  # [B, N, 4] -> [B, N, 3]
        u, v = uv_from_vectors(x[..., 1:], self.lon, self.lat)
        sin_lat = self.lat.sin().to(x).expand_as(u)
        out = self.net(torch.stack([x[..., 0], sin_lat, u, v], dim=-1), hierarchy)  # [B, N, 2]
        return vectors_from_uv(out[..., 0], out[..., 1], self.lon, self.lat)


class AxisModel(torch.nn.Module):
    """An equivariant U-Net told the rotation axis: inputs (h, sin φ; wind, ẑ), i.e. the Coriolis
    parameter's scalar and vector forms. It commutes with rotations that turn the planet's axis
    with the flow, so with the turns about the axis itself, and can tell latitudes apart."""

    def __init__(self, net: torch.nn.Module, lat: torch.Tensor):
        super().__init__()
        self.net, self.lat = net, lat

    def forward(self, x: torch.Tensor, hierarchy) -> torch.Tensor:  # [B, N, 4] -> [B, N, 3]
        sin_lat = self.lat.sin().to(x).expand_as(x[..., 0])
        axis = torch.tensor([0.0, 0.0, 1.0]).to(x).expand_as(x[..., 1:])
        return self.net(torch.cat([x[..., :1], sin_lat[..., None], x[..., 1:], axis], dim=-1), hierarchy)


def make_model(name: str, hierarchy, width: int, uv_width: int, points) -> torch.nn.Module:
    if name == "vector":
        return build_equivariant_unet(hierarchy, FieldSpec(1, 1), FieldSpec(0, 1), width=width, tangent_output=True)
    if name == "vector_axis":
        net = build_equivariant_unet(hierarchy, FieldSpec(2, 2), FieldSpec(0, 1), width=width, tangent_output=True)
        return AxisModel(net, points[1])
    return UVModel(build_unet(hierarchy, 4, 2, width=uv_width, channel_mult=[1]), *points)


def relative_error(model, windows: Windows, hierarchy, batch: int = 8) -> float:
    """||prediction - truth|| / ||truth|| over all test windows (equal-area pixels)."""
    residual = total = 0.0
    with torch.no_grad():
        for start in range(0, len(windows.inputs), batch):
            x, y = windows.inputs[start:start + batch], windows.targets[start:start + batch]
            residual += float((model(x, hierarchy) - y).square().sum())
            total += float(y.square().sum())
    return (residual / total) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--nside", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=8, help="scalar channels of the equivariant model")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--cache-dir", default="data")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="experiments/vector_fields/shallow_water_winds.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = Config(cache_dir=args.cache_dir)
    hierarchy = HealpixHaarHierarchy(args.nside, 3)
    points = healpix_points(args.nside)
    train_states = healpix_states(config, "train", args.nside, hierarchy)
    test_states = healpix_states(config, "test", args.nside, hierarchy)
    increments = train_states[:, 1:, :, 1:] - train_states[:, :-1, :, 1:]
    stats = {"h_mean": float(train_states[..., 0].mean()), "h_std": float(train_states[..., 0].std()),
             "wind_rms": float(train_states[..., 1:].square().mean().sqrt()),
             "increment_rms": float(increments.square().mean().sqrt())}
    train, test = Windows(train_states, stats), Windows(test_states, stats)
    test_turned = test.rotated(hierarchy.node_symmetries()["rotate_90"])
    target = parameters(make_model("vector", hierarchy, args.width, 1, points))
    uv_width = min(range(4, 65), key=lambda w: abs(parameters(make_model("uv", hierarchy, args.width, w, points))
                                                   - target))

    runs = []
    for seed in args.seeds:
        for name in args.models:  # interleaved: both models of a seed before the next seed
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            model = make_model(name, hierarchy, args.width, uv_width, points)
            optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / args.steps)
            step_times = []
            for _ in range(args.steps):
                index = torch.from_numpy(rng.choice(len(train.inputs), args.batch_size, replace=False))
                start = time.process_time()
                loss = (model(train.inputs[index], hierarchy) - train.targets[index]).square().mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                step_times.append(time.process_time() - start)
            run = {"model": name, "seed": seed, "parameters": parameters(model),
                   "cpu_s_per_step": statistics.median(step_times),
                   "test_rel_l2": relative_error(model, test, hierarchy),
                   "turned_test_rel_l2": relative_error(model, test_turned, hierarchy)}
            print(json.dumps(run), flush=True)
            runs.append(run)

    summary = summarise(runs, metric_names(runs[0]))
    with open(args.out, "w") as handle:
        json.dump({"args": vars(args), "stats": stats, "runs": runs, "summary": summary}, handle, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
