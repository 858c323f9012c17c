"""Denoisers on the triangle under several EMA policies at once: one training run per
(model variant, init, seed) keeps every policy's EMA as a callback, then samples from each.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/diffusion_ema/run.py \
        --variants multiresnet residual multiresnet_matched --seeds 0 1 2 3 4

Every finished run is appended to ``--out`` (JSON lines: a killed sweep keeps its runs and
a rerun skips them): its training and held-out loss curves, CPU seconds, and per policy the
sample metrics of 128 DDIM samples against the test split. ``--zero-init`` trains with
``model.zero_init = true`` (the run is labelled ``<variant>+zero_init``). ``--policies`` picks
some of :data:`POLICIES` (default: all). ``--save DIR`` keeps each run's policy weights for
later diagnostics.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from geounet.analysis.sample_metrics import compare_samples
from geounet.experiment.diffusion import (
    build_denoiser,
    denoising_step_loss,
    draw_samples,
    held_out_loss,
    load_config_file,
    make_ema,
    plain_fields,
    read_config,
    training_config,
)
from geounet.tasks import prepare_task
from geounet.train.callbacks import EMAUpdate
from geounet.train.loop import fit

HERE = Path(__file__).parent
#: policy name -> the [diffusion] keys that select it
POLICIES = {
    "off": {"ema": "fixed", "ema_decay": 0.0},
    "fixed 0.99": {"ema": "fixed", "ema_decay": 0.99},
    "fixed 0.995": {"ema": "fixed", "ema_decay": 0.995},
    "warmup 0.995": {"ema": "warmup", "ema_decay": 0.995},
    "power 0.05": {"ema": "power", "ema_sigma_rel": 0.05},
    "power 0.10": {"ema": "power", "ema_sigma_rel": 0.10},
}
NUM_SAMPLES = 128


def train_one(raw: dict, task, policies: list[str], save: Path | None) -> dict:
    cfg, diffusion = read_config(raw)
    field = diffusion["field"]
    train, test = (plain_fields(data) for data in (task.train, task.test))
    channels = getattr(train.batch(torch.arange(1)), field).shape[-1]
    torch.manual_seed(diffusion["seed"])
    denoiser = build_denoiser(cfg, diffusion, task.structure, channels)
    emas = {name: make_ema(denoiser, {**diffusion, **POLICIES[name]}) for name in policies}
    train_cfg = training_config(diffusion)
    start = time.process_time()
    result = fit(denoiser, train, train_cfg, test=test, progress=False, loss=denoising_step_loss(field),
                 callbacks=[EMAUpdate(ema, key=f"ema {name}") for name, ema in emas.items()],
                 test_metrics=held_out_loss(field, train_cfg.batch_size, torch.device("cpu")))
    train_cpu = time.process_time() - start
    test_fields = getattr(task.test, field)  # [S, N, C]
    metrics_by_policy = {}
    for name, ema in emas.items():
        denoiser.load_state_dict(ema.module.state_dict())
        denoiser.eval()
        samples = draw_samples(denoiser, task.structure.hierarchy, {**diffusion, "channels": channels},
                               NUM_SAMPLES, seed=0)
        metrics = compare_samples(samples, test_fields, task.structure.hierarchy, seed=0)
        metrics_by_policy[name] = {k: v for k, v in metrics.items() if isinstance(v, float)}
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            torch.save(ema.module.state_dict(), save / f"{cfg.model.variant}-zero{cfg.model.zero_init:d}"
                       f"-seed{diffusion['seed']}-{name.replace(' ', '_')}.pt")
    return {
        "train_loss": [row["loss"] for row in result.history],
        "test_loss": [{"step": row["step"], "loss": row["test_loss"]} for row in result.history if "test_loss" in row],
        "train_cpu_s": train_cpu, "sample_cpu_s": time.process_time() - start - train_cpu,
        "parameters": sum(p.numel() for p in denoiser.parameters()), "policies": metrics_by_policy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=HERE.parent / "diffusion_triangle" / "config.toml")
    parser.add_argument("--variants", nargs="+", default=["multiresnet", "residual", "multiresnet_matched"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--zero-init", action="store_true")
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    parser.add_argument("--set", action="append", default=[], help="section.key=value overrides of the config")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--out", type=Path, default=HERE / "runs.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    done = set()
    if args.out.exists():
        done = {(r["variant"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines())}
    base = load_config_file(args.config, [*args.set, f"model.zero_init={str(args.zero_init).lower()}"])
    cfg, _ = read_config(base)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    for seed in args.seeds:
        for variant in args.variants:
            label = variant + ("+zero_init" if args.zero_init else "")
            if (label, seed) in done:
                continue
            raw = {**base, "model": {**base["model"], "variant": variant},
                   "diffusion": {**base["diffusion"], "seed": seed}}
            row = {"variant": label, "seed": seed, **train_one(raw, task, args.policies, args.save)}
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(label, seed, f"train {row['train_cpu_s']:.0f} s, sample {row['sample_cpu_s']:.0f} s",
                  {name: round(m["band_error"], 3) for name, m in row["policies"].items()}, flush=True)


if __name__ == "__main__":
    main()
