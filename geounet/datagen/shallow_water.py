"""Rotating shallow-water trajectories on the sphere from torch-harmonics' spectral solver.

The state is the spectral triple (geopotential Φ, relative vorticity ζ, divergence δ) of

    ∂ζ/∂t = -∇·((ζ + f) u),                      f = 2Ω sin(lat)
    ∂δ/∂t =  k·∇×((ζ + f) u) - ∇²(Φ + |u|²/2),
    ∂Φ/∂t = -∇·(Φ u),

integrated by :class:`torch_harmonics.examples.ShallowWaterSolver` (its tendencies
``dudtspec`` and its implicit hyperdiffusion of ζ, δ). Its own ``timestep`` handles one
trajectory and restarts the Adams-Bashforth scheme at every call; here
``BatchedShallowWaterSolver`` only lets the solver's vector transforms take a batch
axis, and :func:`integrate` runs the same third-order Adams-Bashforth update (same
start-up, same hyperdiffusion) for a whole batch of trajectories in one pass, without
restarting between recorded outputs. ``integrate`` from a fresh start equals the solver's
``timestep`` trajectory by trajectory (tested).

Datasets are ``xarray.Dataset`` with variables ``[sample, time, lat, lon]``:

    h           geopotential height Φ/g              m
    u, v        eastward / northward wind            m s-1
    vorticity   relative vorticity ζ                 s-1
    divergence  horizontal divergence δ              s-1

``time`` is in hours since the first recorded state, ``lat`` in degrees north
**descending** (+90 .. -90, the solver's order; the equiangular grid includes both poles),
``lon`` in degrees east on [0, 360). ``quad_weight`` (on ``lat``) holds the solver's
quadrature weights w_j: ∫_{S²} F dΩ ≈ Σ_j w_j Σ_k F_jk · 2π / nlon on the unit sphere.

Random initial conditions take the vorticity of the solver's ``random_initial_condition``
(white spectral noise up to the truncation), rescaled per sample to an RMS wind of
``mach * sqrt(g H)``, with zero divergence and a geopotential in nonlinear balance (see
:func:`random_initial_conditions` for why). The solver
draws from torch's *global* generator, so it is called inside ``torch.random.fork_rng``
after ``manual_seed(seed)``: the caller's global RNG state is untouched, and sample i
depends only on ``(seed, i)`` (the first n samples of a bigger dataset equal a smaller one).
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from geounet.data.cache import cached
from geounet.errors import GeounetError

GENERATOR_VERSION = 1
VARIABLES = ("h", "u", "v", "vorticity", "divergence")
_VARIABLE_ATTRS = {
    "h": {"units": "m", "standard_name": "geopotential_height", "long_name": "geopotential height Phi/g"},
    "u": {"units": "m s-1", "standard_name": "eastward_wind", "long_name": "eastward velocity"},
    "v": {"units": "m s-1", "standard_name": "northward_wind", "long_name": "northward velocity"},
    "vorticity": {
        "units": "s-1",
        "standard_name": "atmosphere_relative_vorticity",
        "long_name": "relative vorticity k . curl(u)",
    },
    "divergence": {"units": "s-1", "standard_name": "divergence_of_wind", "long_name": "div(u)"},
}
_GRIDS = ("equiangular", "legendre-gauss")
_INITIAL_CONDITIONS = ("random", "galewsky")


def _shallow_water_solver_cls():
    from torch_harmonics.examples.shallow_water_equations import ShallowWaterSolver

    class BatchedShallowWaterSolver(ShallowWaterSolver):
        """``ShallowWaterSolver`` whose vector transforms accept ``[2, *batch, ...]``.

        The solver indexes the state's component axis first (``uspec[0]`` = Φ,
        ``uspec[1:]`` = (ζ, δ)) while torch-harmonics' vector SHTs want the component
        axis third from last; moving it there and back lets ``dudtspec`` run on a state
        ``[3, B, lmax, mmax]``. Unbatched inputs (``[2, ...]`` with 3 dims) are unchanged.
        """

        def vrtdivspec(self, ugrid: Tensor) -> Tensor:  # [2, *B, nlat, nlon] -> [2, *B, L, M]
            return super().vrtdivspec(ugrid.movedim(0, -3)).movedim(-3, 0)

        def getuv(self, vrtdivspec: Tensor) -> Tensor:  # [2, *B, L, M] -> [2, *B, nlat, nlon]
            return super().getuv(vrtdivspec.movedim(0, -3)).movedim(-3, 0)

    return BatchedShallowWaterSolver


def stable_solver_dt(nlat: int, lmax: int | None = None, havg: float = 10.0e3, gravity: float = 9.80616,
                     radius: float = 6.37122e6) -> float:
    """Largest solver step (s) that divides one hour and keeps AB3 stable for gravity waves.

    The fastest linear mode has frequency ω = sqrt(g H) sqrt(L(L+1)) / a at degree L = lmax;
    AB3 is stable on the imaginary axis for ω dt ≲ 0.72. We take ω dt ≤ 0.6 (advection and
    rotation add a little) and round down to a divisor of 3600 s.
    """
    lmax = lmax or math.ceil(nlat / 3)
    omega_max = math.sqrt(gravity * havg) * math.sqrt(lmax * (lmax + 1)) / radius
    limit = 0.6 / omega_max
    divisors = [d for d in range(1, 3601) if 3600 % d == 0 and d <= limit]
    return float(max(divisors))


def make_solver(nlat: int, nlon: int, dt_solver: float, lmax: int | None = None, grid: str = "equiangular",
                dtype: torch.dtype = torch.float64):
    """The batched torch-harmonics solver on an ``nlat x nlon`` grid (default lmax = ceil(nlat/3))."""
    if grid not in _GRIDS:
        raise GeounetError(f"grid must be one of {_GRIDS}, got {grid!r}")
    if nlat < 8 or nlon < 2 * (nlat - 1) or nlon % 2:
        raise GeounetError(
            f"need nlat >= 8 and an even nlon >= 2 (nlat - 1) for an alias-free grid, got {nlat} x {nlon}"
        )
    lmax = lmax or math.ceil(nlat / 3)
    if not 2 <= lmax <= nlat:
        raise GeounetError(f"lmax must lie in [2, nlat={nlat}], got {lmax}")
    if not dt_solver > 0:
        raise GeounetError(f"dt_solver must be positive (seconds), got {dt_solver}")
    solver_cls = _shallow_water_solver_cls()
    return solver_cls(nlat, nlon, dt_solver, lmax=lmax, mmax=lmax, grid=grid).to(dtype)


def integrate(solver, uspec: Tensor, num_outputs: int, substeps: int) -> Tensor:
    """Adams-Bashforth-3 integration of a batch, recording every ``substeps`` solver steps.

    Same update as ``ShallowWaterSolver.timestep``: with tendencies F_n = dudtspec(U_n),

        U_{n+1} = H · (U_n + dt (23 F_n - 16 F_{n-1} + 5 F_{n-2}) / 12)

    where H is the implicit hyperdiffusion (applied to ζ, δ only), and the same start-up
    (F_{-1} = F_{-2} = F_0 at n = 0, F_{-1} := F_1 at n = 1).

    Args:
        solver: a solver from :func:`make_solver`.
        uspec: spectral state ``[3, B, lmax, mmax]`` (Φ, ζ, δ).
        num_outputs: number of recorded states after the initial one.
        substeps: solver steps between recorded states.

    Returns:
        ``[num_outputs + 1, 3, B, lmax, mmax]``, the initial state first.
    """
    states = [uspec]
    f_now = f_old = None
    step = 0
    for _ in range(num_outputs):
        for _ in range(substeps):
            f_new = solver.dudtspec(uspec)
            if step == 0:
                f_now = f_old = f_new
            elif step == 1:
                f_old = f_new
            uspec = uspec + solver.dt * ((23.0 / 12.0) * f_new - (16.0 / 12.0) * f_now + (5.0 / 12.0) * f_old)
            uspec[1:] = solver.hyperdiff * uspec[1:]
            f_old, f_now = f_now, f_new
            step += 1
        states.append(uspec)
    return torch.stack(states)


def spectral_to_grid(solver, uspec: Tensor) -> dict[str, Tensor]:
    """Grid fields ``[..., nlat, nlon]`` of a spectral state ``[3, ..., L, M]`` (units as stored)."""
    phi_vrt_div = solver.spec2grid(uspec)  # [3, ..., nlat, nlon]
    uv = solver.getuv(uspec[1:])  # [2, ..., nlat, nlon]
    return {
        "h": phi_vrt_div[0] / solver.gravity,
        "u": uv[0],
        "v": uv[1],
        "vorticity": phi_vrt_div[1],
        "divergence": phi_vrt_div[2],
    }


def area_rms(solver, field: Tensor) -> Tensor:
    """Area-weighted RMS over the sphere of grid fields ``[..., nlat, nlon]`` -> ``[...]``."""
    weights = solver.quad_weights / (2.0 * solver.nlon)  # [nlat, 1], sums to 1 over the grid
    return torch.sqrt((field**2 * weights).sum(dim=(-2, -1)))


def balanced_geopotential(solver, vrtspec: Tensor) -> Tensor:
    """Geopotential spectrum ``[..., L, M]`` in nonlinear balance with a non-divergent flow.

    With δ = 0, the divergence equation's tendency vanishes iff
    ∇²(Φ + |u|²/2) = k·∇×((ζ + f) u), so Φ = ∇⁻²[k·∇×((ζ + f) u)] - |u|²/2 + g H
    (g H fixes the l = 0 mode, which ∇⁻² leaves undetermined).
    """
    vrtdivspec = torch.stack([vrtspec, torch.zeros_like(vrtspec)])  # [2, ..., L, M]
    uv = solver.getuv(vrtdivspec)  # [2, ..., nlat, nlon]
    absolute_vorticity = solver.spec2grid(vrtspec) + solver.coriolis  # [..., nlat, nlon]
    curl_flux = solver.vrtdivspec(uv * absolute_vorticity)[0]  # [..., L, M]
    kinetic = solver.grid2spec(0.5 * (uv**2).sum(dim=0))  # [..., L, M]
    mean_depth = solver.grid2spec(torch.full_like(uv[0], float(solver.gravity * solver.havg)))
    return solver.invlap * curl_flux - kinetic + mean_depth


def random_initial_conditions(solver, num: int, seed: int, mach: float) -> Tensor:
    """``num`` balanced random states ``[3, num, L, M]`` built from the solver's random IC.

    The solver's ``random_initial_condition`` draws white spectral noise up to degree lmax
    for Φ, ζ and δ (from torch's global RNG: drawn in order inside ``fork_rng`` after
    ``torch.manual_seed(seed)``), normalised for degree 120, so its realised winds shrink
    with lmax (~0.6 m/s at lmax = 22, mach = 0.1), and its random δ and Φ are unbalanced:
    the flow is then dominated by fast gravity waves (each field changes by ~80 % of its
    std per hour). We keep its vorticity, rescaled per sample so the area-weighted RMS wind
    speed is ``mach * sqrt(g H)``, set δ = 0 and take Φ from :func:`balanced_geopotential`,
    so the trajectories are slow, vortical (Rossby-wave) dynamics like the Galewsky case.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        noise = torch.stack([solver.random_initial_condition(mach=1.0) for _ in range(num)], dim=1)
    vrtspec = noise[1].clone()  # [num, L, M]
    vrtspec[:, 0, :] = 0.0  # the noise has an l = 0 part; net vorticity on a closed surface is 0
    uv = solver.getuv(torch.stack([vrtspec, torch.zeros_like(vrtspec)]))  # [2, num, nlat, nlon]
    wind_rms = area_rms(solver, torch.sqrt((uv**2).sum(dim=0)))  # [num]
    vrtspec = vrtspec * (mach * torch.sqrt(solver.gravity * solver.havg) / wind_rms).reshape(-1, 1, 1)
    return torch.stack([balanced_geopotential(solver, vrtspec), vrtspec, torch.zeros_like(vrtspec)])


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        raise GeounetError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _substeps(dt_hours: float, dt_solver: float) -> int:
    ratio = dt_hours * 3600.0 / dt_solver
    if not dt_hours > 0 or abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise GeounetError(
            f"dt_hours * 3600 = {dt_hours * 3600.0} s must be a positive multiple of the solver step "
            f"dt_solver = {dt_solver} s"
        )
    return round(ratio)


