"""Forecasting on the user's climate data (netCDF / zarr, lat-lon or HEALPix).

The data are read lazily and cached once on HEALPix NEST at ``nside``
(:mod:`geounet.data.climate_dataset`); samples are DLWP-style windows of
``input_steps`` states in and ``output_steps`` states out, ``dt_hours`` apart, with
analytic forcings (top-of-atmosphere insolation, time of day, day of year) and the
data's constant fields (land-sea mask, orography) as extra inputs. Splits are date
ranges; the normalisation statistics come from the training split and live in the
model's buffers, so they are stored with the checkpoint.

The trained network is wrapped in the forecasting stack's
:class:`~geounet.models.autoregressive.Autoregressive`, which owns the normalisation: one
step maps the window of the ``input_steps`` latest states, the forcings of its output
times and the constants (separate fields of a structured batch) to the increments of the
next ``output_steps`` states over the last input state,

    x_{t+j} = x_t + net([x_{t-T_in+1..t}, F_{t+1..t+T_out}, K], cond = lead),   j = 1..T_out,

in standardised units, and a sample's ``train_rollout`` = k steps are rolled out
autoregressively inside the model, so the training loss is the mean squared error of the
standardised states over all k steps (k = 1 is one-step training). A U-Net is conditioned
on the lead time of the step through FiLM (``cond = min(s, k) / k`` at step s = 1, 2, ...:
the lead in units of the trained horizon, held at 1 beyond it); baselines without FiLM
see the same inputs without it.

Scores per lead time over the test split, in physical units, are those of
:mod:`geounet.functional.scores` (WeatherBench-2 definitions; RMSE is the square root of
the area-weighted MSE averaged over init times): RMSE, ACC (uncentred, against the
training split's per-pixel mean) and bias of the model, of persistence and of that
climatology, on HEALPix (equal-area pixels) and, when the data came on a lat-lon grid, on
that grid too (keys ``latlon_*``: forecast regridded back, cell-area weights, points with
data only); ``score_grids`` in the report says which grid each key prefix is on. Angular
power spectra of forecast and truth at the last lead come on HEALPix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geounet.data.climate_dataset import (
    FORCINGS,
    ClimateArchive,
    ClimateDataError,
    ForecastSamples,
    SourceFields,
    Split,
    TrainingStatistics,
    known_constants,
    open_archive,
    open_climate,
    split_inits,
    standardised_constants,
    window,
)
from geounet.data.climate_grid import LAYOUTS
from geounet.data.forecast_files import lead_series
from geounet.errors import GeounetError
from geounet.functional.metrics import angular_power_spectrum, latlon_weights
from geounet.functional.scores import equal_area_weights, score_report
from geounet.geometry.healpix import npix
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.autoregressive import Autoregressive, ForecastInputs, Normalisation
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.fields import draw_rollout_curves, plot_healpix_predictions
from geounet.plot.figure import new_figure, save_figure
from geounet.tasks import PreparedTask, TaskStructure
from geounet.tasks.rollouts import Rollouts, roll_out

#: at most this many test init times are rolled out for the per-lead scores (evenly spaced)
MAX_EVAL_INITS = 32


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "forecast"
    #: settings holding paths: relative ones in a config file resolve against the file's folder
    PATHS: ClassVar[tuple[str, ...]] = ("data", "cache_dir")
    #: keys the checkpoint fixes (the model's channels and their order, its normalisation, its grid):
    #: ``geounet evaluate --set`` refuses to change them
    FIXED: ClassVar[tuple[str, ...]] = ("variables", "constants", "nside", "layout", "input_steps", "output_steps",
                                        "dt_hours")
    #: a netCDF file, a zarr store or a glob of netCDF files
    data: str = ""
    #: surface fields ("t2m") and levels of fields with a level dim ("z500" = z at level 500)
    variables: list[str] = field(default_factory=list)
    #: time-independent fields (land-sea mask, orography); default: the known names present
    constants: list[str] | None = None
    nside: int = 32
    #: "latlon" or the HEALPix ordering of the file ("nest", "ring", "face", "face_<corner>_<cw|ccw>")
    layout: str = "latlon"
    regrid: str = "bilinear"
    #: the time dimension, when it is not named "time" or "valid_time" ("": recognise it by name)
    time_name: str = ""
    #: the pressure-level dimension, when it is not named "level", "pressure_level", "plev", "isobaricInhPa" or "lev"
    level_name: str = ""
    #: for a forecast file (dims time, step, ...: DLWP-HEALPix's), the lead read as the time series, at the
    #: valid times time + step; 0: the forecasts' initial states (see geounet.data.forecast_files)
    data_step_hours: float = 0.0
    dt_hours: float = 6.0
    input_steps: int = 2
    output_steps: int = 2
    #: autoregressive steps in the training loss (1: one-step training)
    train_rollout: int = 1
    #: inclusive date ranges [start, end]
    train_dates: list[str] = field(default_factory=lambda: ["1979-01-01", "2015-12-31"])
    val_dates: list[str] = field(default_factory=lambda: ["2016-01-01", "2016-12-31"])
    test_dates: list[str] = field(default_factory=lambda: ["2017-01-01", "2018-12-31"])
    #: length of the evaluated rollouts
    rollout_hours: float = 24.0
    cache_dir: str = "data"

    def validate(self) -> None:
        if not self.data:
            raise GeounetError("task.data must name the netCDF / zarr file (or a glob of files) to train on")
        if not self.variables:
            raise GeounetError("task.variables must list the variables to forecast, e.g. ['z500', 't2m']")
        if self.layout not in LAYOUTS:
            raise GeounetError(f"task.layout must be one of {LAYOUTS}, got {self.layout!r}")
        for name in ("input_steps", "output_steps", "train_rollout"):
            if getattr(self, name) < 1:
                raise GeounetError(f"task.{name} must be >= 1, got {getattr(self, name)}")
        if self.dt_hours <= 0 or self.rollout_hours < self.dt_hours:
            raise GeounetError(f"task.dt_hours must be positive and task.rollout_hours at least dt_hours, got "
                             f"{self.dt_hours}, {self.rollout_hours}")
        for name in ("train_dates", "val_dates", "test_dates"):
            dates = getattr(self, name)
            if len(dates) != 2:
                raise GeounetError(f"task.{name} must be [start, end], got {dates}")
            try:
                start, end = (np.datetime64(d, "ns") for d in dates)
            except ValueError as error:
                raise GeounetError(f"task.{name} must hold ISO dates like '2016-01-01', got {dates}") from error
            if end < start:
                raise GeounetError(f"task.{name} ends before it starts: {dates}")

    @property
    def rollout_steps(self) -> int:
        """Autoregressive steps of the evaluated rollouts."""
        return math.ceil(self.rollout_hours / (self.dt_hours * self.output_steps))


def archive(config: Config) -> ClimateArchive:
    """The cached HEALPix archive of the config's data (built on first use)."""
    return open_archive(config.data, config.variables, config.layout, config.nside, config.cache_dir,
                        constants=config.constants, method=config.regrid, time_name=config.time_name,
                        level_name=config.level_name, data_step_hours=config.data_step_hours)


