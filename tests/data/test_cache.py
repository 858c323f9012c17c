import numpy as np
import pytest
import xarray as xr

from geounet.data.cache import (
    CacheMismatchError,
    atomic_write,
    cached,
    canonical_params,
    dataset_path,
    params_hash,
    save_netcdf,
)


def test_hash_is_canonical_and_sensitive():
    a = {"n": 3, "dt": 0.5, "shape": (2, 3), "seed": np.int64(1)}
    b = {"seed": 1, "shape": [2, 3], "dt": 0.5, "n": 3}
    assert canonical_params(a) == canonical_params(b)
    assert params_hash(a) == params_hash(b)
    assert params_hash(a) != params_hash({**b, "seed": 2})
    assert params_hash(a) != params_hash({**b, "dt": 0.5000001})


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}, [1, 2]])
def test_unhashable_params_raise(bad):
    with pytest.raises(ValueError):
        canonical_params(bad)


def test_dataset_path_rejects_bad_names(tmp_path):
    with pytest.raises(ValueError, match="name"):
        dataset_path(tmp_path, "a/b", {}, ".nc")
    with pytest.raises(ValueError, match="suffix"):
        dataset_path(tmp_path, "a", {}, "nc")
    path = dataset_path(tmp_path, "sw", {"a": 1}, ".nc")
    assert path.parent == tmp_path and path.name.startswith("sw-") and path.suffix == ".nc"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def failing(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def _counting_builder(make):
    calls = []

    def build():
        calls.append(1)
        return make()

    return build, calls


def test_netcdf_cache_reuse_and_mismatch(tmp_path):
    params = {"generator": "t", "n": 4}
    build, calls = _counting_builder(
        lambda: xr.Dataset({"u": (("x",), np.arange(4.0))}, coords={"x": np.arange(4)}, attrs={"units": "m"})
    )
    first = cached(tmp_path, "toy", params, build)
    second = cached(tmp_path, "toy", params, build)
    assert len(calls) == 1
    xr.testing.assert_identical(first, second)
    assert first.attrs["units"] == "m"
    # An intact (sealed) file under this key that records other parameters is an error, never overwritten.
    path = dataset_path(tmp_path, "toy", params, ".nc")
    save_netcdf(first, path, {"generator": "t", "n": 5})
    with pytest.raises(CacheMismatchError, match="delete the file"):
        cached(tmp_path, "toy", params, build)
    assert len(calls) == 1


def test_npz_cache_reuse(tmp_path):
    params = {"generator": "t", "k": [1, 2]}
    build, calls = _counting_builder(lambda: {"a": np.ones((2, 3)), "b": np.arange(3)})
    first = cached(tmp_path, "toy", params, build, fmt="npz")
    second = cached(tmp_path, "toy", params, build, fmt="npz")
    assert len(calls) == 1
    assert set(first) == {"a", "b"}
    np.testing.assert_array_equal(first["a"], second["a"])
    with pytest.raises(ValueError, match="fmt"):
        cached(tmp_path, "toy", params, build, fmt="zarr")
