"""Tables and loss curves of ``runs.json`` (written by run.py): band-energy error per model and
EMA policy (mean ± std over seeds), paired differences over shared seeds
(:mod:`geounet.analysis.paired`), and default- vs zero-initialised Multi-ResNet losses (the
held-out loss at the end, and the mean training loss over the early steps ``EARLY_WINDOWS``).

    PYTHONPATH=$PWD python experiments/diffusion_ema/summarise.py

writes ``tables.md``, ``summary.json`` and ``loss_curves.png`` here.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

from geounet.analysis.paired import format_difference, paired_by_seed

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

HERE = Path(__file__).parent
METRIC = "band_error"
EARLY_WINDOWS = ((10, 50), (50, 100))  # training steps [start, stop) where zero init could help


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)} seeds)"


def scores(runs: list[dict], variant: str, policy: str) -> dict[int, float]:
    """``{seed: band error}`` of ``variant``'s runs that sampled under ``policy``."""
    return {r["seed"]: r["policies"][policy][METRIC]
            for r in runs if r["variant"] == variant and policy in r["policies"]}


def final_test_loss(run: dict) -> float:
    return run["test_loss"][-1]["loss"]


def paired_row(a: dict[int, float], b: dict[int, float]) -> str | dict:
    if len(set(a) & set(b)) < 2:
        return "fewer than 2 shared seeds"
    return paired_by_seed(a, b)


def describe(result: str | dict) -> str:
    return result if isinstance(result, str) else f"{format_difference(result)} (seeds {result['seeds']})"


def main() -> None:
    runs = [json.loads(line) for line in (HERE / "runs.json").read_text().splitlines()]
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    policies = list(dict.fromkeys(p for r in runs for p in r["policies"]))
    summary = {"band_error": {}, "paired": {}, "test_loss": {}, "early_train_loss": {}}
    lines = ["| model | " + " | ".join(policies) + " |", "|---|" + "---:|" * len(policies)]
    for variant in variants:
        cells = []
        for policy in policies:
            by_seed = scores(runs, variant, policy)
            summary["band_error"][f"{variant} / {policy}"] = by_seed
            cells.append(spread(list(by_seed.values())) if by_seed else "–")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "Paired differences of the band-energy error (95 % t-interval over shared seeds):", ""]
    comparisons = [(f"{v}: {p} − off", (v, p), (v, "off")) for v in variants for p in policies if p != "off"]
    comparisons += [(f"{p}: {a} − {b}", (a, p), (b, p)) for p in policies for a, b in
                    [("multiresnet", "residual"), ("multiresnet_matched", "residual"),
                     ("multiresnet", "multiresnet_matched"), ("multiresnet+zero_init", "multiresnet")]]
    for label, (va, pa), (vb, pb) in comparisons:
        a, b = scores(runs, va, pa), scores(runs, vb, pb)
        if not a or not b:
            continue
        result = paired_row(a, b)
        summary["paired"][label] = result
        lines.append(f"- {label}: " + describe(result))
    lines += ["", "Held-out denoising loss at the last step (the raw weights):", ""]
    for variant in variants:
        by_seed = {r["seed"]: final_test_loss(r) for r in runs if r["variant"] == variant}
        summary["test_loss"][variant] = by_seed
        lines.append(f"- {variant}: {spread(list(by_seed.values()))}")
    zero, default = summary["test_loss"].get("multiresnet+zero_init", {}), summary["test_loss"].get("multiresnet", {})
    if zero and default:
        result = paired_row(zero, default)
        summary["paired"]["test loss: multiresnet+zero_init − multiresnet"] = result
        lines.append("- zero-init − default: " + describe(result))
    lines += ["", "Mean training loss over early steps (zero init against default init):", ""]
    for start, stop in EARLY_WINDOWS:
        window = {variant: {r["seed"]: statistics.fmean(r["train_loss"][start:stop]) for r in runs
                            if r["variant"] == variant}
                  for variant in ("multiresnet+zero_init", "multiresnet")}
        summary["early_train_loss"][f"steps {start}-{stop}"] = window
        result = paired_row(window["multiresnet+zero_init"], window["multiresnet"])
        summary["paired"][f"train loss, steps {start}-{stop}: multiresnet+zero_init − multiresnet"] = result
        lines.append(f"- steps {start}-{stop}: zero init {spread(list(window['multiresnet+zero_init'].values()))}, "
                     f"default {spread(list(window['multiresnet'].values()))}; zero-init − default: "
                     + describe(result))
    (HERE / "tables.md").write_text("\n".join(lines) + "\n")
    (HERE / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_losses(runs, HERE / "loss_curves.png")
    print("\n".join(lines))


def plot_losses(runs: list[dict], path: Path, window: int = 25) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    for variant, colour in (("multiresnet", "C0"), ("multiresnet+zero_init", "C3")):
        for k, run in enumerate(r for r in runs if r["variant"] == variant):
            loss = run["train_loss"]
            smooth = [statistics.fmean(loss[max(0, i - window + 1):i + 1]) for i in range(len(loss))]
            axis.plot(range(1, len(loss) + 1), smooth, color=colour, alpha=0.7, linewidth=1,
                      label=f"{variant} (default init)" if variant == "multiresnet" and k == 0 else
                      (variant if k == 0 else None))
            steps = [row["step"] for row in run["test_loss"]]
            axis.plot(steps, [row["loss"] for row in run["test_loss"]], "o", color=colour, markersize=3)
    axis.set(xlabel="step", ylabel=f"training loss ({window}-step mean); dots: held-out", yscale="log",
             title="Multi-ResNet denoiser on the triangle: zero-init vs default init")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