def structure(config: Config, num_levels: int, normalisation: Normalisation | None = None,
              num_constants: int | None = None) -> TaskStructure:
    """The hierarchy, channels and :class:`~geounet.models.autoregressive.Autoregressive` wrapper;
    ``num_constants`` defaults to the number of ``config.constants``, or of the known constant
    fields in the file's metadata (nothing is read). Models get the units ``normalisation``
    (statistics and pixel mask) when given, else those of the checkpoint they are loaded from."""
    hierarchy = HealpixHaarHierarchy(config.nside, num_levels)
    channels = len(config.variables)
    if num_constants is None:  # without reading any data: the names, or the file's metadata
        num_constants = len(config.constants if config.constants is not None else known_constants(
            open_climate(config.data), config.time_name))
    in_channels = config.input_steps * channels + config.output_steps * len(FORCINGS) + num_constants

    def wrap(net: nn.Module) -> Autoregressive:
        units = Normalisation.identity(channels, npix(config.nside))
        if normalisation is not None:
            units.load_state_dict(normalisation.state_dict())
        return Autoregressive(net, units, config.input_steps, config.output_steps, config.train_rollout)

    return TaskStructure(hierarchy, MessagePassingFactory(hierarchy), in_channels, config.output_steps * channels,
                         wrap_model=wrap, cond_dim=1)


