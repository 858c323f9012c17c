"""Forecasting on the user's climate data (netCDF / zarr, lat-lon or HEALPix).

The data are read lazily and cached once on HEALPix NEST at ``nside``
(:mod:`geounet.data.climate_dataset`); samples are DLWP-style windows of
``input_steps`` states in and ``output_steps`` states out, ``dt_hours`` apart, with
analytic forcings (top-of-atmosphere insolation, time of day, day of year) and the
data's constant fields (land-sea mask, orography) as extra inputs. Splits are date
ranges; the normalisation statistics come from the training split and live in the
model's buffers, so they are stored with the checkpoint.

The trained network is wrapped in :class:`Autoregressive`: one step maps the
normalised window, the forcings of its output times and the constants to the
increments of the next ``output_steps`` states over the last input state,

    x_{t+j} = x_t + net([x_{t-T_in+1..t}, F_{t+1..t+T_out}, K], cond = lead),   j = 1..T_out,

and a sample's ``train_rollout`` = k steps are rolled out autoregressively inside the
model, so the training loss is the mean squared error over all k steps (k = 1 is
one-step training). A U-Net is conditioned on the lead time of the step through FiLM
(``cond = min(s, k) / k`` at step s = 1, 2, ...: the lead in units of the trained
horizon, held at 1 beyond it); baselines without FiLM see the same inputs without it.

Scores per lead time over the test split, in physical units (WeatherBench-2 style,
equal-area pixels): RMSE, ACC (uncentred, against the training split's per-pixel mean)
and bias of the model, of persistence and of that climatology, and angular power
spectra of forecast and truth at the last lead.
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
from geounet.errors import GeounetError
from geounet.functional.metrics import acc, angular_power_spectrum, bias, rmse
from geounet.geometry.healpix import npix
from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.healpix import HealpixHaarHierarchy
from geounet.models.sizing import parameter_counts
from geounet.nn.message_passing import MessagePassingFactory
from geounet.plot.fields import draw_rollout_curves, plot_healpix_predictions
from geounet.tasks import PreparedTask, TaskStructure

#: at most this many test init times are rolled out for the per-lead scores (evenly spaced)
MAX_EVAL_INITS = 32


@dataclass(frozen=True)
class Config:
    name: ClassVar[str] = "forecast"
    #: settings holding paths: relative ones in a config file resolve against the file's folder
    PATHS: ClassVar[tuple[str, ...]] = ("data", "cache_dir")
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
                        level_name=config.level_name)


class Autoregressive(nn.Module):
    """``net`` rolled out over as many steps as the input holds forcings for (see the module docstring).

    ``x [B, N, T_in C + S T_out F + K] -> [B, N, S T_out C]``, all in normalised units; the
    buffers ``mean`` and ``std`` ``[C]`` (training statistics) convert to physical units. Where
    the buffer ``valid [N, C]`` is 0 (pixels without data, e.g. sea-surface temperature over
    land) every output state is 0, the normalised training mean the inputs hold there: those
    pixels add nothing to a loss or a score against targets that hold 0 there too.
    """

    def __init__(self, net: nn.Module, channels: int, input_steps: int, output_steps: int, constants: int,
                 train_rollout: int, nodes: int) -> None:
        super().__init__()
        self.net = net
        self.channels, self.input_steps, self.output_steps = channels, input_steps, output_steps
        self.num_constants, self.train_rollout = constants, train_rollout
        self.conditioned = any(getattr(m, "film", None) is not None for m in net.modules())
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.register_buffer("valid", torch.ones(nodes, channels))  # 1 at the pixels that hold data

    def parameter_counts(self) -> dict[str, int]:
        """The wrapped network's per-part counts (the wrapper itself has no parameters)."""
        return parameter_counts(self.net)

    def steps_in(self, x: Tensor) -> int:
        """How many steps the forcings in ``x`` cover; ValueError when the channels do not fit."""
        state = self.input_steps * self.channels
        per_step = self.output_steps * len(FORCINGS)
        steps, rest = divmod(x.shape[-1] - state - self.num_constants, per_step)
        if steps < 1 or rest:
            raise GeounetError(f"the input has {x.shape[-1]} channels, not {state} state + S x {per_step} forcing + "
                             f"{self.num_constants} constant channels for any S >= 1")
        return steps

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        b, n, _ = x.shape
        steps, state_channels = self.steps_in(x), self.input_steps * self.channels
        state = x[..., :state_channels].reshape(b, n, self.input_steps, self.channels)
        forcing = x[..., state_channels : x.shape[-1] - self.num_constants].reshape(b, n, steps, -1)
        constants = x[..., x.shape[-1] - self.num_constants :]
        outputs = []
        for s in range(steps):
            inputs = torch.cat([state.reshape(b, n, -1), forcing[:, :, s], constants], dim=-1)
            if self.conditioned:
                lead = torch.full((b, 1), min(s + 1, self.train_rollout) / self.train_rollout, device=x.device,
                                  dtype=x.dtype)
                increment = self.net(inputs, hierarchy, lead)
            else:
                increment = self.net(inputs, hierarchy)
            step = (state[:, :, -1:] + increment.reshape(b, n, self.output_steps, self.channels)) * self.valid[:, None]
            outputs.append(step)
            state = torch.cat([state, step], dim=2)[:, :, -self.input_steps :]
        return torch.cat(outputs, dim=2).reshape(b, n, -1)  # [B, N, S T_out C]

    def physical(self, y: Tensor) -> Tensor:
        """Normalised outputs ``[B, N, S T_out C]`` -> physical ``[B, S T_out, N, C]``."""
        b, n, _ = y.shape
        return (y.reshape(b, n, -1, self.channels) * self.std + self.mean).permute(0, 2, 1, 3)


