"""
Climate modeller: from a netCDF file to a forecast from new data
================================================================

You have reanalysis-like fields on a regular latitude-longitude grid in a netCDF
file, the way an ERA5 download comes: variables with dimensions ``(time,
pressure_level, latitude, longitude)``, latitude from the North Pole down. You
want a data-driven forecaster of those fields, trained on your file, that you
can later run from *new* initial conditions, and you want to know whether it
beats persistence.

This tutorial goes through the whole workflow with geounet's ``forecast`` task:

1. write a small ERA5-like netCDF file from geounet's rotating shallow-water
   solver;
2. train a HEALPix Multi-ResNet forecaster on it with the ``geounet train``
   command;
3. load the trained run from its folder alone, somewhere else, and forecast
   from a stretch of the trajectory that was not in the training file;
4. score the forecasts against the truth and against persistence (RMSE and
   anomaly correlation against lead time) and draw a forecast map.

Everything runs on a tiny grid for 150 optimiser steps, so that the
documentation build can run it on a CPU: **the numbers below come from a tiny
run and say nothing about the method's skill.** The real comparisons (longer
data, bigger grids, several seeds, SFNO and a residual U-Net as baselines) are
in ``experiments/RESULTS.md`` and ``experiments/forecast_shallow_water/``.
"""

# %%
# An ERA5-like file from a real solver
# ------------------------------------
#
# The data come from the rotating shallow-water equations on the sphere
# (torch-harmonics' spectral solver, run by
# :func:`geounet.datagen.shallow_water.generate_shallow_water`): the layer
# thickness :math:`h` plays the part of the 500 hPa geopotential,
# :math:`z = g h`, and :math:`(u, v)` the winds at that level. One trajectory
# from a random balanced state is integrated for twelve days and stored every six
# hours. The first eight days become the training file; the last four days,
# which the model never sees, become a second file with later dates: the "new
# data" we forecast from at the end.
#
# We write the files the way a user has them: ``z``, ``u`` and ``v`` on a
# ``pressure_level`` axis holding 500 hPa, descending latitudes, longitudes in
# :math:`[0, 360)`, a ``valid_time`` axis as in the new Copernicus data store.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import xarray as xr

from geounet.datagen.shallow_water import generate_shallow_water

workdir = Path(tempfile.mkdtemp(prefix="geounet_forecast_"))  # every file of this tutorial goes here
GRAVITY = 9.80616  # m s-2, the solver's

DT_HOURS = 6.0
trajectory = generate_shallow_water(num_trajectories=1, steps=48, dt_hours=DT_HOURS, nlat=16, nlon=32, seed=0,
                                    spinup_hours=12.0).isel(sample=0)  # 49 states, 12 days
times = np.datetime64("2000-01-01T00", "ns") + (trajectory.time.values * 3600e9).astype("timedelta64[ns]")


def era5_like(states: xr.Dataset, valid_time: np.ndarray) -> xr.Dataset:
    """The shallow-water states as an ERA5-style dataset: z, u, v at 500 hPa."""
    dims = ("valid_time", "pressure_level", "latitude", "longitude")

    def at_500(values: np.ndarray) -> np.ndarray:
        return values[:, None].astype(np.float32)  # [time, 1, lat, lon]

    return xr.Dataset(
        {"z": (dims, at_500(GRAVITY * states.h.values), {"units": "m**2 s**-2", "long_name": "Geopotential"}),
         "u": (dims, at_500(states.u.values), {"units": "m s**-1", "long_name": "U component of wind"}),
         "v": (dims, at_500(states.v.values), {"units": "m s**-1", "long_name": "V component of wind"})},
        coords={"valid_time": valid_time, "pressure_level": ("pressure_level", [500.0], {"units": "hPa"}),
                "latitude": ("latitude", states.lat.values, {"units": "degrees_north"}),
                "longitude": ("longitude", states.lon.values, {"units": "degrees_east"})},
    )


train_file, new_file = workdir / "era5_like_train.nc", workdir / "era5_like_new.nc"
era5_like(trajectory.isel(time=slice(0, 33)), times[:33]).to_netcdf(train_file)  # days 0-8
era5_like(trajectory.isel(time=slice(33, None)), times[33:]).to_netcdf(new_file)  # days 8-12, never trained on
print(xr.open_dataset(train_file))

# the training days' mean of every variable: the climatology the anomaly correlation is taken against below
climatology_file = workdir / "climatology.nc"
xr.open_dataset(train_file).mean("valid_time").to_netcdf(climatology_file)