def _splits(config: Config, data: ClimateArchive) -> dict[str, Split]:
    win = window(data, config.input_steps, config.output_steps, config.dt_hours)
    steps = {"train": config.train_rollout, "val": config.train_rollout, "test": config.rollout_steps}
    splits = {name: split_inits(data, win, steps[name], *getattr(config, f"{name}_dates"), name=f"{name}_dates")
              for name in steps}
    spans = {name: _span(data, win, steps[name], splits[name].inits) for name in steps}
    for name in ("val", "test"):
        if spans[name][0] <= spans["train"][1] and spans[name][1] >= spans["train"][0]:
            raise ClimateDataError(f"the samples of task.{name}_dates overlap those of task.train_dates; give the "
                                   "splits disjoint dates (a sample spans its inputs and outputs)")
    return splits


def data_log(config: Config, data: ClimateArchive, splits: dict[str, Split]) -> list[str]:
    """What the run picked up from the data, one line each: constant fields, masks, gaps and the
    windows they drop (printed by ``geounet train``, kept in metrics.json)."""
    constants = data.meta["constants"]
    how = "task.constants" if config.constants is not None else "found by name; set task.constants to choose"
    lines = [f"constant fields: {', '.join(constants) if constants else 'none'} ({how})"]
    for name, mask in data.meta["masks"].items():
        lines.append(f"mask of {name}: {mask['source_points']} source points without values (NaN at every time); "
                     f"{mask['pixels']} of {npix(data.nside)} HEALPix pixels left out of the loss and the scores, "
                     "forecast as NaN")
    gaps = data.meta["gaps"]
    if gaps:
        lines.append(f"time axis: {len(gaps)} gap(s) in its {data.dt / np.timedelta64(1, 'h'):g} h spacing (first: "
                     f"{gaps[0][0]} -> {gaps[0][1]})")
    for name, split in splits.items():
        if split.crossing_gaps:
            lines.append(f"{name} split: {split.crossing_gaps} window(s) crossing a gap dropped, "
                         f"{len(split.inits)} kept")
    return lines


def inference_state(data: ClimateArchive) -> dict[str, object]:
    """What a forecast from new data needs besides the model (stored in the checkpoint): the
    archive's description (variables, attributes, levels, source grid, time step, nside), the
    standardised constant fields ``[N, K]`` and the source masks ``[C, *grid]``."""
    return {"source": data.meta, "constants": standardised_constants(data.constants),
            "source_valid": torch.from_numpy(data.source_valid)}


def _span(data: ClimateArchive, win, steps: int, inits: np.ndarray) -> tuple[np.datetime64, np.datetime64]:
    """The first and last time any sample of ``inits`` reads."""
    offsets = win.offsets(steps)
    return data.times[inits.min() + offsets[0]], data.times[inits.max() + offsets[-1]]


