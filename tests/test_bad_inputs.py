"""The bad-input corpus (tests/bad_inputs/cases.toml): each case prints one line naming the
problem and exits with status 2, as the README promises."""

import json
import os
import shutil
import socket
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from geounet.cli import main
from geounet.errors import GeounetError
from geounet.geometry.cache_files import CacheRebuiltWarning, seal
from geounet.train.checkpoint import load_checkpoint, save_checkpoint
from geounet.train.run_lock import LOCK_NAME

HERE = Path(__file__).parent / "bad_inputs"
ALL_CASES = tomllib.loads((HERE / "cases.toml").read_text())["case"]
CASES = [case for case in ALL_CASES if "command" in case]
CALL_CASES = [case for case in ALL_CASES if "call" in case]
TINY = ["task.mesh_level=3", "task.band_limits=[4, 12]", "model.num_levels=3", "task.num_train=8", "task.num_test=4",
        "model.width=4", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1"]


def _tiny(data: Path) -> list[str]:
    overrides = [*TINY, f"task.cache_dir='{data}'"]
    return ["--config", "triangle_poisson", *(arg for o in overrides for arg in ("--set", o))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny trained triangle-Poisson run (``run/``) with its data cache (``data/``) and files a
    command must not replace (``existing.nc``, ``existing.vtu``)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    assert main(["train", *_tiny(root / "data"), "--quiet", "--out", str(root / "run")]) == 0
    for name in ("existing.nc", "existing.vtu"):
        (root / name).write_text("a file of the user's")
    return root


def _damage_bytes(path: Path, kind: str) -> None:
    data = path.read_bytes()
    middle = len(data) // 2
    header = data.find(b"\x93NUMPY")  # the .npy header of an .npz's first member
    path.write_bytes({
        "garbage": lambda: data[:middle] + np.random.default_rng(0).bytes(4096) + data[middle + 4096 :],
        "truncated": lambda: data[:middle],
        "empty": lambda: b"",
        # the file-name length of the first zip member: zipfile then quotes 29 kB of what it read
        "zipname": lambda: data[:26] + (29000).to_bytes(2, "little") + data[28:],
        # the header length of the first .npy member: numpy's header parser fails on the bytes it read
        "npyheader": lambda: data[: header + 8] + (200).to_bytes(2, "little") + data[header + 10 :],
    }[kind]())


def _train_data_file(data: Path) -> Path:
    """The cache file of the training split (8 samples)."""
    for path in data.glob("triangle_poisson-*.npz"):
        with np.load(path) as arrays:
            if json.loads(str(arrays["cache_params"]))["num_samples"] == 8:
                return path
    raise AssertionError(f"no training data in {data}")


def _damage(root: Path, damage: str) -> None:
    target, kind = damage.split(":")
    if target == "lock":  # held by this (live) process
        pid = os.getpid()
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        record = {"pid": pid, "start": start, "host": socket.gethostname(), "since": "the test's start"}
        (root / "run" / LOCK_NAME).write_text(json.dumps(record))
    elif target == "data":
        path = _train_data_file(root / "data")
        if kind == "nan":
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
            arrays["f_vertex"][3, 17] = np.nan
            with open(path, "wb") as fh:
                np.savez(fh, **arrays)
            seal(path)  # as if the generator had written the NaN: the checksum holds
        else:
            _damage_bytes(path, kind)
    elif kind == "misfit":
        path = root / "run" / "checkpoint.pt"
        state = load_checkpoint(path)
        state["config"]["model"]["width"] = 8
        save_checkpoint(state, path)
    else:
        _damage_bytes(root / "run" / "checkpoint.pt", kind)


def _expand(argument: str, root: Path) -> list[str]:
    if argument == "{tiny}":
        return _tiny(root / "data")
    return [argument.format(run=root / "run", data=root / "data", root=root, here=HERE)]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input_prints_one_line_and_exits_2(case, trained, tmp_path, capsys, monkeypatch):
    if case.get("needs") == "no-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    monkeypatch.chdir(tmp_path)  # nothing may depend on (or land in) the working directory
    root = tmp_path / "copy"
    shutil.copytree(trained, root)
    if "damage" in case:
        _damage(root, case["damage"])
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    capsys.readouterr()
    assert main([arg for a in case["command"] for arg in _expand(a, root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("geounet "), err
    assert case["message"] in err
    assert len(err) <= case.get("max_chars", len(err))
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before  # a refused command writes nothing
    assert os.listdir(tmp_path) == ["copy"]


@pytest.mark.parametrize("case", CALL_CASES, ids=[case["id"] for case in CALL_CASES])
def test_bad_library_call_raises_one_line(case, tmp_path):
    from bad_inputs.calls import CALLS

    with pytest.raises(GeounetError) as raised:
        CALLS[case["call"]](tmp_path)
    assert "\n" not in str(raised.value) and case["message"] in str(raised.value), str(raised.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "zipname", "npyheader"])
def test_damaged_data_is_regenerated_with_one_warning(kind, trained, tmp_path, monkeypatch):
    """A damaged data cache is not an input error: ``datagen`` names it in a warning and
    writes the same data again."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "copy"
    shutil.copytree(trained, root)
    path = _train_data_file(root / "data")
    clean = path.read_bytes()
    _damage_bytes(path, kind)
    with pytest.warns(CacheRebuiltWarning, match=f"data file {path} cannot be used") as caught:
        assert main(["datagen", *_tiny(root / "data")]) == 0
    assert len(caught) == 1 and path.read_bytes() == clean