# %%
# Training a forecaster with ``geounet train``
# --------------------------------------------
#
# The ``forecast`` task reads the variables you name from your file (``"z500"``
# is ``z`` at level 500), converts them once to HEALPix (NEST order) at
# ``nside`` and caches them, and trains a U-Net on windows of ``input_steps``
# states to predict the next ``output_steps`` states as increments over the
# last input state,
#
# .. math::
#
#    x_{t+j} = x_t + \mathrm{net}\big(x_{t-T_\mathrm{in}+1}, \dots, x_t,\;
#    F_{t+1 \dots t+T_\mathrm{out}},\; K\big)_j, \qquad j = 1, \dots, T_\mathrm{out},
#
# in standardised units, where :math:`F` are analytic forcings (insolation,
# time of day and of year) and :math:`K` the constant fields of the file. The
# network is a Multi-ResNet: its encoder has no parameters, the skips are the
# orthogonal projections :math:`P_i x` of the input onto the nested HEALPix
# pixel spaces, and only the decoder learns. The splits are date ranges; the
# normalisation statistics come from the training dates and are stored in the
# checkpoint with the weights.
#
# The config is a TOML file with ``[task]``, ``[model]`` and ``[train]``
# sections; relative paths in it resolve against the file's folder. Here it is
# CI-sized: nside 4, a 2-level U-Net of width 8, 150 optimiser steps.

config = workdir / "forecast.toml"
config.write_text(f"""
[task]
name = "forecast"
data = "{train_file.name}"      # relative to this config file
variables = ["z500", "u500", "v500"]
nside = 4
dt_hours = {DT_HOURS}
input_steps = 2
output_steps = 1
train_dates = ["2000-01-01", "2000-01-05"]
val_dates = ["2000-01-06", "2000-01-06"]
test_dates = ["2000-01-07", "2000-01-08"]
rollout_hours = 24.0
cache_dir = "cache"

[model]
variant = "multiresnet"
width = 8
num_levels = 2
channel_mult = [1, 2]

[train]
steps = 150
batch_size = 4
lr = 3e-3
eval_every = 150
checkpoint_every = 150
""")

# %%
# ``geounet train`` is the command line; :func:`geounet.cli.main` takes the same
# arguments from Python (``subprocess.run(["geounet", "train", ...])`` does the
# same in a shell). The run folder receives ``checkpoint.pt``, ``metrics.json``
# (test scores per lead time), ``skill.png`` and Mollweide maps.

from geounet.cli import main  # noqa: E402  (imports follow the story)

run_dir = workdir / "runs" / "forecast"
status = main(["train", "--config", str(config), "--out", str(run_dir), "--quiet"])
assert status == 0, "training failed"
print(sorted(p.name for p in run_dir.iterdir()))

# %%
# Loading the run elsewhere and forecasting from new data
# -------------------------------------------------------
#
# A run folder is self-contained: the weights, the normalisation statistics,
# the constant fields and the description of the source grid are in its
# checkpoint. To show it, we move the run to another folder and delete the
# training file before loading it with
# :meth:`geounet.inference.Forecaster.load`.
#
# :meth:`~geounet.inference.Forecaster.predict` then reads the ``input_steps``
# states up to each ``init`` time from *any* file holding the run's variables
# on the run's grid, converts them to HEALPix as in training, rolls the model
# out autoregressively for ``steps`` states and regrids the forecast back to the
# file's latitude-longitude grid.

from geounet.inference import Forecaster  # noqa: E402

elsewhere = Path(tempfile.mkdtemp(prefix="geounet_deployed_"))
deployed = run_dir.rename(elsewhere / "forecast")
train_file.unlink()  # the forecaster no longer needs its training data

forecaster = Forecaster.load(deployed)
new_data = xr.open_dataset(new_file)
LEAD_STEPS = 4  # 24 h ahead in 6-hour steps
inits = new_data.valid_time.values[1:-LEAD_STEPS]  # every init with its input window and its truth in the file
forecast = forecaster.predict(new_data, init=inits, steps=LEAD_STEPS)
print(forecast["z500"].dims, forecast["z500"].shape)