def prepare(config: Config, num_levels: int) -> PreparedTask:
    data = archive(config)
    splits = _splits(config, data)
    inits = {name: split.inits for name, split in splits.items()}
    win = window(data, config.input_steps, config.output_steps, config.dt_hours)
    train_times = np.unique(inits["train"][:, None] + win.offsets(config.train_rollout)[None])
    stats = TrainingStatistics.of(data, train_times)
    normalisation = stats.normalisation(data.valid)
    geometry = structure(config, num_levels, normalisation, num_constants=data.constants.shape[1])
    hierarchy = geometry.hierarchy
    train, val = (ForecastSamples(data, hierarchy, normalisation, win, inits[name], config.train_rollout)
                  for name in ("train", "val"))
    rollouts = ForecastSamples(data, hierarchy, normalisation, win, _spread(inits["test"]), config.rollout_steps)

    scores: dict[str, object] = {}  # the latest evaluation, drawn by plot

    def evaluate_extra(model: Autoregressive, device: torch.device) -> dict[str, object]:
        from geounet.train.loop import evaluate

        scores.clear()
        scores.update(lead_time_scores(model, rollouts, stats.climatology, config, device))
        scores.update({f"val_{k}": v for k, v in evaluate(model, val, 8, device).items()})
        return dict(scores)

    def plot(inputs: ForecastInputs, targets: Tensor, predictions: Tensor, path: str) -> None:
        """Mollweide maps of the first output state; with scores, ``skill.png`` beside ``path``."""
        c = len(config.variables)
        valid, mean, scale = normalisation.valid, normalisation.mean, normalisation.increment_std
        last_input = torch.where(valid, inputs.state[:, -1], mean)  # [S, N, C] physical, the mean where no data
        first = slice(0, c)  # the first output state
        plot_healpix_predictions(last_input, last_input + targets[..., first] * scale,
                                 last_input + predictions[..., first] * scale, config.variables, path)
        if scores:
            plot_skill(scores, config.variables, str(Path(path).with_name("skill.png")))

    test = ForecastSamples(data, hierarchy, normalisation, win, inits["test"], config.train_rollout)
    return PreparedTask(geometry, train, test, plot, evaluate_extra=evaluate_extra,
                        log=data_log(config, data, splits), checkpoint_state=inference_state(data))


def plot_skill(scores: dict[str, object], variables: list[str], path: str) -> None:
    """Per variable: RMSE and ACC against lead time (model, persistence dashed, climatology) and
    the angular power spectra of forecast and truth at the last lead."""
    leads = scores["lead_hours"]
    fig = new_figure(4 * len(variables), 9.5)
    axes = fig.subplots(3, len(variables), squeeze=False)
    for column, name in enumerate(variables):
        for row, score in enumerate(("rmse", "acc")):
            curves = {label.capitalize(): (leads, scores[f"{label}_{score}_{name}"])
                      for label in ("model", "persistence", "climatology") if f"{label}_{score}_{name}" in scores}
            draw_rollout_curves(axes[row, column], curves, f"{score.upper()} {name}")
        ax = axes[2, column]
        for label in ("forecast", "truth"):
            spectrum = scores[f"spectrum_{label}_{name}"]
            ax.loglog(range(1, len(spectrum)), spectrum[1:], label=label)
        ax.set_xlabel(f"degree l (lead {leads[-1]:g} h)")
        ax.set_ylabel(f"C_l {name}")
        ax.legend(fontsize=8)
    save_figure(fig, path, dpi=90)


def _spread(inits: np.ndarray, count: int = MAX_EVAL_INITS) -> np.ndarray:
    """At most ``count`` evenly spaced entries of ``inits``."""
    return inits[np.unique(np.linspace(0, len(inits) - 1, min(count, len(inits))).round().astype(int))]


