"""The network side of the noise-dominance claim: how much of each detail level a trained
denoiser puts back, against the noise level t, next to the data side (the level's SNR).

For the test fields x_0 of the triangle task and x_t = a_t x_0 + s_t ε, the denoiser's
estimate x̂_0(x_t, t) is split into the Haar detail levels D_i; per level and t:

- ``kept``: E‖D_i x̂_0‖² / E‖D_i x_0‖², the share of the level's energy the network outputs;
- ``explained``: 1 − E‖D_i (x̂_0 − x_0)‖² / E‖D_i x_0‖², the share it gets right;
- ``wiener``: SNR_i / (1 + SNR_i) with SNR_i(t) = SNR(t) e_i (data side, e_i the per-degree
  detail energy): both shares of the posterior mean when the level's details are white,
  Gaussian and independent of the rest; a denoiser that respects noise dominance follows it;
- ``activation``: the RMS of the decoder's W_i features (``UNet.evaluate``'s per-level
  outputs), the official code's per-level activation diagnostic.

Weights: the EMA-off weights that ``experiments/diffusion_ema/run.py --save runs/diffusion_ema``
kept (Multi-ResNet and residual U-Net, every seed found).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/denoiser_levels/run.py

writes ``denoiser_levels.json`` and ``denoiser_levels.png`` here.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import torch

from geounet.diffusion.detail_snr import details
from geounet.diffusion.noise import noise_std, white_noise
from geounet.diffusion.staged import per_dof_energies
from geounet.experiment.diffusion import build_denoiser, load_config_file, read_config
from geounet.nn.unet import geometry_for
from geounet.tasks import prepare_task

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
WEIGHTS = Path("runs/diffusion_ema")
TIMES = [0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]


def level_energies(x: torch.Tensor, hierarchy) -> torch.Tensor:
    """E‖D_i x‖² per level, ``[levels]``."""
    return torch.stack([hierarchy.inner(d, d, level).mean() for level, d in enumerate(details(x, hierarchy))])


@torch.no_grad()
def diagnose(denoiser, hierarchy, x0: torch.Tensor, per_dof: torch.Tensor) -> dict[str, list[list[float]]]:
    schedule = denoiser.schedule
    unet = denoiser.model
    levels = geometry_for(unet, hierarchy, unet.kind, unet.num_levels)
    reference = level_energies(x0, hierarchy)
    generator = torch.Generator().manual_seed(1234)
    rows = {"kept": [], "explained": [], "wiener": [], "activation": []}
    for t_value in TIMES:
        t = torch.full((len(x0),), t_value)
        eps = white_noise(noise_std(hierarchy), len(x0), x0.shape[-1], generator)
        x_t = schedule.a(t)[:, None, None] * x0 + schedule.s(t)[:, None, None] * eps
        x0_hat, _ = denoiser.denoise(x_t, hierarchy, t)
        rows["kept"].append((level_energies(x0_hat, hierarchy) / reference).tolist())
        rows["explained"].append((1 - level_energies(x0_hat - x0, hierarchy) / reference).tolist())
        snr = float(schedule.snr(torch.tensor(t_value, dtype=torch.float64))) * per_dof
        rows["wiener"].append((snr / (1 + snr)).tolist())
        features: list[torch.Tensor] = []
        x, cond = denoiser.network_input(x_t, t)
        unet.evaluate(unet.lift(x), levels, levels.finest_level, cond, features)
        rows["activation"].append([float(w.pow(2).mean().sqrt()) for w in features])
    return rows


def plot(result: dict, path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    times, num_levels = result["times"], len(result["per_dof_energies"])
    colours = plt.cm.viridis([i / max(1, num_levels - 1) for i in range(num_levels)])
    for variant, style in (("multiresnet", "-"), ("residual", "--")):
        runs = [r for r in result["runs"] if r["variant"] == variant]
        if not runs:
            continue
        for level in range(num_levels):
            mean = [sum(r["explained"][k][level] for r in runs) / len(runs) for k in range(len(times))]
            axes[1].plot(times, mean, style, color=colours[level], label=f"{variant}, level {level}")
            act = [sum(r["activation"][k][level] for r in runs) / len(runs) for k in range(len(times))]
            axes[2].plot(times, act, style, color=colours[level], label=f"{variant}, W_{level}")
    wiener = result["runs"][0]["wiener"]
    for level in range(num_levels):
        snr = [w[level] / (1 - w[level]) if w[level] < 1 else float("inf") for w in wiener]
        axes[0].semilogy(times, snr, color=colours[level], label=f"level {level}")
        axes[1].plot(times, [w[level] for w in wiener], ":", color=colours[level], linewidth=2)
    axes[0].axhline(1.0, color="grey", linewidth=0.5)
    axes[0].set(title="data side: SNR_i(t) = SNR(t) e_i", xlabel="t")
    axes[1].set(title="network side: explained share of D_i x_0\n(dotted: SNR_i / (1 + SNR_i))", xlabel="t",
                ylim=(-0.2, 1.05))
    axes[2].set(title="decoder activations: RMS of W_i", xlabel="t")
    for axis in axes:
        axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    torch.set_num_threads(1)
    base = load_config_file(HERE.parent / "diffusion_triangle" / "config.toml")
    cfg, diffusion = read_config(base)
    task = prepare_task(cfg.task, cfg.model.num_levels)
    hierarchy = task.structure.hierarchy
    x0 = task.test.inputs  # [S, N, 1]
    per_dof = per_dof_energies(task.train.inputs, hierarchy)
    runs = []
    for variant in ("multiresnet", "residual"):
        for path in sorted(WEIGHTS.glob(f"{variant}-zero0-seed*-off.pt")):
            raw = {**base, "model": {**base["model"], "variant": variant}}
            denoiser = build_denoiser(*read_config(raw), task.structure, x0.shape[-1])
            denoiser.load_state_dict(torch.load(path, weights_only=True))
            runs.append({"variant": variant, "weights": path.name, **diagnose(denoiser.eval(), hierarchy, x0,
                                                                            per_dof.to(torch.float32))})
            print(path.name, flush=True)
    result = {"data": "triangle_poisson sources f, level-5 triangle, Haar levels 0-3, 128 test fields",
              "times": TIMES, "per_dof_energies": per_dof.tolist(), "runs": runs}
    (HERE / "denoiser_levels.json").write_text(json.dumps(result, indent=1))
    plot(result, HERE / "denoiser_levels.png")


if __name__ == "__main__":
    main()
