"""Forecasts of a trained forecast run from any data: ``Forecaster.load(run_dir).predict(data, init, steps)``.

    from geounet.inference import Forecaster

    forecaster = Forecaster.load("runs/forecast")                  # needs only the run folder
    forecast = forecaster.predict("today.nc", init="2024-06-01T00", steps=8)

A run folder is self-contained: its checkpoint holds the config, the weights, the training
statistics and the pixel masks (the model's :class:`~geounet.models.autoregressive.Normalisation`) and, as
``task_state``, the standardised constant fields, the source masks and the description
of the training data (variables, attributes, levels, source grid, time step). So a
forecaster loads from any working directory, after the training file moved or was deleted.

:meth:`Forecaster.predict` takes an ``xarray.Dataset`` or a path (netCDF, zarr, a glob of
netCDF files) holding the run's variables on the run's grid, at any dates: it reads only
the ``input_steps`` states up to ``init`` (``dt_hours`` apart; gaps elsewhere do not
matter), converts them to HEALPix exactly as in training, normalises them with the stored
statistics, rolls the model out and returns the forecast on the input's grid:

- ``layout="geounet"`` (default): every variable with dims ``(time, lead_time, *space)``,
  a ``valid_time (time, lead_time)`` coordinate, ``space`` the run's source layout (the
  lat-lon grid, regridded back bilinearly; ``pixel`` for "nest" / "ring"; ``(face,
  height, width)`` for face layouts). Variables keep the input's names and attributes.
- ``layout="weatherbench2"`` (lat-lon only): WeatherBench 2's forecast layout, dims
  ``(time, prediction_timedelta, [level,] latitude, longitude)``; the levels of a variable
  (``z500``, ``z850``) become one variable ``z`` with a ``level`` dimension.
- ``layout="dlwp"``: DLWP-HEALPix's forecast files on the model's HEALPix grid, dims
  ``(time, step, face, height, width)``, ``step`` a timedelta from 0 (the initial state)
  (:func:`~geounet.data.forecast_files.dlwp_forecast`).

Where a variable has no data (its training mask, e.g. land for sea-surface temperature)
the forecast is NaN; the input may hold NaN there (and nowhere else).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from geounet.data.climate_dataset import (
    SourceFields,
    forcing_fields,
    open_climate,
    pixel_latlon,
)
from geounet.data.climate_grid import ClimateDataError, SourceGrid
from geounet.data.forecast_files import dlwp_forecast, lead_series
from geounet.errors import GeounetError, MissingFileError
from geounet.geometry.healpix import npix
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.memory import check_fits
from geounet.models.autoregressive import ForecastInputs
from geounet.train.device import usable_device

LAYOUTS = ("geounet", "weatherbench2", "dlwp")


@dataclass
class Forecaster:
    """A trained forecast run, ready to forecast from new data (see the module docstring)."""

    model: torch.nn.Module  # geounet.models.autoregressive.Autoregressive, in eval mode
    hierarchy: Hierarchy
    config: object  # geounet.tasks.forecast.Config
    source: dict  # the training data's description (variables, attrs, grid, dt_seconds, nside, masks, ...)
    constants: Tensor  # [N, K] standardised constant fields
    source_valid: np.ndarray  # [C, *source dims] bool: the source points each variable has data at
    run_dir: Path

    @classmethod
    def load(cls, run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> Forecaster:
        """The forecaster of the run in ``run_dir`` (a folder of ``geounet train`` with task.name = forecast)."""
        from geounet.experiment.config import config_from_dict
        from geounet.experiment.runner import build_model
        from geounet.tasks import forecast
        from geounet.train.checkpoint import load_checkpoint, load_model_state, run_config

        run_dir = Path(run_dir)
        path = run_dir / "checkpoint.pt"
        if not path.is_file():
            raise MissingFileError(f"no forecast run in {run_dir.resolve()}: {path.resolve()} does not exist")
        state = load_checkpoint(path)
        cfg = config_from_dict(run_config(state, path))
        if cfg.task.name != forecast.Config.name:
            raise GeounetError(f"{run_dir} is a {cfg.task.name!r} run; forecasts need a run of task 'forecast'")
        task_state = state.get("task_state")
        if not task_state:
            raise GeounetError(f"{path} holds no description of its training data (it was written by an older "
                               "geounet); train the run again to forecast from new data")
        constants = task_state["constants"]
        structure = forecast.structure(cfg.task, cfg.model.num_levels, num_constants=constants.shape[1])
        model = build_model(cfg, structure)
        load_model_state(model, state["model"], path)  # weights, statistics and masks
        device = usable_device(device, "--device")
        return cls(model.to(device).eval(), structure.hierarchy.to(device), cfg.task, task_state["source"],
                   constants, task_state["source_valid"].numpy(), run_dir)

    @property
    def variables(self) -> list[str]:
        return list(self.source["variables"])

    @property
    def grid(self) -> SourceGrid:
        return SourceGrid.from_description(self.source["grid"])

    @property
    def step(self) -> np.timedelta64:
        """The time between two forecast states (``dt_hours``)."""
        return np.timedelta64(int(round(self.config.dt_hours * 3600)), "s")

    def predict(self, data: xr.Dataset | str | os.PathLike | None = None, *, init, steps: int,
                layout: str = "geounet", data_step_hours: float | None = None) -> xr.Dataset:
        """The forecast of ``steps`` states (``dt_hours`` apart) from each ``init`` time (one, or a
        list) of ``data`` (``None``: the run's training data, if still there), as an xarray Dataset.
        When ``data`` is a forecast file (``(time, step, ...)``), its lead ``data_step_hours``
        is the time series read (:func:`lead_series`; ``None``: the run's ``task.data_step_hours``,
        0 unless it was trained on another lead: the initial states)."""
        if layout not in LAYOUTS:
            raise GeounetError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if steps < 1:
            raise GeounetError(f"steps must be >= 1, got {steps}")
        inits = _init_times(init)
        self._check_memory(len(inits), steps)
        lead = self.config.data_step_hours if data_step_hours is None else data_step_hours
        source = self._select(lead_series(self._open(data), lead, self.config.time_name))
        states = torch.stack([self._input_states(source, when) for when in inits])  # [B, T_in, N, C]
        model = self.model
        device = model.normalisation.mean.device
        rollout_steps = math.ceil(steps / self.config.output_steps)
        lat, lon = pixel_latlon(self.source["nside"])
        forcing = forcing_fields(inits, self.step, self.config.output_steps, rollout_steps, lat, lon)
        inputs = ForecastInputs(states, forcing, self.constants).to(device)  # the model normalises
        with torch.no_grad():
            y = model.physical(model(inputs, self.hierarchy), inputs).cpu()[:, :steps]  # [B, L, N, C]
        valid = model.normalisation.valid.cpu()  # [N, C]
        if layout == "dlwp":
            return self._dlwp(states[:, -1:], y, valid, inits)
        fields = [self.grid.from_nest(y[..., c], valid[:, c], self.source_valid[c]).float().numpy()
                  for c in range(len(self.variables))]  # [B, L, *space] each
        lead_time = np.arange(1, steps + 1) * self.step.astype("timedelta64[ns]")
        forecast = self._dataset(fields, inits, lead_time)
        return forecast if layout == "geounet" else weatherbench2_layout(forecast, self.variables, self.source)

    def _dlwp(self, initial: Tensor, forecast: Tensor, valid: Tensor, inits: np.ndarray) -> xr.Dataset:
        """DLWP's layout (:func:`dlwp_forecast`) on the model's HEALPix grid: step 0 the initial
        state ``initial [B, 1, N, C]``, then ``forecast [B, L, N, C]``, NaN where ``valid [N, C]`` is not."""
        states = torch.where(valid, torch.cat([initial, forecast], dim=1), math.nan).numpy()  # [B, 1 + L, N, C]
        leads = np.arange(states.shape[1]) * self.step.astype("timedelta64[ns]")
        attrs = {name: {k: v for k, v in self.source["attrs"][name].items() if not k.startswith("healpix_")}
                 for name in self.variables}
        fields = {name: states[..., c] for c, name in enumerate(self.variables)}
        return dlwp_forecast(fields, inits, leads, attrs, {"model_ordering": "nest", "run_dir": str(self.run_dir),
                                                           "trained_on": str(self.config.data)})

    def _check_memory(self, inits: int, steps: int) -> None:
        """Refuse a forecast whose arrays cannot fit: ``4 B L C (2 N + G)`` bytes for ``B`` inits,
        ``L`` lead times and ``C`` variables: the rollout on ``N`` HEALPix pixels (and its copy in
        physical units) and the output on the source's ``G`` points."""
        pixels, points = npix(self.source["nside"]), int(np.prod(self.source_valid.shape[1:]))
        needed = 4 * inits * steps * len(self.variables) * (2 * pixels + points)
        check_fits(needed, f"a forecast of {steps:,} lead times from {inits} init time(s)",
                   "forecast fewer lead times (--steps) or init times at once", self.model.normalisation.mean.device)

    def _open(self, data) -> xr.Dataset:
        if isinstance(data, xr.Dataset):
            return data
        if data is None:
            data = self.config.data
            if not any(ch in str(data) for ch in "*?[") and not Path(data).exists():
                raise MissingFileError(f"the run's training data {data} are gone (searched {Path(data).resolve()}); "
                                       "pass the data to forecast from (geounet forecast --data PATH, "
                                       "Forecaster.predict(data=...))")
        return open_climate(data)

    def _select(self, ds: xr.Dataset) -> SourceFields:
        """The run's variables in ``ds``, on the run's grid."""
        grid = self.grid
        source = SourceFields.select(ds, self.variables, grid.layout, self.source["nside"], self.config.time_name,
                                     self.config.level_name)
        difference = grid.difference(source.grid)
        if difference:
            raise ClimateDataError(f"the data are not on the grid the run was trained on: {difference}; regrid them "
                                   "to the run's grid first (e.g. ds.interp(latitude=..., longitude=...))")
        return source

    def _input_states(self, source: SourceFields, init: np.datetime64) -> Tensor:
        """The physical input states ``[T_in, N, C]`` up to ``init`` on NEST (NaN where the run has no data)."""
        t_in = self.config.input_steps
        wanted = init - self.step * np.arange(t_in - 1, -1, -1)  # [T_in], the oldest first
        times = source.times
        rows = np.searchsorted(times, wanted)
        found = (rows < times.size) & (times[np.minimum(rows, times.size - 1)] == wanted)
        if not found.all():
            missing = ", ".join(str(t) for t in wanted[~found])
            raise ClimateDataError(f"a forecast from {init} needs the {t_in} states {self.config.dt_hours:g} h apart "
                                   f"up to it; the data have none at {missing} (they hold {times.size} times, "
                                   f"{times[0]} .. {times[-1]}); pick an init time with its input states in the data")
        states = []
        for c, name in enumerate(self.variables):
            values = source.arrays[c].isel({source.time_name: rows}).values  # [T_in, *grid]
            _check_inputs(values, self.source_valid[c], name, times[rows], source.grid, source.nside)
            states.append(source.grid.to_nest_masked(values, self.source_valid[c], source.nside,
                                                     self.config.regrid))
        return torch.stack(states, dim=-1).float()  # [T_in, N, C]

    def _dataset(self, fields: list[np.ndarray], inits: np.ndarray, lead_time: np.ndarray) -> xr.Dataset:
        """The forecast in geounet's layout (module docstring)."""
        grid = self.grid
        coords = {"time": inits, "lead_time": lead_time,
                  "valid_time": (("time", "lead_time"), inits[:, None] + lead_time[None])}
        if grid.lat is not None:
            coords.update({grid.dims[0]: grid.lat, grid.dims[1]: grid.lon})
        variables = {}
        for name, values in zip(self.variables, fields, strict=True):
            attrs = {k: v for k, v in self.source["attrs"][name].items() if not k.startswith("healpix_")}
            variables[name] = (("time", "lead_time", *grid.dims), values, attrs)
        attrs = {"healpix_nside": self.source["nside"], "model_ordering": "nest", "run_dir": str(self.run_dir),
                 "trained_on": str(self.config.data)}
        if grid.lat is None:
            attrs["healpix_order"] = grid.layout
        else:
            attrs["regridded_to"] = "the source's lat-lon grid (bilinear from HEALPix)"
        return xr.Dataset(variables, coords=coords, attrs=attrs)


def _init_times(init) -> np.ndarray:
    """``init`` (a date or a list of dates) as ``[B]`` datetime64[ns]."""
    try:
        return np.atleast_1d(np.asarray(init, dtype="datetime64[ns]"))
    except ValueError as error:
        raise GeounetError(f"init must be a date like '2017-03-01T00' (or a list of them), got {init!r}") from error


def _check_inputs(values: np.ndarray, valid: np.ndarray, name: str, times: np.ndarray, grid: SourceGrid,
                  nside: int) -> None:
    """Refuse Inf anywhere and NaN where the run was trained with values (``valid [*grid]``)."""
    bad = np.isinf(values) | (np.isnan(values) & valid)
    if bad.any():
        t, flat = divmod(int(np.flatnonzero(bad)[0]), values[0].size)
        raise ClimateDataError(f"variable {name!r} is {values.reshape(len(values), -1)[t, flat]} at time {times[t]}, "
                               f"{grid.place(flat, nside)} ({int(bad.sum())} such values), where the run was trained "
                               "with values; fill them")


def weatherbench2_layout(forecast: xr.Dataset, variables: list[str], source: dict) -> xr.Dataset:
    """``forecast`` (geounet's layout, lat-lon) in WeatherBench 2's: ``prediction_timedelta`` for
    ``lead_time``, ``latitude`` / ``longitude`` dims, the levels of a variable on one ``level`` dim."""
    grid = SourceGrid.from_description(source["grid"])
    if grid.lat is None:
        raise GeounetError(f"the weatherbench2 layout is lat-lon; this run's data are HEALPix ({grid.layout}); use "
                           "the default layout")
    groups: dict[str, dict[float, str]] = {}
    for name in variables:
        level = source["attrs"][name].get("level")
        base = re.fullmatch(r"(.*?)(\d+(?:\.\d+)?)", name)[1] if level is not None else name
        if base in groups and (level is None) != (None in groups[base]):
            raise GeounetError(f"variable {base!r} is both a surface field and one at levels; rename one")
        groups.setdefault(base, {})[level] = name
    levels = {tuple(sorted(g)) for g in groups.values() if None not in g}
    if len(levels) > 1:
        raise GeounetError(f"the weatherbench2 layout puts every level on one 'level' axis, but the variables have "
                           f"the levels {sorted(levels)}; forecast the same levels of each, or use the default layout")
    renamed = forecast.drop_vars("valid_time").rename(
        {"lead_time": "prediction_timedelta", grid.dims[0]: "latitude", grid.dims[1]: "longitude"})
    out = {}
    for base, members in groups.items():
        if None in members:
            out[base] = renamed[members[None]]
            continue
        level_values = sorted(members)
        stacked = xr.concat([renamed[members[level]] for level in level_values], dim="level")
        stacked.attrs = {k: v for k, v in stacked.attrs.items() if k not in ("level", "level_dim")}
        out[base] = stacked.assign_coords(level=level_values).transpose("time", "prediction_timedelta", "level",
                                                                         "latitude", "longitude")
    return xr.Dataset(out, attrs=forecast.attrs)

