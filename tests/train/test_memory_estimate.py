"""The memory estimate of a run (geounet.experiment.memory): its formula, and the refusal
(with ``--force`` to try anyway) of a run that does not fit."""

from __future__ import annotations

import pytest

from geounet import configs
from geounet.cli import main
from geounet.experiment.config import load_config
from geounet.experiment.memory import estimate_run_memory
from geounet.experiment.runner import build_model
from geounet.hierarchy import memory
from geounet.models.sizing import count_parameters
from geounet.tasks import task_structure

TINY = ["task.mesh_level=3", "task.band_limits=[4, 12]", "model.num_levels=3", "task.num_train=8", "task.num_test=4",
        "model.width=4", "train.steps=2", "train.batch_size=4", "train.warmup_steps=1"]


def test_the_estimate_follows_its_formula():
    cfg = load_config(configs.resolve("shallow_water_healpix"), ["task.nside=16", "model.num_levels=3",
                                                                 "model.width=8", "model.channel_mult=[1, 2]"])
    structure = task_structure(cfg.task, cfg.model.num_levels)
    estimate = estimate_run_memory(cfg, structure)
    assert estimate.parameters == count_parameters(build_model(cfg, structure))  # the meta-device count is exact
    nodes = [12 * 4**2, 12 * 8**2, 12 * 16**2]  # coarsest first
    channels = [16, 16, 8]  # width * channel_mult[I - l], the last multiplier repeating
    blocks = cfg.model.decoder_blocks + cfg.model.encoder_blocks + 1
    assert estimate.activations == 4 * 12 * cfg.train.batch_size * blocks * sum(
        n * c for n, c in zip(nodes, channels, strict=True))
    fields = structure.in_channels + structure.out_channels
    assert estimate.data == 4 * (cfg.task.num_train + cfg.task.num_test) * nodes[-1] * fields
    assert estimate.hierarchy == 64 * sum(nodes)
    assert estimate.total == 16 * estimate.parameters + estimate.activations + estimate.data + estimate.hierarchy


def test_a_run_that_does_not_fit_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1000)  # the run needs about 180 kB
    command = ["train", "--config", "triangle_poisson", *(a for o in TINY for a in ("--set", o)),
               "--set", f"task.cache_dir='{tmp_path / 'data'}'", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "this run (2,801 parameters with gradients and optimiser state" in err
    assert "GiB of memory, more than the 9.31e-07 GiB available on cpu" in err and "--force" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written
    assert main([*command, "--force"]) == 0


def test_check_fits_refuses_only_what_exceeds_the_limit(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1000)
    memory.check_fits(1000, "a thing", "make it smaller")
    with pytest.raises(memory.MemoryLimitError, match="a thing needs about 9.32e-07 GiB .* available on cpu; make it"):
        memory.check_fits(1001, "a thing", "make it smaller")
    monkeypatch.undo()
    assert 0 < memory.available_memory() < 2**50  # /proc/meminfo's MemAvailable