def structure(config: Config, num_levels: int, stats: TrainingStatistics | None = None,
              num_constants: int | None = None, valid: np.ndarray | None = None) -> TaskStructure:
    """The hierarchy, channels and model wrapper; ``num_constants`` defaults to the number of
    ``config.constants``, or of the known constant fields in the file's metadata (nothing is read).
    Models get the statistics ``stats`` and the pixel mask ``valid [N, C]`` when given."""
    hierarchy = HealpixHaarHierarchy(config.nside, num_levels)
    channels = len(config.variables)
    if num_constants is None:  # without reading any data: the names, or the file's metadata
        num_constants = len(config.constants if config.constants is not None else known_constants(
            open_climate(config.data), config.time_name))
    in_channels = config.input_steps * channels + config.output_steps * len(FORCINGS) + num_constants

    def wrap(net: nn.Module) -> Autoregressive:
        model = Autoregressive(net, channels, config.input_steps, config.output_steps, num_constants,
                               config.train_rollout, npix(config.nside))
        if stats is not None:
            model.mean.copy_(stats.mean)
            model.std.copy_(stats.std)
        if valid is not None:
            model.valid.copy_(torch.from_numpy(valid))
        return model

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
    geometry = structure(config, num_levels, stats, num_constants=data.constants.shape[1], valid=data.valid)
    hierarchy = geometry.hierarchy
    train, val = (ForecastSamples(data, hierarchy, stats, win, inits[name], config.train_rollout)
                  for name in ("train", "val"))
    rollouts = ForecastSamples(data, hierarchy, stats, win, _spread(inits["test"]), config.rollout_steps)

    scores: dict[str, object] = {}  # the latest evaluation, drawn by plot

    def evaluate_extra(model: nn.Module, device: torch.device) -> dict[str, object]:
        from geounet.train.loop import evaluate

        scores.clear()
        scores.update(lead_time_scores(model, rollouts, config, device))
        scores.update({f"val_{k}": v for k, v in evaluate(model, val, 8, device).items()})
        return dict(scores)

    def plot(inputs: Tensor, targets: Tensor, predictions: Tensor, path: str) -> None:
        """Mollweide maps of the first output state; with scores, ``skill.png`` beside ``path``."""
        c, t_in = len(config.variables), config.input_steps
        last_input = inputs[..., (t_in - 1) * c : t_in * c] * stats.std + stats.mean  # [S, N, C]
        first = slice(0, c)  # the first output state
        plot_healpix_predictions(last_input, targets[..., first] * stats.std + stats.mean,
                                 predictions[..., first] * stats.std + stats.mean, config.variables, path)
        if scores:
            plot_skill(scores, config.variables, str(Path(path).with_name("skill.png")))

    test = ForecastSamples(data, hierarchy, stats, win, inits["test"], config.train_rollout)
    return PreparedTask(geometry, train, test, plot, evaluate_extra=evaluate_extra,
                        log=data_log(config, data, splits), checkpoint_state=inference_state(data))


