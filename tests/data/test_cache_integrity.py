"""Fault tests of the caches: every kind of damage to every cache is rebuilt (with one warning
naming the file) or named, never used; temporaries of killed writers are cleaned, live
writers' are kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from geounet.data.cache import cached, dataset_path, load_npz
from geounet.data.mesh_dataset import Clusters, cached_hierarchy
from geounet.geometry.cache_files import (
    CacheRebuiltWarning,
    DamagedCacheError,
    check_entry,
    manifest_path,
    remove_orphans,
    temporary_path,
)
from geounet.geometry.laplacian import laplacian_eigenbasis
from geounet.geometry.mesh import Mesh
from geounet.testing.faults import DAMAGE_KINDS, damage_file

ROOT = Path(__file__).parents[2]
PARAMS = {"generator": "toy", "version": 1, "num_samples": 6}


def _toy_arrays():
    return {"u": np.arange(6 * 200, dtype=np.float64).reshape(6, 200), "x": np.linspace(0, 1, 200)}


def _toy_dataset():
    return xr.Dataset({"u": (("sample", "x"), _toy_arrays()["u"])}, coords={"x": _toy_arrays()["x"]})


def _grid_mesh(n: int = 7) -> Mesh:
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n), indexing="ij")
    vertices = np.stack([x.ravel(), y.ravel()], axis=1)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel()
    return Mesh(vertices, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]))


def _target(path: Path, kind: str) -> Path:
    """The file that ``kind`` damages: the manifest for bad JSON, the payload otherwise."""
    return manifest_path(path) if kind == "bad_json" else path


def _rebuilt_once(build, path: Path):
    """``build()`` under a record of warnings: exactly one CacheRebuiltWarning, naming ``path``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build()
    rebuilt = [w for w in caught if issubclass(w.category, CacheRebuiltWarning)]
    assert len(rebuilt) == 1 and str(path) in str(rebuilt[0].message), [str(w.message) for w in caught]
    assert check_entry(path) is None
    return result


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
@pytest.mark.parametrize("fmt", ["npz", "netcdf"])
def test_damaged_generated_data_is_rebuilt_with_one_warning(tmp_path, fmt, kind):
    calls = []

    def build():
        calls.append(1)
        return _toy_arrays() if fmt == "npz" else _toy_dataset()

    clean = cached(tmp_path, "toy", PARAMS, build, fmt=fmt)
    path = dataset_path(tmp_path, "toy", PARAMS, ".npz" if fmt == "npz" else ".nc")
    damage_file(_target(path, kind), kind)
    again = _rebuilt_once(lambda: cached(tmp_path, "toy", PARAMS, build, fmt=fmt), path)
    assert len(calls) == 2
    np.testing.assert_array_equal(np.asarray(again["u"]), np.asarray(clean["u"]))


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damaged_eigenbasis_is_solved_again(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("GEOUNET_CACHE", str(tmp_path))
    mesh = _grid_mesh()
    values, vectors = laplacian_eigenbasis(mesh, 8)
    (path,) = tmp_path.glob("eigenbasis-*.npy")
    damage_file(_target(path, kind), kind)
    again_values, again_vectors = _rebuilt_once(lambda: laplacian_eigenbasis(mesh, 8), path)
    np.testing.assert_array_equal(again_values, values)
    np.testing.assert_array_equal(again_vectors, vectors)


@pytest.mark.parametrize("kind", ["truncated", "zeroed", "changed"])
def test_damaged_hierarchy_cache_is_rebuilt(tmp_path, kind):
    mesh = _grid_mesh()
    clean = cached_hierarchy(mesh, Clusters(3), tmp_path)
    (path,) = (tmp_path / "hierarchies").glob("*.pkl")
    damage_file(path, kind)
    with pytest.warns(CacheRebuiltWarning, match=str(path)):
        again = cached_hierarchy(mesh, Clusters(3), tmp_path)
    for level in (1, 2):
        assert torch.equal(again.parents(level), clean.parents(level))


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_a_damaged_file_read_without_its_builder_is_named(tmp_path, kind):
    path = dataset_path(tmp_path, "toy", PARAMS, ".npz")
    cached(tmp_path, "toy", PARAMS, _toy_arrays, fmt="npz")
    damage_file(_target(path, kind), kind)
    with pytest.raises(DamagedCacheError, match=f"data file {path} is damaged: .*; delete {path} and"):
        load_npz(path, PARAMS)


def test_an_unsealed_file_is_never_used(tmp_path):
    """A payload without a manifest (a writer killed between the two renames) is rebuilt."""
    path = dataset_path(tmp_path, "toy", PARAMS, ".npz")
    cached(tmp_path, "toy", PARAMS, _toy_arrays, fmt="npz")
    manifest_path(path).unlink()
    _rebuilt_once(lambda: cached(tmp_path, "toy", PARAMS, _toy_arrays, fmt="npz"), path)


# ------------------------------------------------------------------ killed writers

_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np
    from geounet.data.cache import cached
    from geounet.train import checkpoint

    mode, target, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

    def block(*args):  # the test's hook: the temporary is on disk; wait to be killed
        ready.touch()
        time.sleep(600)

    if mode == "data":
        def partial_savez(file, **arrays):
            file.write(b"PK partial")
            file.flush()
            block()
        np.savez = partial_savez
        build = lambda: {"u": np.zeros(3)}
        cached(target, "toy", {"generator": "toy", "version": 1, "num_samples": 6}, build, fmt="npz")
    else:
        checkpoint._verified_payload = block
        checkpoint.save_checkpoint({"step": 1, "weights": np.ones(1000)}, target / "checkpoint.pt")
""")


def _killed_writer(mode: str, target: Path, tmp_path: Path) -> subprocess.Popen:
    """A writer in a subprocess, stopped with its temporary on disk (the caller kills it)."""
    ready = tmp_path / f"ready-{mode}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, mode, str(target), str(ready)], env=env)
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError("the writer exited before writing its temporary")
        time.sleep(0.05)
    return process


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def test_a_killed_data_writer_leaves_an_orphan_that_the_next_build_removes(tmp_path):
    writer = _killed_writer("data", tmp_path / "cache", tmp_path)
    try:
        (orphan,) = _temporaries(tmp_path / "cache")
        assert f"~{writer.pid}~" in orphan.name  # the writer's pid is in the name
        assert remove_orphans(tmp_path / "cache") == [] and orphan.exists()  # a live writer's file is kept
    finally:
        _kill(writer)
    assert orphan.exists()
    data = cached(tmp_path / "cache", "toy", PARAMS, _toy_arrays, fmt="npz")
    assert not orphan.exists() and _temporaries(tmp_path / "cache") == []
    clean = cached(tmp_path / "clean", "toy", PARAMS, _toy_arrays, fmt="npz")
    for name in clean:
        np.testing.assert_array_equal(data[name], clean[name])


def test_a_killed_checkpoint_writer_leaves_an_orphan_that_the_next_run_removes(tmp_path):
    from geounet.train.run_folder import claim_run_folder

    run = tmp_path / "run"
    writer = _killed_writer("checkpoint", run, tmp_path)
    _kill(writer)
    (orphan,) = _temporaries(run)
    assert orphan.name.startswith(".checkpoint.pt~") and f"~{writer.pid}~" in orphan.name
    assert not (run / "checkpoint.pt").exists()
    claim_run_folder(run, {"task": {}, "model": {}, "train": {}}, resume=False, overwrite=False)
    assert list(run.iterdir()) == []


def test_orphans_of_other_hosts_and_foreign_files_are_left_alone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    mine = temporary_path(tmp_path / "a.npz")
    mine = mine.with_name(mine.name.replace(f"~{os.getpid()}~", f"~{pid}~"))
    other_host = tmp_path / f".a.npz~someotherhost~{pid}~00ff00ff.tmp.npz"
    foreign = tmp_path / ".a.npz.tmp"
    for path in (mine, other_host, foreign):
        path.write_bytes(b"x")
    assert remove_orphans(tmp_path) == [mine]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other_host.name, foreign.name])