def _generation_params(**kwargs) -> dict:
    return {"generator": "shallow_water", "version": GENERATOR_VERSION, **kwargs}


def generate_shallow_water(
    num_trajectories: int = 32,
    steps: int = 24,
    dt_hours: float = 1.0,
    nlat: int = 64,
    nlon: int = 128,
    seed: int = 0,
    *,
    initial_condition: str = "random",
    mach: float = 0.1,
    spinup_hours: float = 0.0,
    lmax: int | None = None,
    grid: str = "equiangular",
    dt_solver: float | None = None,
    chunk_size: int = 64,
) -> xr.Dataset:
    """Integrate shallow-water trajectories and return them as a lat-lon ``xarray.Dataset``.

    Args:
        num_trajectories: number of samples (``initial_condition="galewsky"`` needs 1).
        steps: recorded steps after the initial state; ``time`` has ``steps + 1`` entries.
        dt_hours: time between recorded states (hours); a multiple of ``dt_solver``.
        nlat, nlon: grid size; ``nlon >= 2 (nlat - 1)``.
        seed: seed of the random initial conditions.
        initial_condition: ``"random"`` (solver's random IC) or ``"galewsky"`` (Galewsky et
            al. 2004 barotropically unstable jet; deterministic, for out-of-distribution tests).
        mach: RMS wind speed of the random ICs in units of the gravity-wave speed sqrt(g H).
        spinup_hours: integrate this long before the first recorded state (a multiple of
            ``dt_hours``); lets the unbalanced random ICs shed their grid-scale noise.
        lmax: spectral truncation (default ceil(nlat / 3), as torch-harmonics' PdeDataset).
        grid: ``"equiangular"`` (includes the poles) or ``"legendre-gauss"``.
        dt_solver: solver step in seconds (default :func:`stable_solver_dt`).
        chunk_size: trajectories integrated together (memory ~ chunk * 3 * nlat * nlon * 8 B
            per intermediate).

    Returns:
        Dataset with ``h, u, v, vorticity, divergence`` ``[sample, time, lat, lon]``
        float32, coordinates ``time`` (hours), ``lat`` (degrees north, descending),
        ``lon`` (degrees east), ``quad_weight`` (on lat) and provenance attributes.
    """
    _check_positive_int("num_trajectories", num_trajectories)
    _check_positive_int("steps", steps)
    _check_positive_int("chunk_size", chunk_size)
    _check_positive_int("seed", seed, minimum=0)
    if initial_condition not in _INITIAL_CONDITIONS:
        raise GeounetError(f"initial_condition must be one of {_INITIAL_CONDITIONS}, got {initial_condition!r}")
    if initial_condition == "galewsky" and num_trajectories != 1:
        raise GeounetError(f"the Galewsky case is deterministic: use num_trajectories=1, got {num_trajectories}")
    if not mach > 0:
        raise GeounetError(f"mach must be positive, got {mach}")
    dt_solver = float(dt_solver) if dt_solver is not None else stable_solver_dt(nlat, lmax)
    solver = make_solver(nlat, nlon, dt_solver, lmax=lmax, grid=grid)
    substeps = _substeps(dt_hours, dt_solver)
    spinup_outputs = spinup_hours / dt_hours
    if spinup_hours < 0 or abs(spinup_outputs - round(spinup_outputs)) > 1e-9:
        raise GeounetError(f"spinup_hours must be a non-negative multiple of dt_hours={dt_hours}, got {spinup_hours}")
    spinup_outputs = round(spinup_outputs)

    if initial_condition == "galewsky":
        initial = solver.galewsky_initial_condition().unsqueeze(1)  # [3, 1, L, M]
    else:
        initial = random_initial_conditions(solver, num_trajectories, seed, mach)  # [3, N, L, M]

    fields: dict[str, list[np.ndarray]] = {name: [] for name in VARIABLES}
    with torch.no_grad():
        for start in range(0, num_trajectories, chunk_size):
            uspec = initial[:, start : start + chunk_size]
            if spinup_outputs:
                uspec = integrate(solver, uspec, spinup_outputs, substeps)[-1]
            states = integrate(solver, uspec, steps, substeps)  # [T, 3, b, L, M]
            grid_fields = spectral_to_grid(solver, states.movedim(1, 0))  # each [T, b, nlat, nlon]
            for name, value in grid_fields.items():
                fields[name].append(value.transpose(0, 1).to(torch.float32).numpy())

    lat = np.rad2deg(solver.lats.numpy())
    lon = np.rad2deg(solver.lons.numpy())
    coords = {
        "sample": np.arange(num_trajectories),
        "time": (
            "time",
            np.arange(steps + 1) * float(dt_hours),
            {"units": "hours", "long_name": "time since the first recorded state"},
        ),
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude", "ordering": "descending"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        "quad_weight": (
            "lat",
            solver.quad_weights.reshape(-1).numpy().astype(np.float64),
            {"long_name": "quadrature weight per latitude row on the unit sphere (times 2 pi / nlon per cell)"},
        ),
    }
    data_vars = {
        name: (("sample", "time", "lat", "lon"), np.concatenate(chunks, axis=0), _VARIABLE_ATTRS[name])
        for name, chunks in fields.items()
    }
    import torch_harmonics

    attrs = {
        "title": "rotating shallow-water equations on the sphere",
        "solver": "torch_harmonics.examples.ShallowWaterSolver (spectral; AB3 + implicit hyperdiffusion)",
        "torch_harmonics_version": torch_harmonics.__version__,
        "generator": f"geounet.datagen.shallow_water v{GENERATOR_VERSION}",
        "initial_condition": initial_condition,
        "seed": int(seed),
        "mach": float(mach),
        "grid": grid,
        "nlat": int(nlat),
        "nlon": int(nlon),
        "lmax": int(solver.lmax),
        "dt_solver_seconds": float(dt_solver),
        "dt_hours": float(dt_hours),
        "spinup_hours": float(spinup_hours),
        "radius_m": float(solver.radius),
        "omega_per_s": float(solver.omega),
        "gravity_m_per_s2": float(solver.gravity),
        "mean_depth_m": float(solver.havg),
        "lat_ordering": "descending (north to south), includes poles on the equiangular grid",
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


_GENERATE_SIGNATURE = inspect.signature(generate_shallow_water)


def load_or_generate_shallow_water(cache_dir: str | os.PathLike = "data", **kwargs) -> xr.Dataset:
    """:func:`generate_shallow_water` (same keyword arguments) through the on-disk cache.

    The file is ``{cache_dir}/shallow_water-<hash>.nc``; the hash covers every generation
    argument with defaults filled in (so ``mach=0.1`` and the default name the same file;
    ``chunk_size`` does not change the data and is left out). A file whose stored
    parameters differ raises :class:`geounet.data.cache.CacheMismatchError` rather than
    being returned or overwritten.
    """
    bound = _GENERATE_SIGNATURE.bind(**kwargs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    key = _generation_params(**{k: v for k, v in args.items() if k != "chunk_size"})
    return cached(cache_dir, "shallow_water", key, lambda: generate_shallow_water(**args))


def normalization_stats(ds: xr.Dataset, variables: Sequence[str] = VARIABLES,
                        area_weighted: bool = True) -> dict[str, tuple[float, float]]:
    """Per-variable ``(mean, std)`` over all samples, times and grid points of ``ds``.

    Pass the *training split only* (e.g. ``ds.isel(sample=slice(0, n_train))``). With
    ``area_weighted`` the grid points are weighted by ``quad_weight`` (area on the sphere),
    so the statistics do not over-count the polar rows of the equiangular grid.
    """
    missing = [v for v in variables if v not in ds]
    if missing:
        raise GeounetError(f"variables {missing} are not in the dataset (it has {list(ds.data_vars)})")
    weights = ds["quad_weight"].astype(np.float64) if area_weighted else xr.ones_like(ds["lat"], dtype=np.float64)
    stats = {}
    for name in variables:
        field = ds[name].astype(np.float64)
        weighted = field.weighted(weights)
        mean = float(weighted.mean())
        std = float(np.sqrt(float(((field - mean) ** 2).weighted(weights).mean())))
        stats[name] = (mean, std)
    return stats
