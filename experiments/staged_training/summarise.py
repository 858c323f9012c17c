"""Tables (tables.md) and the figure (staged_training.png) from regression.json, diffusion.json and
diffusion_official.json (the official code's time rule, ``run.py diffusion --variants staged_official
staged_official_frozen --out diffusion_official.json``)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from geounet.diffusion.schedules import VPCosine
from geounet.diffusion.staged import active_stage

NAMES = {
    "e2e": "end-to-end",
    "e2e_mr": "end-to-end, multi-res. loss",
    "staged": "staged, unfrozen",
    "staged_frozen": "staged, coarser levels frozen",
    "staged_official": "staged, official time rule, unfrozen",
    "staged_official_frozen": "staged, official time rule, coarser levels frozen",
}


def mean_std(values: list[float], digits: int = 4) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def by_variant(runs: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for run in runs:
        grouped.setdefault(run["variant"], []).append(run)
    return grouped


def steps_column(runs: list[dict]) -> str:
    plans = {tuple(run["steps"]) for run in runs}
    return " / ".join("-".join(map(str, plan)) for plan in sorted(plans))


def regression_table(result: dict) -> list[str]:
    levels = len(result["runs"][0]["test_rel_l2"])
    head = "| variant | steps per stage | train CPU s | " + " | ".join(
        f"rel. L2, level {j}" for j in range(levels)) + " |"
    lines = [head, "|---|---|---:|" + "---:|" * levels]
    for variant, runs in by_variant(result["runs"]).items():
        errors = [mean_std([run["test_rel_l2"][j] for run in runs]) for j in range(levels)]
        seconds = mean_std([sum(run["cpu_s"]) for run in runs], 1)
        lines.append(f"| {NAMES[variant]} | {steps_column(runs)} | {seconds} | " + " | ".join(errors) + " |")
    return lines


def diffusion_tables(result: dict) -> list[str]:
    """Held-out loss per variant, averaged over the evaluation times in each stage's sampling
    region (u_{j+1}, u_j] (the times where the staged sampler runs stage j)."""
    ranges = result["stage_ranges"]
    region = [active_stage(t, ranges, len(ranges) - 1) for t in result["eval_times"]]
    stages = sorted(set(region), reverse=True)
    lines = ["| variant | steps per stage | train CPU s | held-out loss, mean over t | "
             + " | ".join(f"t where stage {j} runs ({region.count(j)} t)" for j in stages)
             + " | band-energy log error | sampling CPU s |",
             "|---|---|---:|---:|" + "---:|" * len(stages) + "---:|---:|"]
    for variant, runs in by_variant(result["runs"]).items():
        cells = [NAMES[variant], steps_column(runs), mean_std([sum(run["cpu_s"]) for run in runs], 1),
                 mean_std([run["mean_held_out_loss"] for run in runs])]
        for stage in stages:
            cells.append(mean_std([statistics.mean(loss for loss, j in zip(run["held_out_loss"], region, strict=True)
                                                   if j == stage) for run in runs]))
        cells += [mean_std([run["band_energy_log_error"] for run in runs], 3),
                  mean_std([run["sample_cpu_s"] for run in runs], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    levels = len(result["per_dof_energies"])
    lines += ["", "Per-level detail energy of the samples over the data's (1 is perfect):", "",
              "| variant | " + " | ".join(f"level {j}" for j in range(levels)) + " |", "|---|" + "---:|" * levels]
    for variant, runs in by_variant(result["runs"]).items():
        lines.append(f"| {NAMES[variant]} | " + " | ".join(
            mean_std([run["band_energy_ratio"][j] for run in runs], 2) for j in range(levels)) + " |")
    return lines


def ranges_table(result: dict) -> list[str]:
    schedule = VPCosine()
    lines = ["| stage j | e_j (detail energy per dof / noise's) | u_j (T_j = [t_min, u_j]) | log SNR(u_j) |",
             "|---:|---:|---:|---:|"]
    for j, (e, (_, high)) in enumerate(zip(result["per_dof_energies"], result["stage_ranges"], strict=True)):
        log_snr = float(schedule.log_snr(torch.tensor(high, dtype=torch.float64)))
        lines.append(f"| {j} | {e:.4g} | {high:.4f} | {log_snr:.2f} |")
    return lines


def plot(regression: dict | None, diffusion: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if regression:
        for variant, runs in by_variant(regression["runs"]).items():
            levels = range(len(runs[0]["test_rel_l2"]))
            means = [statistics.mean(run["test_rel_l2"][j] for run in runs) for j in levels]
            stds = [statistics.stdev(run["test_rel_l2"][j] for run in runs) if len(runs) > 1 else 0 for j in levels]
            axes[0].errorbar(list(levels), means, yerr=stds, marker="o", capsize=3, label=NAMES[variant])
        axes[0].set(xlabel="output level j (0 = coarsest)", ylabel="test rel. L2 vs P_j target", yscale="log",
                    title="Navier-Stokes regression, equal CPU time")
        axes[0].legend(fontsize=8)
    if diffusion:
        log_snr = diffusion["eval_log_snr"]
        for variant, runs in by_variant(diffusion["runs"]).items():
            losses = torch.tensor([run["held_out_loss"] for run in runs])
            mean, std = losses.mean(0), losses.std(0) if len(runs) > 1 else torch.zeros(len(log_snr))
            axes[1].plot(log_snr, mean, marker="o", label=NAMES[variant])
            axes[1].fill_between(log_snr, mean - std, mean + std, alpha=0.2)
        schedule = VPCosine()
        for j, (_, high) in enumerate(diffusion["stage_ranges"][1:], start=1):
            boundary = float(schedule.log_snr(torch.tensor(high, dtype=torch.float64)))
            axes[1].axvline(boundary, color="grey", lw=0.8, ls="--")
            axes[1].text(boundary, 1.0, f"u_{j}", fontsize=7, transform=axes[1].get_xaxis_transform(),
                         ha="center", va="bottom")
        axes[1].set(xlabel="log SNR(t)", ylabel="held-out v-prediction loss",
                    title="Diffusion, HEALPix nside 32 vorticity, equal CPU time")
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def summarise(folder: Path) -> None:
    loaded = {part: json.loads((folder / f"{part}.json").read_text())
              for part in ("regression", "diffusion", "diffusion_official") if (folder / f"{part}.json").is_file()}
    lines = ["# Staged vs end-to-end training at equal CPU time (generated by summarise.py)", ""]
    if "regression" in loaded:
        r = loaded["regression"]
        lines += [f"## Regression: {r['task']}, Multi-ResNet width {r['width']}, budget = {r['e2e_steps']} "
                  "end-to-end steps", "", *regression_table(r), ""]
    if "diffusion" in loaded:
        d = loaded["diffusion"]
        lines += [f"## Diffusion: {d['task']}, Multi-ResNet width {d['width']}, budget = {d['e2e_steps']} "
                  f"end-to-end steps, threshold τ = {d['threshold']}", "", *ranges_table(d), "",
                  *diffusion_tables(d), ""]
    if "diffusion_official" in loaded:
        d = loaded["diffusion_official"]
        lines += ["## Diffusion, the official code's time rule: stage j < I trains on T_j = [u_{j+1}, t_max], "
                  "the finest stage on every time (the same budget, switch times and sampler)", "",
                  *diffusion_tables(d), ""]
    (folder / "tables.md").write_text("\n".join(lines))
    plot(loaded.get("regression"), loaded.get("diffusion"), folder / "staged_training.png")
    print("\n".join(lines))


if __name__ == "__main__":
    summarise(Path(__file__).parent)
