"""Faults of the machine and of concurrent runs, CI-sized: two runs into one folder, two
identical cache builds at once, stale locks, folders that cannot be written, a full disk and
a file-size limit. Each ends in one line naming the path and the cause (exit status 2), or,
for an optional cache, in one warning and a computed result."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from geounet.cli import main
from geounet.data import climate_dataset
from geounet.data.outputs import write_output
from geounet.errors import OptionalCacheWarning
from geounet.geometry.laplacian import laplacian_eigenbasis
from geounet.geometry.mesh import Mesh
from geounet.train.run_lock import LOCK_NAME, RunLockedError, StaleLockWarning, run_lock

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
TINY = ["task.mesh_level=3", "task.band_limits=[4, 12]", "model.num_levels=3", "task.num_train=8", "task.num_test=4",
        "model.width=4", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1"]
HOLD_LOCK = ("import sys\nfrom geounet.train.run_lock import run_lock\n"
             "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.read()\n")


def tiny_train(out: Path, cache: Path) -> list[str]:
    """``geounet train`` of a two-step triangle-Poisson run into ``out``."""
    overrides = [*TINY, f"task.cache_dir='{cache}'"]
    return ["train", "--config", "triangle_poisson", *(a for o in overrides for a in ("--set", o)), "--out", str(out),
            "--quiet"]


def command(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "geounet.cli", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **options)


def error_line(stderr: str) -> str:
    """The one line a refused command prints (warnings of libraries filtered out)."""
    lines = [line for line in stderr.splitlines() if line.startswith("geounet ")]
    assert len(lines) == 1, stderr
    return lines[0]


# ---------------------------------------------------------------- concurrent runs


def test_a_second_run_into_a_held_folder_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder)], env=ENV, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"  # the lock is claimed: no sleep, the holder says so
        second = command(*tiny_train(folder, tmp_path / "data"))
        _, stderr = second.communicate(timeout=600)
        assert second.returncode == 2
        assert f"{folder} is in use by another run (pid {holder.pid} on {socket.gethostname()}" in error_line(stderr)
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # the refused run wrote nothing
    finally:
        holder.communicate(input="", timeout=60)
    assert holder.returncode == 0 and not (folder / LOCK_NAME).exists()  # released when the holder ends


def test_two_concurrent_trainings_into_one_folder_one_is_refused(tmp_path):
    folder = tmp_path / "run"
    runs = [command(*tiny_train(folder, tmp_path / f"data{i}")) for i in range(2)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    (refused,) = [stderr for code, stderr in results if code == 2]
    assert any(reason in error_line(refused) for reason in ("is in use by another run", "holds this run already"))
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 2
    assert not (folder / LOCK_NAME).exists()


def test_a_stale_lock_is_taken_over_with_a_warning_and_a_live_one_is_not(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": int(dead.stdout), "start": "1", "host": socket.gethostname(), "since": "x"}))
    taken_over = f"taking over the lock of a run that no longer runs \\(pid {int(dead.stdout)} on"
    with pytest.warns(StaleLockWarning, match=taken_over):
        with run_lock(tmp_path):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
            with pytest.raises(RunLockedError, match=f"in use by another run \\(pid {os.getpid()}"):
                with run_lock(tmp_path):  # this process is alive: its own lock is not stale
                    pass
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": 1, "start": "1", "host": "another-host", "since": "x"}))
    with pytest.raises(RunLockedError, match=f"on another-host, since x\\); .* delete {lock}"):
        with run_lock(tmp_path):  # another host's process cannot be checked: never taken over
            pass


# ---------------------------------------------------------------- concurrent cache builds


def _build_archive(data: str, cache: str, barrier, builds: str) -> dict:
    """Open the archive of ``data`` once both processes are ready; every build of it appends a line to ``builds``."""
    build = climate_dataset._build_archive

    def counted_build(*args, **kwargs):
        with open(builds, "a") as record:
            record.write(f"{os.getpid()}\n")
        return build(*args, **kwargs)

    climate_dataset._build_archive = counted_build
    barrier.wait(timeout=300)
    archive = climate_dataset.open_archive(data, ["t2m", "z500"], "latlon", 4, cache)
    return {"variables": archive.variables, "shape": list(archive.fields.shape),
            "sum": float(np.nansum(archive.fields[0:2]))}


def test_two_identical_cache_builds_at_once_both_succeed(tmp_path):
    """Two processes that need the same missing archive at once: one builds it, the other waits
    for it and uses it (the build lock); neither fails and nothing is left half-written."""
    sys.path.insert(0, str(REPO / "tests" / "forecast"))
    from forecast_files import era5_like

    data = tmp_path / "era5.nc"
    era5_like(days=2).to_netcdf(data)
    builds = tmp_path / "builds.txt"
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        results = pool.starmap(_build_archive, [(str(data), str(tmp_path / "cache"), barrier, str(builds))] * 2)
    assert results[0] == results[1]
    assert len(builds.read_text().splitlines()) == 1  # the second process used the first one's archive
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    (built,) = [name for name in entries if name.startswith("climate-") and not name.endswith(".manifest.json")]
    assert entries == sorted([built, f"{built}.manifest.json", f".{built}.lock"])  # no staging folder left


# ---------------------------------------------------------------- folders that cannot be written


@pytest.fixture
def unwritable(tmp_path):
    """A folder no file can be created in: a chmod 0o500 folder, or as root (whom chmod does not
    stop) a new folder in sysfs, which refuses new files even to root."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder / "out"
        folder.chmod(0o700)
    elif Path("/sys/kernel").is_dir():
        yield Path("/sys/geounet-reliability-test")
    else:
        pytest.skip("running as root without sysfs: no folder refuses writes")


