"""The ``geounet`` command; ``geounet COMMAND --help`` describes each one.

geounet info     [--config FILE] [--set section.key=value ...]   levels, nodes, parameter counts
geounet datagen  [--config FILE] [--set ...]                      generate (or find cached) task data
geounet train    [--config FILE] [--set ...] [--out DIR] [--resume | --overwrite] [--force] [--quiet] [--json]
geounet evaluate RUN_DIR [--device DEV] [--plot]                  re-evaluate a run's checkpoint
geounet plot     RUN_DIR [RUN_DIR ...] [--out FILE] [--predictions] [--device DEV]
geounet analyse  noise --config FILE [--out DIR]                 per-level SNR of diffusion noise on the data
geounet diffuse  --config FILE --out RUN_DIR [--set ...]          train a diffusion model on a task's fields
geounet sample   RUN_DIR --num N --out samples.nc [--seed S]      samples of a diffusion run as netCDF (variable field)
geounet forecast RUN_DIR --init DATE --steps N --out FILE        a forecast run's rollout as netCDF / zarr
geounet predict  RUN_DIR --mesh FILE --out FILE.vtu              a mesh run's prediction on a new mesh file

``--config`` takes a TOML file or the name of a packaged config (geounet/configs/, e.g.
``triangle_poisson``); the default is the packaged main job, wherever the command runs.

Errors in the input (a bad config value, a missing file, a damaged checkpoint or data
file, an occupied or locked run folder, an existing output without ``--overwrite``, a run
too large for the memory, a device the machine does not have) and operating-system faults
while writing (read-only folder, disk full, file too large) print one line naming the
problem and exit with status 2.
"""

from __future__ import annotations

import argparse
import errno
import sys
import warnings

from geounet.errors import GeounetError

# PyTorch Geometric calls the deprecated torch.jit.script when imported; the warning says
# nothing to a user of the command (libraries importing geounet keep their own filters).
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from geounet.cli import analyse, diffusion, forecast, predict, train  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geounet",
        description="U-Nets on the sphere, triangles and meshes (Williams, Falck et al. 2023, beyond the square)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (train, forecast, predict, analyse, diffusion):
        module.add_parsers(commands)
    return parser


#: what to do about an operating-system error while writing, by errno
OS_FIXES = {
    errno.ENOSPC: "free space on that disk or write elsewhere",
    errno.EDQUOT: "free space within your quota or write elsewhere",
    errno.EFBIG: "the file exceeds the file-size limit (ulimit -f) or the file system's largest file; raise the "
                 "limit or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EACCES: "make it writable for you or write elsewhere",
    errno.EPERM: "make it writable for you or write elsewhere",
}


def _is_user_error(error: BaseException) -> bool:
    """A :class:`GeounetError`, or an OS error about a path the user named (missing, a folder
    where a file was meant, no permission) or about the disk (full, file too large): the user
    can fix those."""
    return isinstance(error, GeounetError) or (
        isinstance(error, OSError) and (error.filename is not None or error.errno in OS_FIXES))


def _one_line(error: BaseException) -> str:
    """The error as one line; an OS error as ``path: cause; fix``."""
    if isinstance(error, OSError) and not isinstance(error, GeounetError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        fix = OS_FIXES.get(error.errno)
        return f"{where}{error.strerror}" + (f"; {fix}" if fix else "")
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    """Run one command. Errors in what the user gave print as one line with status 2;
    anything else is a defect and raises with its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        if not _is_user_error(error):
            raise
        print(f"geounet {args.command}: error: {' '.join(_one_line(error).split())}", file=sys.stderr)  # one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