# %%
# Skill against lead time
# -----------------------
#
# We score the forecasts as WeatherBench 2 does, with the area weights
# :math:`w_p` of the latitude-longitude cells
# (:func:`geounet.functional.metrics.latlon_weights`), over the :math:`I` init
# times for each lead time :math:`l`:
#
# .. math::
#
#    \mathrm{RMSE}_l = \sqrt{\frac{1}{I} \sum_i \frac{\sum_p w_p (f_{ilp} - o_{ilp})^2}{\sum_p w_p}},
#    \qquad
#    \mathrm{ACC}_l = \frac{1}{I} \sum_i
#    \frac{\sum_p w_p f'_{ilp} o'_{ilp}}{\sqrt{\sum_p w_p f'^2_{ilp} \sum_p w_p o'^2_{ilp}}},
#
# with anomalies :math:`f' = f - c`, :math:`o' = o - c` against a climatology
# :math:`c` (here the mean of the training days, saved before the training file
# was deleted).
# :func:`geounet.functional.scores.lead_time_scores` computes both. Persistence,
# the forecast that nothing changes, is the baseline every forecaster has to
# beat.

from geounet.functional.metrics import latlon_weights  # noqa: E402
from geounet.functional.scores import lead_time_scores  # noqa: E402

names = forecaster.variables  # ["z500", "u500", "v500"]: the order of the channels below
in_file = {"z500": "z", "u500": "u", "v500": "v"}


def points_last(ds: xr.Dataset) -> torch.Tensor:
    """z, u, v at 500 hPa as ``[..., P, C]``: the grid flattened, the variables last."""
    stacked = np.stack([ds[in_file[name]].sel(pressure_level=500.0).values for name in names], axis=-1)
    return torch.from_numpy(stacked).double().flatten(-3, -2)


series = points_last(new_data)  # [T, P, C]
first = 1  # the row of inits[0] in the new file
truth = torch.stack([series[first + i + 1: first + i + 1 + LEAD_STEPS] for i in range(len(inits))])  # [I, L, P, C]
persistence = series[first: first + len(inits)][:, None].expand_as(truth)  # [I, L, P, C]
model_forecast = torch.from_numpy(
    np.stack([forecast[name].values for name in names], axis=-1)).double().flatten(2, 3)  # [I, L, P, C]
climatology = points_last(xr.open_dataset(climatology_file))  # [P, C]
weights = latlon_weights(new_data.latitude.values, new_data.longitude.values).flatten()  # [P]

scores = {label: lead_time_scores(f, truth, climatology, weights)
          for label, f in (("Multi-ResNet", model_forecast), ("persistence", persistence))}
lead_hours = np.arange(1, LEAD_STEPS + 1) * DT_HOURS

fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
for label, style in (("Multi-ResNet", "o-"), ("persistence", "s--")):
    axes[0].plot(lead_hours, scores[label]["rmse"][:, 0], style, label=label)
    axes[1].plot(lead_hours, scores[label]["acc"][:, 0], style, label=label)
axes[0].set(xticks=lead_hours, xlabel="lead time (h)", ylabel="RMSE of z500 (m$^2$ s$^{-2}$)",
            title="RMSE (lower is better)")
axes[1].set(xticks=lead_hours, xlabel="lead time (h)", ylabel="ACC of z500", title="ACC (higher is better)")
axes[0].legend()
fig.suptitle(f"z500 skill on {len(inits)} new init times (tiny run: 150 steps)")
fig.tight_layout()

for label in scores:
    print(f"{label:>13}: z500 RMSE", np.round(scores[label]["rmse"][:, 0].numpy(), 1), "m2 s-2")

# %%
# A forecast map
# --------------
#
# The forecast comes back on the file's own grid, with the variables' names
# and units, ``(time, lead_time, latitude, longitude)`` and a ``valid_time``
# coordinate, ready for ``to_netcdf`` (``geounet forecast RUN --data NEW.nc
# --init ... --steps ... --out forecast.nc`` writes the same from the shell).
# Here is the 24-hour z500 forecast from the first new init time, next to the
# truth at its valid time.

first_forecast = forecast["z500"].isel(time=0, lead_time=-1)
valid = first_forecast.valid_time.values
observed = new_data.z.sel(valid_time=valid, pressure_level=500.0)
panels = (("forecast", first_forecast.values), ("truth", observed.values),
          ("forecast - truth", first_forecast.values - observed.values))
error_span = float(np.abs(panels[2][1]).max())
colours = ({"cmap": "viridis", "vmin": float(observed.min()), "vmax": float(observed.max())},) * 2 + (
    {"cmap": "RdBu_r", "vmin": -error_span, "vmax": error_span},)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.0))
for ax, (title, values), colour in zip(axes, panels, colours, strict=True):
    shown = ax.pcolormesh(new_data.longitude, new_data.latitude, values, shading="nearest", **colour)
    ax.set(title=f"z500 {title}", xlabel="longitude", ylabel="latitude")
    fig.colorbar(shown, ax=ax)
fig.suptitle(f"24-h forecast valid {np.datetime_as_string(valid, unit='h')} (tiny run)")
fig.tight_layout()