def lead_time_scores(model: Autoregressive, samples: ForecastSamples, climatology: Tensor, config: Config,
                     device: torch.device) -> dict[str, object]:
    """RMSE, bias and ACC per lead time (:mod:`geounet.functional.scores`) of the model,
    persistence and climatology (``[N, C]``, NaN where not valid), plus spectra, on HEALPix
    and, for data that came on a lat-lon grid, on it (keys ``latlon_*``); ``score_grids``
    names the grid of each key prefix."""
    rolled = roll_out(model, samples, np.arange(len(samples)), device)
    climatology = climatology.double()
    valid = torch.from_numpy(samples.archive.valid)  # [N, C]
    leads = rolled.truth.shape[1]
    report: dict[str, object] = {"lead_hours": [config.dt_hours * (j + 1) for j in range(leads)],
                                 "num_inits": len(samples),
                                 "score_grids": {"": f"HEALPix NEST nside {config.nside}, equal-area pixels"}}
    references = {"model": rolled.forecast, "persistence": rolled.persistence,
                  "climatology": climatology.expand_as(rolled.truth)}
    report.update(score_report(references, rolled.truth, climatology, equal_area_weights(len(valid)),
                               config.variables, mask=valid))
    grid = samples.archive.grid
    if grid.lat is not None:
        report["score_grids"]["latlon_"] = (f"the source lat-lon grid, {len(grid.lat)} x {len(grid.lon)}, cell-area "
                                            "(cos-latitude) weights, points with data only; forecast and "
                                            "climatology regridded back bilinearly from HEALPix")
        report.update(source_grid_scores(rolled, samples, climatology, config))
    for c, name in enumerate(config.variables):
        last = torch.stack([rolled.forecast[:, -1, :, c], rolled.truth[:, -1, :, c]])  # [2, I, N]
        filled = last.where(valid[:, c], float(samples.normalisation.mean[c]))  # invalid pixels at the training mean
        spectra = angular_power_spectrum(filled, ordering="nest")
        report[f"spectrum_forecast_{name}"], report[f"spectrum_truth_{name}"] = spectra.mean(1).tolist()
    return report


def source_grid_scores(rolled: Rollouts, samples: ForecastSamples, climatology: Tensor,
                       config: Config) -> dict[str, list[float]]:
    """The scores of :func:`lead_time_scores` on the source lat-lon grid, ``latlon_*``: the truth
    and persistence read from the source data, the forecast and the climatology ``[N, C]``
    regridded to it from HEALPix; each variable scored where the source has data and a
    valid pixel reaches."""
    grid, valid = samples.archive.grid, torch.from_numpy(samples.archive.valid)  # [N, C]
    source = SourceFields.select(lead_series(open_climate(config.data), config.data_step_hours, config.time_name),
                                 config.variables, grid.layout, config.nside,
                                 config.time_name, config.level_name)
    rows = samples.rows(np.arange(len(samples)))  # [I, T_in + L], the archive's (= the source's) time indices
    leads = rolled.truth.shape[1]
    truth, persistence, forecast, climate, masks = [], [], [], [], []
    for c, source_valid in enumerate(samples.archive.source_valid):
        values = torch.from_numpy(source.arrays[c].isel({source.time_name: rows.reshape(-1)}).values)
        values = values.double().reshape(*rows.shape, -1)  # [I, T, P]
        truth.append(values[:, -leads:])
        persistence.append(values[:, -leads - 1 : -leads].expand(-1, leads, -1))
        back = grid.from_nest(torch.cat([rolled.forecast[..., c].flatten(0, 1), climatology[None, :, c]]),
                              valid[:, c], source_valid).flatten(1)  # [I L + 1, P], NaN where nothing reaches
        forecast.append(back[:-1].reshape(*rolled.forecast.shape[:2], -1))
        climate.append(back[-1])
        masks.append(torch.from_numpy(source_valid.reshape(-1)) & torch.isfinite(
            grid.from_nest(torch.zeros(len(valid)), valid[:, c], source_valid).flatten()))
    truth, persistence, forecast = (torch.stack(t, dim=-1) for t in (truth, persistence, forecast))  # [I, L, P, C]
    climate, mask = torch.stack(climate, dim=-1), torch.stack(masks, dim=-1)  # [P, C]
    weights = latlon_weights(grid.lat, grid.lon).flatten()  # [P]
    references = {"model": forecast, "persistence": persistence, "climatology": climate.expand_as(truth)}
    return score_report(references, truth, climate, weights, config.variables, mask=mask, prefix="latlon_")
