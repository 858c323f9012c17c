"""``geounet bench``: run the benchmark scripts of a checkout's ``experiments/bench/``.

The benchmarks are scripts, not package modules: each times its subject against a
reference in the same run, has its own ``argparse`` options and stays runnable as
``python experiments/bench/bench_<name>.py``. This module finds the directory, lists the
scripts (``bench_<name>.py`` is benchmark ``<name>``) and runs one as ``__main__`` in this
process with the given arguments, as ``python experiments/bench/bench_<name>.py ARGS``
would: ``sys.argv[0]`` is the script's path and its directory is first on ``sys.path``
(scripts import helpers from each other).
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

from geounet.errors import GeounetError, MissingFileError

#: where the benchmarks live, relative to a checkout's root
BENCH_DIR = Path("experiments") / "bench"
PREFIX = "bench_"


def find_bench_dir(start: str | Path | None = None) -> Path:
    """``experiments/bench`` in ``start`` (default: the current directory) or its nearest
    parent that has one, else in the checkout the ``geounet`` package was installed from."""
    start = Path.cwd() if start is None else Path(start).resolve()
    package_root = Path(__file__).resolve().parents[1]
    candidates = [directory / BENCH_DIR for directory in (start, *start.parents, package_root)]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise MissingFileError(
        f"no {BENCH_DIR}/ in {start}, its parents or {package_root}: the benchmarks are scripts in a geounet "
        "checkout, not part of the installed package; run `geounet bench` inside a checkout"
    )


def benchmarks(directory: Path) -> dict[str, Path]:
    """``{name: script}`` for every ``bench_<name>.py`` in ``directory``, sorted by name."""
    scripts = sorted(directory.glob(f"{PREFIX}*.py"))
    return {script.stem.removeprefix(PREFIX): script for script in scripts}


def summary(script: Path) -> str:
    """The first line of a script's docstring, read without importing (running) it."""
    docstring = ast.get_docstring(ast.parse(script.read_text(), filename=str(script))) or ""
    return docstring.strip().splitlines()[0] if docstring.strip() else ""


def resolve(name: str, directory: Path) -> Path:
    """The script of benchmark ``name`` (also accepted: ``bench_<name>`` and ``bench_<name>.py``)."""
    known = benchmarks(directory)
    key = name.removesuffix(".py").removeprefix(PREFIX)
    if key not in known:
        raise GeounetError(
            f"unknown benchmark {name!r}; the benchmarks in {directory} are: {', '.join(known) or 'none'} "
            "(see `geounet bench --list`)"
        )
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
