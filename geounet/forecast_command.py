"""``geounet forecast RUN_DIR --init DATE --steps N --out FILE``: a trained forecast run's rollout as a file.

The run's checkpoint holds the model and the training split's normalisation; the data
(the run's ``task.data``, through its HEALPix cache) supply the ``input_steps`` states up
to ``--init`` and the constant fields. The file (netCDF for ``.nc``, zarr for
``.zarr``) holds every forecast variable with dims ``(time, lead_time, *space)``:
``time`` the init time, ``lead_time`` the ``N`` lead times (``dt_hours`` apart), a
``valid_time (time, lead_time)`` coordinate, and ``space`` the layout of the input data:
the original lat-lon grid (regridded back from HEALPix, bilinear), ``pixel`` for
"nest" / "ring" or ``(face, height, width)`` for face layouts. Variables keep the input's
names and attributes (units, long_name); the file's attributes state the HEALPix nside
and ordering the forecast was made (and, for HEALPix layouts, is stored) in.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from geounet.errors import GeounetError


def add_forecast_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``geounet forecast`` on the ``geounet`` command's sub-parsers."""
    parser = commands.add_parser("forecast", help="write a trained forecast run's rollout to netCDF / zarr",
                                 description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory of `geounet train` with task.name = forecast")
    parser.add_argument("--init", required=True, help="the init time, a time of the data, e.g. 2017-03-01T00")
    parser.add_argument("--steps", required=True, type=int, help="number of lead times (dt_hours apart)")
    parser.add_argument("--out", required=True, type=Path, help="the output file: .nc (netCDF) or .zarr")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix not in (".nc", ".zarr"):
        raise GeounetError(f"--out must end in .nc (netCDF) or .zarr, got {args.out}")
    if args.out.exists() and not args.overwrite:
        raise GeounetError(f"{args.out} exists; pass --overwrite to replace it")
    if args.steps < 1:
        raise GeounetError(f"--steps must be >= 1, got {args.steps}")
    model, hierarchy, config, data = load_forecaster(args.run_dir, args.device)
    forecast = rollout_dataset(model, hierarchy, config, data, args.init, args.steps)
    forecast.attrs["run_dir"] = str(args.run_dir)
    if args.out.exists():
        shutil.rmtree(args.out) if args.out.is_dir() else args.out.unlink()
    if args.out.suffix == ".zarr":
        forecast.to_zarr(args.out)
    else:
        forecast.to_netcdf(args.out)
    print(f"wrote {args.out}: {', '.join(config.variables)} at {args.steps} lead times from {args.init} "
          f"({', '.join(f'{d}={n}' for d, n in forecast.sizes.items())})")
    return 0


def load_forecaster(run_dir: Path, device: str):
    """``(model in eval mode, its hierarchy, task config, archive)`` of a forecast run."""
    import torch

    from geounet.experiment.config import config_from_dict
    from geounet.experiment.runner import build_model
    from geounet.tasks import forecast
    from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config

    path = run_dir / "checkpoint.pt"
    state = load_checkpoint(path)
    cfg = config_from_dict(run_config(state, path))
    if cfg.task.name != forecast.Config.name:
        raise GeounetError(f"{run_dir} is a {cfg.task.name!r} run; geounet forecast needs a run of task 'forecast'")
    data = forecast.archive(cfg.task)
    structure = forecast.structure(cfg.task, cfg.model.num_levels, num_constants=data.constants.shape[1])
    model = build_model(cfg, structure)
    load_model_state(model, state["model"], path)  # weights and the training normalisation
    return model.to(torch.device(device)).eval(), structure.hierarchy, cfg.task, data


def rollout_dataset(model, hierarchy, config, data, init: str, leads: int):
    """The rollout of ``leads`` lead times from ``init`` as an xarray Dataset (see the module docstring)."""
    import numpy as np
    import torch
    import xarray as xr

    from geounet.data.climate_dataset import ForecastSamples, TrainingStatistics, window
    from geounet.functional.regrid import healpix_to_latlon
    from geounet.geometry.healpix import from_nest

    win = window(data, config.input_steps, config.output_steps, config.dt_hours)
    try:
        when = np.datetime64(init, "ns")
    except ValueError as error:
        raise GeounetError(f"--init must be a date like 2017-03-01T00, got {init!r}") from error
    (index,) = np.flatnonzero(data.times == when) if (data.times == when).any() else (None,)
    first = -win.offsets(1)[0]
    if index is None or index < first:
        raise GeounetError(f"--init {init} is not a time of the data with {config.input_steps} input states up to it "
                         f"(the data run {data.times[first]} .. {data.times[-1]} every {data.dt})")
    steps = -(-leads // config.output_steps)
    stats = TrainingStatistics(model.mean.cpu(), model.std.cpu(), torch.empty(0))
    device = model.mean.device
    samples = ForecastSamples(data, hierarchy, stats, win, np.array([index]), steps)
    states = torch.from_numpy(np.asarray(data.fields[index + win.offsets(steps)[: config.input_steps]]))[None]
    with torch.no_grad():
        x = samples.model_inputs(states, data.times[[index]], steps).to(device)
        y = model.physical(model(x, samples.hierarchy.to(device))).cpu()[0, :leads].double()  # [L, N, C]
    lead_time = np.arange(1, leads + 1) * (data.dt * win.stride)
    coords = {"time": [when], "lead_time": lead_time, "valid_time": (("time", "lead_time"), when + lead_time[None])}
    grid = data.meta["grid"]
    if config.layout == "latlon":
        lat, lon = np.asarray(grid["lat"]), np.asarray(grid["lon"])
        values = healpix_to_latlon(y.permute(2, 0, 1), lat, lon, ordering="nest")  # [C, L, H, W]
        dims = (grid["lat_name"], grid["lon_name"])
        coords.update({dims[0]: lat, dims[1]: lon})
    else:
        values = from_nest(y.permute(2, 0, 1), config.layout)  # [C, L, *pixels]
        dims = ("face", "height", "width") if values.dim() == 5 else ("pixel",)
    variables = {}
    for c, name in enumerate(config.variables):
        attrs = {k: v for k, v in data.meta["attrs"][name].items() if not k.startswith("healpix_")}
        variables[name] = (("time", "lead_time", *dims), values[c][None].float().numpy(), attrs)
    attrs = {"healpix_nside": data.nside, "model_ordering": "nest", "init_time": str(when),
             "source": str(config.data)}
    if config.layout != "latlon":
        attrs["healpix_order"] = config.layout
    else:
        attrs["regridded_to"] = "the source's lat-lon grid (bilinear from HEALPix)"
    return xr.Dataset(variables, coords=coords, attrs=attrs)

