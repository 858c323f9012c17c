import contextlib
import json
from pathlib import Path

import pytest
import torch

from geounet.cli import main
from geounet.data.samples import Dataset
from geounet.diffusion.ema import EMA
from geounet.experiment.config import load_config
from geounet.functional.losses import relative_l2, weighted_mse
from geounet.hierarchy import SquareHaarHierarchy
from geounet.models import build_unet
from geounet.train.callbacks import Callback, EMAUpdate
from geounet.train.checkpoint import load_checkpoint
from geounet.train.config import ConfigError, TrainConfig
from geounet.train.loop import batch_indices, fit
from geounet.train.stages import TrainingStage

GRID = SquareHaarHierarchy(4, 1)  # 16 nodes of equal mass


class Pointwise(torch.nn.Module):
    """A per-node model under the geounet model signature ``model(x, hierarchy)``."""

    def __init__(self, *layers):
        super().__init__()
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x, hierarchy):
        return self.net(x)

REPO = Path(__file__).resolve().parents[2]
SQUARE = ["--config", str(REPO / "experiments/square_navier_stokes/config.toml")]
SPHERE = ["--config", str(REPO / "experiments/shallow_water_healpix/config.toml")]
TINY = [
    "task.resolution=16",
    "task.num_train=8",
    "task.num_test=4",
    "task.spinup_time=0.05",
    "task.horizon=0.05",
    "task.dt=0.01",
    "model.width=4",
    "model.num_levels=3",
    "train.batch_size=4",
    "train.warmup_steps=2",
]


def _train_cli(config_args: list[str], out, overrides: list[str]) -> int:
    """``geounet train <config> --quiet --out OUT --set ...`` through the CLI's main()."""
    args = ["train", *config_args, "--quiet", "--out", str(out)]
    for override in overrides:
        args += ["--set", override]
    return main(args)


def _tiny_config(tmp_path, *extra):
    return load_config(None, [*TINY, f"task.cache_dir='{tmp_path / 'data'}'", *extra])


def test_weighted_losses_by_hand():
    mass = torch.tensor([0.25, 0.75], dtype=torch.float64)
    target = torch.tensor([[[1.0], [2.0]]], dtype=torch.float64)
    prediction = torch.tensor([[[2.0], [2.0]]], dtype=torch.float64)
    assert weighted_mse(prediction, target, mass).item() == pytest.approx(0.25)
    assert relative_l2(prediction, target, mass).item() == pytest.approx((0.25 / (0.25 + 3.0)) ** 0.5)


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(10, 5, step, seed=3) for step in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    assert not torch.equal(batch_indices(10, 5, 0, seed=3), batch_indices(10, 5, 2, seed=3))


def _toy_data(n=16):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, 2, generator=generator)
    return Dataset(x, x.sum(-1, keepdim=True), GRID)


def test_resume_matches_uninterrupted_run(tmp_path, optimiser_stops_at):
    """Kill a run after its step-5 checkpoint; resuming reproduces the uninterrupted losses."""
    cfg = TrainConfig(steps=12, batch_size=4, checkpoint_every=5, eval_every=100, warmup_steps=2)
    data = _toy_data()

    def model():
        torch.manual_seed(0)
        return Pointwise(torch.nn.Linear(2, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))

    full = fit(model(), data, cfg, progress=False).history

    ckpt = tmp_path / "c.pt"
    with optimiser_stops_at(8), pytest.raises(optimiser_stops_at.StoppedRun):
        fit(model(), data, cfg, checkpoint_path=ckpt, progress=False)
    assert load_checkpoint(ckpt)["step"] == 5

    resumed = fit(model(), data, cfg, checkpoint_path=ckpt, resume=True, progress=False).history
    assert [r["step"] for r in resumed] == list(range(1, 13))
    # bit-identical: one process, the same kernels and threads, and the checkpoint holds the exact state
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full]