def plot_skill(scores: dict[str, object], variables: list[str], path: str) -> None:
    """Per variable: RMSE and ACC against lead time (model, persistence dashed, climatology) and
    the angular power spectra of forecast and truth at the last lead."""
    import matplotlib.pyplot as plt

    leads = scores["lead_hours"]
    fig, axes = plt.subplots(3, len(variables), figsize=(4 * len(variables), 9.5), squeeze=False)
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
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _spread(inits: np.ndarray, count: int = MAX_EVAL_INITS) -> np.ndarray:
    """At most ``count`` evenly spaced entries of ``inits``."""
    return inits[np.unique(np.linspace(0, len(inits) - 1, min(count, len(inits))).round().astype(int))]


@torch.no_grad()
def lead_time_scores(model: Autoregressive, samples: ForecastSamples, config: Config, device: torch.device,
                     batch_size: int = 4) -> dict[str, object]:
    """RMSE, ACC and bias per lead time of the model, persistence and climatology, plus spectra.

    Scores average over init times the way WeatherBench 2 does: RMSE is the square root of
    the mean (over inits and pixels) squared error, ACC and bias the mean over inits.
    """
    model.eval()
    moved = samples.to(device)
    climatology = samples.stats.climatology  # [N, C], NaN at invalid pixels
    weights = torch.ones(climatology.shape[0], 1)  # equal-area pixels
    forecasts, truths, persistences = [], [], []
    for start in range(0, len(samples), batch_size):
        indices = np.arange(start, min(start + batch_size, len(samples)))
        batch = moved.batch(indices)
        forecasts.append(model.physical(model(batch.inputs.to(device), batch.hierarchy)).cpu())  # [B, L, N, C]
        states = samples.states(indices)  # [B, T_in + L, N, C]
        truths.append(states[:, config.input_steps :])
        persistences.append(states[:, config.input_steps - 1 : config.input_steps].expand_as(truths[-1]))
    forecast, truth, persistence = (torch.cat(t).double() for t in (forecasts, truths, persistences))
    leads = truth.shape[1]
    report: dict[str, object] = {"lead_hours": [config.dt_hours * (j + 1) for j in range(leads)],
                                 "num_inits": len(samples)}
    references = {"model": forecast, "persistence": persistence, "climatology": climatology.double().expand_as(truth)}
    for c, name in enumerate(config.variables):
        o, clim = truth[..., c : c + 1], climatology[:, c : c + 1].double()  # [I, L, N, 1], [N, 1]
        mask = samples.valid[:, c : c + 1]  # [N, 1]: the pixels that hold data
        for label, prediction in references.items():
            p = prediction[..., c : c + 1]
            report[f"{label}_rmse_{name}"] = rmse(p.transpose(0, 1), o.transpose(0, 1), weights, dims=(1, 2, 3),
                                                  mask=mask).tolist()
            report[f"{label}_bias_{name}"] = bias(p, o, weights, dims=(-2, -1), mask=mask).mean(0).tolist()
            if label != "climatology":  # the climatology's anomaly is 0: its ACC is undefined
                report[f"{label}_acc_{name}"] = acc(p, o, clim, weights, dims=(-2, -1), mask=mask).mean(0).tolist()
        last = torch.stack([forecast[:, -1, :, c], truth[:, -1, :, c]])  # [2, I, N]
        filled = last.where(mask[:, 0], float(samples.stats.mean[c]))  # invalid pixels at the training mean
        spectra = angular_power_spectrum(filled, ordering="nest")
        report[f"spectrum_forecast_{name}"], report[f"spectrum_truth_{name}"] = spectra.mean(1).tolist()
    model.train()
    return report
