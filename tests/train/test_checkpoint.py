"""Checkpoints: hashed, atomic, verified; every kind of damage is a one-line CheckpointError."""

import hashlib
import io
import os
from pathlib import Path

import pytest
import torch

from geounet.train.checkpoint import (
    CheckpointError,
    config_differences,
    load_checkpoint,
    load_model_state,
    run_config,
    save_checkpoint,
)

STATE = {"step": 3, "w": torch.arange(4.0), "history": [{"step": 1, "loss": 0.5}], "config": {"model": {"width": 4}}}


def _saved(tmp_path) -> Path:
    return save_checkpoint(STATE, tmp_path / "checkpoint.pt")


def test_round_trip_and_header(tmp_path):
    path = _saved(tmp_path)
    header, payload = path.read_bytes().split(b"\n", 1)
    assert header == b"geounet-checkpoint 1 sha256=%s bytes=%d" % (
        hashlib.sha256(payload).hexdigest().encode(), len(payload))
    state = load_checkpoint(path)
    assert state["step"] == 3 and state["history"] == STATE["history"] and state["config"] == STATE["config"]
    torch.testing.assert_close(state["w"], STATE["w"], rtol=0, atol=0)
    assert run_config(state, path) == {"model": {"width": 4}}
    with pytest.raises(CheckpointError, match="has no experiment config"):
        run_config({"step": 1}, path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2] + os.urandom(4096) + b[len(b) // 2 + 4096 :], "does not match the SHA-256"),
        (lambda b: b[: len(b) - 100], "truncated or padded: .* payload bytes, the header says"),
        (lambda b: b + b"\0", "truncated or padded"),
        (lambda b: b"", r"is empty \(0 bytes\)"),
        (lambda b: b"PK" + b[2:], "is not a geounet checkpoint"),
    ],
    ids=["garbage-in-the-middle", "truncated", "padded", "empty", "header"],
)
def test_damage_is_detected(tmp_path, damage, message):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1, "w": torch.zeros(4096)}, path)  # 16 kB of payload
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_plain_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save(STATE, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="no 'geounet-checkpoint 1' header"):
        load_checkpoint(tmp_path / "plain.pt")


class Arbitrary:
    """A class a checkpoint must not be able to instantiate on load."""


def test_load_refuses_pickled_objects_even_with_a_valid_hash(tmp_path):
    buffer = io.BytesIO()
    torch.save({"x": Arbitrary()}, buffer)
    payload = buffer.getvalue()
    path = tmp_path / "evil.pt"
    path.write_bytes(b"geounet-checkpoint 1 sha256=%s bytes=%d\n" % (
        hashlib.sha256(payload).hexdigest().encode(), len(payload)) + payload)
    with pytest.raises(CheckpointError, match="objects other than tensors.*Arbitrary"):
        load_checkpoint(path)


def test_save_is_atomic_and_leaves_the_old_checkpoint_on_failure(tmp_path):
    path = _saved(tmp_path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"step": 2, "bad": Boom()}, path)
    assert load_checkpoint(path)["step"] == 3
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_save_verifies_what_reached_the_disk(tmp_path, monkeypatch):
    """A write that lands damaged is caught before it replaces the good checkpoint."""
    path = _saved(tmp_path)
    write_bytes = Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: write_bytes(self, data[:-1] + b"\x01"))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        save_checkpoint({"step": 4, "w": torch.ones(3)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 3
    assert list(tmp_path.iterdir()) == [path]


def test_save_fsyncs_the_file_and_its_folder(tmp_path, monkeypatch):
    synced = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), fsync(fd)))
    path = _saved(tmp_path)
    assert len(synced) == 2
    assert Path(synced[0]).parent == tmp_path and Path(synced[0]).name.startswith(".checkpoint.")  # before rename
    assert Path(synced[1]) == tmp_path  # the rename
    assert load_checkpoint(path)["step"] == 3


def test_a_checkpoint_that_does_not_fit_the_model_names_how():
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Linear(4, 1))
    state = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 1), torch.nn.Linear(1, 1)).state_dict()
    with pytest.raises(CheckpointError) as error:
        load_model_state(model, state, "run/checkpoint.pt")
    message = str(error.value)
    assert "\n" not in message
    assert "2 unexpected (e.g. 2.weight)" in message
    assert "3 of another shape (e.g. 0.weight: (8, 2) in the file, (4, 2) in the model)" in message
    del state["0.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing \(e.g. 0.bias\)"):
        load_model_state(model, state, "run/checkpoint.pt")
    fitting = {k: v + 1 for k, v in model.state_dict().items()}
    load_model_state(model, fitting, "run/checkpoint.pt")
    torch.testing.assert_close(model.state_dict(), fitting, rtol=0, atol=0)


def test_config_differences_name_section_key_and_both_values():
    saved = {"task": {"name": "a", "n": 1}, "model": {"width": 4}, "train": {"lr": 1.0}}
    current = {"task": {"name": "b", "n": 1, "extra": True}, "model": {"width": 8}, "train": {"lr": 2.0}}
    assert config_differences(saved, current, ("task", "model")) == [
        "task.extra: '(unset)' -> True",
        "task.name: 'a' -> 'b'",
        "model.width: 4 -> 8",
    ]
    assert config_differences(saved, saved, ("task", "model", "train")) == []