def test_an_unwritable_out_is_one_line_naming_it(unwritable, tmp_path, capsys):
    assert main(tiny_train(unwritable, tmp_path / "data")) == 2
    line = error_line(capsys.readouterr().err)
    assert str(unwritable) in line and "; make it writable for you or write elsewhere" in line  # EACCES or EPERM


def test_an_unwritable_data_cache_is_one_line_naming_it(unwritable, tmp_path, capsys):
    assert main(tiny_train(tmp_path / "run", unwritable)) == 2
    line = error_line(capsys.readouterr().err)
    assert str(unwritable) in line and "; make it writable for you or write elsewhere" in line


def test_an_unwritable_optional_cache_warns_and_computes(unwritable, monkeypatch):
    ico = trimesh.creation.icosphere(subdivisions=1)
    mesh = Mesh(ico.vertices, ico.faces)
    monkeypatch.setenv("GEOUNET_CACHE", str(unwritable))
    with pytest.warns(OptionalCacheWarning, match="the eigenbasis cache .* could not be written"):
        values, vectors = laplacian_eigenbasis(mesh, 6)
    expected_values, expected_vectors = laplacian_eigenbasis(mesh, 6, use_cache=False)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(vectors, expected_vectors)


# ---------------------------------------------------------------- a full disk, a file-size limit


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "forecast.nc"
    target.write_bytes(b"the old forecast")

    def fill_the_disk(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            handle.write(b"half of a new forecast")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() reports it: no file name

    with pytest.raises(OSError, match=f"No space left on device: '{target}'"):
        write_output(target, fill_the_disk)
    assert target.read_bytes() == b"the old forecast"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecast.nc"]


def test_a_full_disk_while_checkpointing_is_one_line_naming_the_checkpoint(tmp_path, monkeypatch, capsys):
    write_bytes = Path.write_bytes

    def no_space_for_checkpoints(self, data):
        if self.name.startswith(".checkpoint."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", no_space_for_checkpoints)
    assert main(tiny_train(tmp_path / "run", tmp_path / "data")) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{tmp_path / 'run' / 'checkpoint.pt'}: No space left on device; free space on that disk" in line
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []  # no temporary file, the lock released


def test_a_file_size_limit_is_one_line_and_leaves_no_temporary(tmp_path):
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))  # bytes; Python ignores SIGXFSZ, write() fails

    run = command(*tiny_train(tmp_path / "run", tmp_path / "data"), preexec_fn=limit_file_size)
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 2
    line = error_line(stderr)
    assert "File too large; the file exceeds the file-size limit (ulimit -f)" in line and str(tmp_path) in line
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
