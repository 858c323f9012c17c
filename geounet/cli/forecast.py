"""``geounet forecast RUN_DIR [--data PATH] --init DATE --steps N --out FILE``: a forecast run's rollout as a file.

The run folder holds everything the forecast needs besides the initial states (the model,
the training normalisation, the constant fields, the masks and the source grid), so the
command works from any directory. ``--data`` names the file (netCDF, zarr or a glob)
holding the ``input_steps`` states up to ``--init``, at any dates, on the run's grid;
without it the run's training data are read, if they are still where they were. The
output (netCDF for ``.nc``, zarr for ``.zarr``) holds every forecast variable with dims
``(time, lead_time, *space)``: ``time`` the init time, ``lead_time`` the ``N`` lead times
(``dt_hours`` apart), a ``valid_time (time, lead_time)`` coordinate, and ``space`` the
layout of the input data: the original lat-lon grid (regridded back from HEALPix,
bilinear), ``pixel`` for "nest" / "ring" or ``(face, height, width)`` for face layouts.
Variables keep the input's names and attributes (units, long_name) and are NaN where the
run's training data had none (a variable's mask). ``--layout weatherbench2`` writes
WeatherBench 2's layout instead: ``(time, prediction_timedelta, [level,] latitude,
longitude)``, the levels of a variable (z500, z850) as one variable ``z`` with a ``level``
dimension. ``--layout dlwp`` writes DLWP-HEALPix's forecast files: ``(time, step, face,
height, width)`` on the model's HEALPix grid, ``step`` a timedelta from 0 (the initial
state) to ``N dt_hours``. ``--data`` may itself be a forecast file (dims ``time, step,
...``, as DLWP writes them): its lead ``--data-step`` (default: the run's
``task.data_step_hours``, 0 unless set: the initial states) at
the valid times ``time + step`` is the series the initial states are taken from. The
file's attributes state the HEALPix nside and ordering the forecast was made in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geounet.data.outputs import check_output, write_output
from geounet.errors import GeounetError
from geounet.inference.forecast import LAYOUTS, Forecaster


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``geounet forecast`` on the ``geounet`` command's sub-parsers."""
    parser = commands.add_parser("forecast", help="write a trained forecast run's rollout to netCDF / zarr",
                                 description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("run_dir", type=Path, help="a run directory of `geounet train` with task.name = forecast")
    parser.add_argument("--data", default=None,
                        help="netCDF / zarr file or glob holding the initial states (default: the run's task.data)")
    parser.add_argument("--init", required=True, help="the init time, a time of the data, e.g. 2017-03-01T00")
    parser.add_argument("--steps", required=True, type=int, help="number of lead times (dt_hours apart)")
    parser.add_argument("--out", required=True, type=Path, help="the output file: .nc (netCDF) or .zarr")
    parser.add_argument("--layout", choices=LAYOUTS, default="geounet",
                        help="geounet: (time, lead_time, *space); weatherbench2: (time, prediction_timedelta, level, "
                        "latitude, longitude); dlwp: DLWP-HEALPix's (time, step, face, height, width), step 0 the "
                        "initial state")
    parser.add_argument("--data-step", type=float, default=None, metavar="HOURS",
                        help="when --data is a forecast file (dims time, step, ...), the lead read as the initial "
                        "states (default: the run's task.data_step_hours, 0 = the forecasts' own initial states)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_output(args.out, (".nc", ".zarr"), overwrite=args.overwrite)
    if args.steps < 1:
        raise GeounetError(f"--steps must be >= 1, got {args.steps}")
    forecaster = Forecaster.load(args.run_dir, args.device)
    forecast = forecaster.predict(args.data, init=args.init, steps=args.steps, layout=args.layout,
                                   data_step_hours=args.data_step)
    write_output(args.out, forecast.to_zarr if args.out.suffix == ".zarr" else forecast.to_netcdf)
    print(f"wrote {args.out}: {', '.join(forecast.data_vars)} at {args.steps} lead times from {args.init} "
          f"({', '.join(f'{d}={n}' for d, n in forecast.sizes.items())})")
    return 0
