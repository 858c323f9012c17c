"""experiments/bench/run.py: lists the benchmark scripts and runs one with its own options."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "experiments" / "bench" / "run.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, cwd=REPO)


def test_list_names_every_script():
    done = _run("--list")
    assert done.returncode == 0, done.stderr
    scripts = sorted((REPO / "experiments/bench").glob("bench_*.py"))
    assert len(scripts) >= 6
    for script in scripts:
        assert f"  {script.stem.removeprefix('bench_')} " in done.stdout
    assert "restrict + prolong against a tensor copy" in done.stdout  # the docstring's first line


def test_errors_name_the_problem():
    unknown = _run("no_such_bench")
    assert unknown.returncode != 0
    assert "unknown benchmark 'no_such_bench'" in unknown.stderr and "healpix_restrict" in unknown.stderr
    assert "pass either --list or a benchmark name" in _run().stderr
    assert "pass either --list or a benchmark name" in _run("--list", "sht").stderr


def test_runs_a_script_with_its_own_options():
    helped = _run("healpix_build", "--help")  # the script's SystemExit(0) becomes the status
    assert helped.returncode == 0 and "--nside" in helped.stdout
    done = _run("bench_healpix_restrict.py", "--device", "cpu", "--nside", "8", "--repeats", "1")
    assert done.returncode == 0, done.stderr
    assert "device=cpu" in done.stdout and "ratio" in done.stdout
    bogus = _run("healpix_build", "--bogus")  # the script's argparse error
    assert bogus.returncode == 2 and "unrecognized arguments: --bogus" in bogus.stderr
