"""Run a benchmark of this folder by name: ``python experiments/bench/run.py NAME [OPTIONS]``.

The benchmarks are scripts, not package modules: each times its subject against a
reference in the same run, has its own ``argparse`` options and stays runnable as
``python experiments/bench/bench_<name>.py``. This runner lists them (``--list``, with the
first line of each docstring) and runs one as ``__main__`` in this process with the
given options, as ``python experiments/bench/bench_<name>.py OPTIONS`` would:
``sys.argv[0]`` is the script's path and this folder is first on ``sys.path`` (scripts
import helpers from each other).

    python experiments/bench/run.py --list
    python experiments/bench/run.py sht --device cuda --nside 64 128
"""

from __future__ import annotations

import argparse
import ast
import runpy
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def benchmarks(directory: Path = BENCH_DIR) -> dict[str, Path]:
    """``{name: script}`` for every ``bench_<name>.py`` in ``directory``, sorted by name."""
    scripts = sorted(directory.glob(f"{PREFIX}*.py"))
    return {script.stem.removeprefix(PREFIX): script for script in scripts}


def summary(script: Path) -> str:
    """The first line of a script's docstring, read without importing (running) it."""
    docstring = ast.get_docstring(ast.parse(script.read_text(), filename=str(script))) or ""
    return docstring.strip().splitlines()[0] if docstring.strip() else ""


def resolve(name: str, directory: Path = BENCH_DIR) -> Path:
    """The script of benchmark ``name`` (also accepted: ``bench_<name>`` and ``bench_<name>.py``)."""
    known = benchmarks(directory)
    key = name.removesuffix(".py").removeprefix(PREFIX)
    if key not in known:
        raise SystemExit(f"unknown benchmark {name!r}; the benchmarks are: {', '.join(known) or 'none'} (--list)")
    return known[key]


def run_benchmark(script: Path, args: list[str]) -> int:
    """Run ``script`` as ``__main__`` with command-line ``args``; returns its exit status.

    ``sys.argv`` and ``sys.path`` are restored afterwards. A ``SystemExit`` from the script
    (``--help``, an argparse error, ``sys.exit``) becomes the returned status.
    """
    saved_argv, saved_path = sys.argv, sys.path[:]
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        print(exit_.code, file=sys.stderr)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="NAME --help lists its options")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and what each measures")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the benchmark, e.g. sht for bench_sht.py")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="...", help="options for the benchmark")
    args = parser.parse_args(argv)
    if args.list == (args.name is not None):
        parser.error("pass either --list or a benchmark name")
    if args.list:
        for name, script in benchmarks().items():
            print(f"  {name:<18} {summary(script)}")
        return 0
    return run_benchmark(resolve(args.name), args.script_args)


if __name__ == "__main__":
    sys.exit(main())