def test_a_constant_rate_run_is_the_prefix_of_a_longer_one():
    """With the learning rate constant after warm-up (``min_lr_ratio = 1``) the first 6 steps of a
    12-step run are the 6-step run, which makes one run's curve a budget-doubling check
    (:func:`geounet.analysis.convergence.doubling_gain`); under the default cosine decay they are not."""
    data = _toy_data()

    def history(steps, min_lr_ratio):
        torch.manual_seed(0)
        model = Pointwise(torch.nn.Linear(2, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
        cfg = TrainConfig(steps=steps, batch_size=4, eval_every=100, warmup_steps=2, min_lr_ratio=min_lr_ratio)
        return [(row["loss"], row["lr"]) for row in fit(model, data, cfg, progress=False).history]

    assert history(12, 1.0)[:6] == history(6, 1.0)
    assert history(12, 1e-3)[:6] != history(6, 1e-3)  # negative control: the cosine depends on the budget


class Interrupted(Exception):
    pass


class InterruptAfterCheckpoint(Callback):
    """Stops the run (an exception, in-process) once the checkpoint of ``step`` is written."""

    def __init__(self, step):
        self.step = step

    def on_checkpoint_written(self, path, step):
        if step == self.step:
            raise Interrupted


def _two_layers():
    torch.manual_seed(0)
    return Pointwise(torch.nn.Linear(2, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))


def _two_stages(model):
    """Stage 0 trains the first layer on the MSE, stage 1 the last layer on an L1 loss."""

    def l1(model, batch, generator):
        return (model(batch.inputs, batch.hierarchy) - batch.targets).abs().mean()

    return [TrainingStage(4, list(model.net[0].parameters()), lr=1e-2),
            TrainingStage(4, list(model.net[2].parameters()), loss=l1)]


def _uninterrupted_and_resumed(tmp_path, kill_at, build):
    """``build() -> (model, fit options)``: one fit straight through, and one stopped after the
    checkpoint of step ``kill_at`` then resumed on a freshly built model; (result, model, options) of each."""
    cfg = TrainConfig(steps=8, batch_size=4, checkpoint_every=2, eval_every=100, warmup_steps=1, weight_decay=0.1)
    data, path = _toy_data(), tmp_path / "c.pt"
    model, options = build()
    full = fit(model, data, cfg, progress=False, **options), model, options
    stopped, options = build()
    with pytest.raises(Interrupted):
        stop = [*options.get("callbacks", []), InterruptAfterCheckpoint(kill_at)]
        fit(stopped, data, cfg, checkpoint_path=path, progress=False, **{**options, "callbacks": stop})
    assert load_checkpoint(path)["step"] == kill_at
    model, options = build()
    return full, (fit(model, data, cfg, checkpoint_path=path, resume=True, progress=False, **options), model, options)


@pytest.mark.parametrize("kill_at", [2, 4, 6])  # mid stage 0, at the stage boundary, mid stage 1
def test_staged_fit_resumes_exactly(tmp_path, kill_at):
    def build():
        model = _two_layers()
        return model, {"stages": _two_stages(model)}

    (full, model, _), (resumed, again, _) = _uninterrupted_and_resumed(tmp_path, kill_at, build)
    assert resumed.history == full.history and [row["stage"] for row in full.history] == [0] * 4 + [1] * 4
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters(), strict=True))
    assert all(p.requires_grad for p in again.parameters())  # trainable again after fit


def test_ema_callback_is_restored_exactly_on_resume(tmp_path):
    def build():
        model = _two_layers()
        return model, {"callbacks": [EMAUpdate(EMA(model, decay=0.9))]}

    (full, _, full_options), (resumed, _, resumed_options) = _uninterrupted_and_resumed(tmp_path, 4, build)
    assert resumed.history == full.history
    ema, ema_resumed = (options["callbacks"][0].ema for options in (full_options, resumed_options))
    assert int(ema.updates) == int(ema_resumed.updates) == 8
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), ema_resumed.state_dict().values(),
                                                 strict=True))


def test_parameters_outside_a_stage_do_not_move():
    """Not by the gradient, nor by AdamW's weight decay; the stage's own parameters do."""
    model = _two_layers()
    snapshots = {}

    class Snapshot(Callback):
        def on_step_end(self, model, step):
            snapshots[step] = [p.detach().clone() for p in model.parameters()]

    initial = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=8, batch_size=4, warmup_steps=1, weight_decay=0.1)
    fit(model, _toy_data(), cfg, stages=_two_stages(model), callbacks=[Snapshot()], progress=False)
    first, last = [0, 1], [2, 3]  # parameter indices of net[0] and net[2]
    assert all(torch.equal(snapshots[4][i], initial[i]) for i in last)  # stage 0 leaves the last layer
    assert all(torch.equal(snapshots[8][i], snapshots[4][i]) for i in first)  # stage 1 leaves the first
    assert all(not torch.equal(snapshots[4][i], initial[i]) for i in first)
    assert all(not torch.equal(snapshots[8][i], snapshots[4][i]) for i in last)
    with pytest.raises(ValueError, match="add up to 8, but train.steps is 9"):
        fit(model, _toy_data(), TrainConfig(steps=9, batch_size=4), stages=_two_stages(model), progress=False)
    with pytest.raises(ValueError, match="not the trained model's"):
        fit(model, _toy_data(), cfg, stages=_two_stages(_two_layers()), progress=False)


