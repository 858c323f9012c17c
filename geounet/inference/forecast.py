"""Forecasts from a trained forecast run: the model with its training normalisation, and its
rollout from an init time as an xarray Dataset in the layout of the input data.

The file layout of :func:`rollout_dataset` is described by ``geounet forecast --help``
(:mod:`geounet.cli.forecast`): every forecast variable with dims
``(time, lead_time, *space)``, a ``valid_time (time, lead_time)`` coordinate, and
``space`` the layout of the input data (the source lat-lon grid, ``pixel`` for
"nest" / "ring", or ``(face, height, width)`` for face layouts).
"""

from __future__ import annotations

from pathlib import Path

from geounet.errors import GeounetError


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

