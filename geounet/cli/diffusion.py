"""``geounet diffuse`` (train a diffusion model on a task's fields) and ``geounet sample``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parsers(commands) -> None:
    """Register ``geounet diffuse`` and ``geounet sample`` on the subcommand parser."""
    diffuse = commands.add_parser(
        "diffuse", help="train a diffusion model on a task's fields (task config + [diffusion] table)",
        description="Learn the distribution of a task's training fields with a denoising U-Net "
        "(geounet.experiment.diffusion: [task], [model] and a [diffusion] table); writes RUN_DIR/checkpoint.pt "
        "every diffusion.checkpoint_every steps. Runs under torchrun like `geounet train`.")
    diffuse.add_argument("--config", type=Path, required=True, help="TOML with [task], [model], [diffusion]")
    diffuse.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="override one config value, e.g. --set diffusion.steps=200 (repeatable)")
    diffuse.add_argument("--out", type=Path, required=True, help="the run directory (must not hold a run)")
    diffuse.add_argument("--resume", action="store_true",
                         help="continue the run in --out from its checkpoint (exactly where it stopped)")
    diffuse.add_argument("--device", default=None,
                         help="cpu, cuda, cuda:1 or auto (CUDA when present); default: diffusion.device (auto)")
    diffuse.add_argument("--quiet", action="store_true", help="no progress bar")
    diffuse.set_defaults(run=_diffuse)

    sample = commands.add_parser("sample", help="draw samples from a `geounet diffuse` run into a netCDF file")
    sample.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory written by `geounet diffuse`")
    sample.add_argument("--num", type=int, required=True, help="number of samples")
    sample.add_argument("--out", type=Path, required=True,
                        help="netCDF file to write, e.g. samples.nc (variable 'field' [sample, node, channel])")
    sample.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sample.add_argument("--seed", type=int, default=0, help="seed of the sampler's noise (same seed, same samples)")
    sample.add_argument("--sampler", default=None, help="ddim, heun or ddpm (default: the run's diffusion.sampler)")
    sample.add_argument("--steps", type=int, default=None, help="sampling steps (default: diffusion.sample_steps)")
    sample.set_defaults(run=_sample)


def _diffuse(args: argparse.Namespace) -> int:
    from geounet.experiment.diffusion import load_config_file, read_config, resolve_device, train_run
    from geounet.train import distributed

    raw = load_config_file(args.config, args.overrides)
    device = resolve_device(args.device or read_config(raw)[1]["device"])
    raw.setdefault("diffusion", {})["device"] = distributed.setup(device)  # this process's device under torchrun
    main_process = distributed.is_main_process()
    try:
        summary = train_run(raw, args.out, progress=not args.quiet, resume=args.resume)
    finally:
        distributed.teardown()
    if main_process:
        print(f"trained {summary['steps']} steps on {summary['device']}, final loss {summary['final_loss']:.4f}, "
              f"held-out loss {summary['test_loss']:.4f}; wrote {args.out}/checkpoint.pt")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import xarray as xr

    from geounet.data.outputs import check_output, write_output
    from geounet.experiment.diffusion import sample_run

    check_output(args.out, (".nc",), overwrite=args.overwrite)
    samples, hierarchy, cfg = sample_run(args.run_dir, args.num, args.seed, args.sampler, args.steps)
    data = xr.Dataset(
        {"field": (("sample", "node", "channel"), samples.numpy())},  # [S, N, C]
        coords={"mass": ("node", hierarchy.mass(hierarchy.finest_level).numpy())},
        attrs={"task": cfg.task.name, "hierarchy": repr(hierarchy), "run": str(args.run_dir), "seed": args.seed,
               "units": "the task's normalised model units", "geounet_command": "geounet sample"},
    )
    write_output(args.out, data.to_netcdf)
    print(f"wrote {args.num} samples {tuple(samples.shape)} to {args.out}")
    return 0
