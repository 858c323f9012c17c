"""Damaged or non-finite cache files: a damaged file is regenerated (its manifest check fails)
or, read without its builder, named; a generator's NaN is named with the file, the variable,
the sample and the position, before any normalisation can spread it."""

import os

import numpy as np
import pytest
import xarray as xr

from geounet.data.cache import DamagedDataError, NonFiniteDataError, cached, dataset_path, load_npz
from geounet.geometry.cache_files import CacheRebuiltWarning, DamagedCacheError, seal

PARAMS = {"generator": "t", "num_samples": 4}


def _npz(tmp_path):
    build = lambda: {"f": np.zeros((4, 45)), "vertices": np.zeros((45, 3)), "ids": np.arange(3)}  # noqa: E731
    cached(tmp_path, "toy", PARAMS, build, fmt="npz")
    return dataset_path(tmp_path, "toy", PARAMS, ".npz"), build


def _rewrite_npz(path, **changes):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    seal(path)  # as if the generator had written these values: the checksum holds


def test_a_nan_names_file_variable_sample_and_position(tmp_path):
    path, build = _npz(tmp_path)
    f = np.zeros((4, 45))
    f[3, 17] = np.nan
    f[3, 20] = np.inf
    _rewrite_npz(path, f=f)
    with pytest.raises(NonFiniteDataError) as error:
        cached(tmp_path, "toy", PARAMS, build, fmt="npz")
    assert str(error.value) == (
        f"data file {path}: variable 'f' [4, 45] has 2 NaN/Inf value(s), the first (nan) at sample 3, "
        "position (17); delete the file to regenerate it"
    )


def test_arrays_without_a_sample_axis_give_the_index(tmp_path):
    path, build = _npz(tmp_path)
    vertices = np.zeros((45, 3))
    vertices[44, 2] = -np.inf
    _rewrite_npz(path, vertices=vertices)
    message = r"variable 'vertices' \[45, 3\] has 1 .*\(-inf\) at position \(44, 2\)"
    with pytest.raises(NonFiniteDataError, match=message):
        cached(tmp_path, "toy", PARAMS, build, fmt="npz")


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[: len(b) // 2] + os.urandom(256) + b[len(b) // 2 + 256 :],
        lambda b: b"",
    ],
    ids=["truncated", "garbage-in-the-middle", "empty"],
)
def test_a_damaged_npz_is_regenerated_or_named(tmp_path, damage):
    path, build = _npz(tmp_path)
    clean = path.read_bytes()
    path.write_bytes(damage(clean))
    with pytest.raises(DamagedCacheError, match=f"data file {path} is damaged: .*; delete {path}"):
        load_npz(path, PARAMS)
    with pytest.warns(CacheRebuiltWarning, match=f"data file {path} cannot be used"):
        cached(tmp_path, "toy", PARAMS, build, fmt="npz")
    assert path.read_bytes() == clean


def test_a_sealed_file_that_does_not_read_is_named(tmp_path):
    """A file whose checksum holds but which is no npz (a defect of the writer) is named, not rebuilt in a loop."""
    path, build = _npz(tmp_path)
    path.write_bytes(b"not an npz")
    seal(path)
    with pytest.raises(DamagedDataError, match=f"data file {path} is damaged and cannot be read .*; delete it"):
        cached(tmp_path, "toy", PARAMS, build, fmt="npz")


def _netcdf(tmp_path, values):
    build = lambda: xr.Dataset({"h": (("sample", "time", "pixel"), values)})  # noqa: E731
    return build, dataset_path(tmp_path, "sw", PARAMS, ".nc")


def test_netcdf_nan_names_every_dimension(tmp_path):
    values = np.ones((4, 3, 12))
    values[2, 1, 7] = np.nan
    build, path = _netcdf(tmp_path, values)
    with pytest.raises(NonFiniteDataError, match=rf"data file {path}: variable 'h' \[4, 3, 12\] has 1 NaN/Inf value"
                       r"\(s\), the first \(nan\) at sample 2, position \(time=1, pixel=7\)"):
        cached(tmp_path, "sw", PARAMS, build)


def test_netcdf_damage_fails_its_checksum(tmp_path):
    build, path = _netcdf(tmp_path, np.random.default_rng(0).normal(size=(4, 64, 512)))
    clean = cached(tmp_path, "sw", PARAMS, build)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    with pytest.warns(CacheRebuiltWarning, match=f"data file {path} cannot be used .*SHA-256"):
        again = cached(tmp_path, "sw", PARAMS, build)
    xr.testing.assert_identical(again, clean)