def test_nan_data_and_divergence_are_reported():
    x = torch.randn(4, 16, 1)
    x[2, 3, 0] = float("nan")
    first = r"\(first: sample 2, node 3, channel 0\)"
    with pytest.raises(ValueError, match=r"inputs contain NaN or Inf in 1 sample\(s\) " + first):
        Dataset(x, torch.zeros(4, 16, 1), GRID)
    data = _toy_data()
    model = Pointwise(torch.nn.Linear(2, 1))
    with torch.no_grad():
        model.net[0].weight.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        fit(model, data, TrainConfig(steps=3, batch_size=4), progress=False)


@pytest.mark.parametrize("kind", ["pointwise", "unet"])
def test_a_divergence_names_a_checkpoint_only_when_one_was_written(tmp_path, kind):
    """A non-finite loss, or a UNet's own non-finite-output guard, ends training with the loop's message."""
    model = Pointwise(torch.nn.Linear(2, 1)) if kind == "pointwise" else build_unet(GRID, 2, 1, width=4)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(FloatingPointError, match=r"the training loss became nan at step 0; lower train.lr \(now "
                                                 r"0.002\) or check the data normalisation; no checkpoint was written "
                                                 r"before it$"):
        fit(model, _toy_data(), TrainConfig(steps=3, batch_size=4), checkpoint_path=path, progress=False)
    assert not path.exists()


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) train.stpes"):
        load_config(None, ["train.stpes=3"])
    with pytest.raises(ConfigError, match="train.steps must be int"):
        load_config(None, ["train.steps='many'"])
    with pytest.raises(ConfigError, match="model.variant must be one of"):
        load_config(None, ["model.variant='unet3'"])
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(None, ["optim.lr=1"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nsteps = 3\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"train.bogus.*valid keys"):
        load_config(bad)
    with pytest.raises(ValueError, match="unknown task 'weather'"):
        load_config(None, ["task.name='weather'"])


def test_grid_errors_name_the_problem(tmp_path):
    from geounet.tasks import task_structure

    cfg = _tiny_config(tmp_path, "task.resolution=48")
    with pytest.raises(ValueError, match="grid side must be a power of two, got 48"):
        task_structure(cfg.task, 3)
    cfg = _tiny_config(tmp_path, "model.num_levels=6")
    with pytest.raises(ValueError, match="allows 1 to 5 levels"):
        task_structure(cfg.task, cfg.model.num_levels)


def test_cli_datagen_reports_shapes(tmp_path, capsys):
    overrides = [o for pair in zip(["--set"] * len(TINY), TINY, strict=True) for o in pair]
    assert main(["datagen", *SQUARE, *overrides, "--set", f"task.cache_dir='{tmp_path}'"]) == 0
    assert "train 8 samples; the first: inputs (1, 256, 1)" in capsys.readouterr().out
    assert len(list(tmp_path.glob("navier_stokes-*.npz"))) == 2


def test_cli_info_and_errors(tmp_path, capsys):
    assert main(["info", *SQUARE, "--set", "model.width=4"]) == 0
    printed = capsys.readouterr().out
    assert "4,096" in printed and "multiresnet_matched" in printed
    assert main(["info", *SPHERE]) == 0
    assert "12,288" in capsys.readouterr().out  # HEALPix nside 32
    assert main(["info", *SQUARE, "--set", "model.num_levels=9"]) == 2
    assert "allows 1 to 7 levels" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2


@pytest.mark.parametrize("architecture", ["flat_resnet", "cheb_unet"])
def test_baselines_are_sized_to_the_configured_unet(tmp_path, architecture):
    from geounet.experiment.runner import build_configured_unet, build_model, parameter_counts
    from geounet.models.sizing import count_parameters
    from geounet.tasks import task_structure

    cfg = _tiny_config(tmp_path, f"model.architecture='{architecture}'", "model.width=8")
    structure = task_structure(cfg.task, cfg.model.num_levels)
    target = count_parameters(build_configured_unet(cfg, structure))
    model = build_model(cfg, structure)
    assert type(model).__name__ != "UNet"
    assert abs(parameter_counts(model)["total"] - target) < 0.2 * target
    assert model(torch.randn(2, 256, 1), structure.hierarchy).shape == (2, 256, 1)
    with pytest.raises(ConfigError, match="model.architecture must be one of"):
        _tiny_config(tmp_path, "model.architecture='transformer'")


def test_triangle_dirichlet_task_is_exact_only_when_constrained(tmp_path):
    """FEM Poisson on the triangle: the constraint-encoding U-Net is zero on the boundary for any
    weights (here: after 3 steps), the unconstrained one is not."""
    triangle = ["--config", str(REPO / "experiments/triangle_poisson/config.toml")]
    violations = {}
    for constrained in ("true", "false"):
        out = tmp_path / constrained
        overrides = [
            "task.mesh_level=3",
            "task.band_limits=[4, 12]",
            "model.num_levels=3",
            "task.num_train=8",
            "task.num_test=4",
            f"task.constrained={constrained}",
            f"task.cache_dir='{tmp_path / 'data'}'",
            "model.width=4",
            "train.steps=3",
            "train.batch_size=4",
            "train.warmup_steps=1",
        ]
        assert _train_cli(triangle, out, overrides) == 0
        violations[constrained] = json.loads((out / "metrics.json").read_text())["test"]["boundary_violation_max"]
    assert violations["true"] == 0.0  # exact: the constraint multiplies the boundary nodes by 0
    assert violations["false"] > 1e-6


def test_fit_returns_the_free_heap_every_trim_every_steps(monkeypatch):
    """The fix of the memory drift of mixed-mesh training (geounet.train.memory) runs in fit."""
    from geounet.train import loop
    from geounet.train.memory import release_free_heap

    assert release_free_heap() is True  # glibc, as on the CI machine
    calls = []
    monkeypatch.setattr(loop, "TRIM_EVERY", 3)
    monkeypatch.setattr(loop, "release_free_heap", lambda: calls.append(1))
    torch.manual_seed(0)
    model = Pointwise(torch.nn.Linear(2, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
    fit(model, _toy_data(), TrainConfig(steps=9, batch_size=4, eval_every=100, warmup_steps=1), progress=False)
    assert len(calls) == 3


def _page_faults_of_steps(steps: int = 3) -> int:
    """Minor page faults of ``steps`` "training steps" that each hold three 48 MB tensors at once
    (written, then freed), after one step that may fault in what the allocator keeps. 48 MB is above
    glibc's largest mmap threshold (32 MB), so by default every such tensor is a fresh mapping."""
    import resource

    def step() -> None:
        activations = [torch.empty(48 * 2**18).fill_(1.0) for _ in range(3)]  # float32: 2^18 values a MB
        del activations

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_retained_freed_memory_reuses_pages_and_is_undone_on_exit():
    """By default every step faults its 144 MB of fresh mappings in again; inside
    freed_memory_retained the steps reuse the heap's pages, and on exit the free heap is returned."""
    from geounet.train.memory import freed_memory_retained

    default = _page_faults_of_steps()
    if default < 3 * 3 * 1000:  # transparent huge pages fault 2 MB at a time: nothing to measure here
        pytest.skip(f"{default} page faults for 432 MB of fresh memory: huge pages, not measurable")
    with freed_memory_retained() as applied:
        assert applied is True  # glibc, as on the CI machine
        _page_faults_of_steps()  # the heap grows to the steps' peak once
        retained = _page_faults_of_steps()
        kept = _resident_anonymous_mb()
    assert retained < default / 20
    assert kept - _resident_anonymous_mb() > 100  # on exit the 144 MB of free heap go back to the system


def _resident_anonymous_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024  # kB
    raise AssertionError("no RssAnon in /proc/self/status")


def test_fit_retains_freed_memory_only_when_asked(monkeypatch):
    from geounet.train import loop

    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(1)
        yield True

    monkeypatch.setattr(loop, "freed_memory_retained", recording)
    for retain in (False, True):
        torch.manual_seed(0)
        model = Pointwise(torch.nn.Linear(2, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))
        cfg = TrainConfig(steps=2, batch_size=4, eval_every=100, warmup_steps=1, retain_freed_memory=retain)
        fit(model, _toy_data(), cfg, progress=False)
    assert entered == [1]
