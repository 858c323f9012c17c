"""Print one markdown table per task of the encoder-capacity study (the tables of
results.md), from the ``results.json`` files that ``run.sh`` has compare.py write
(``<task>/wide`` and ``<task>/small``).

Rows: the residual U-Net whose learned encoder doubles its channels per level, the
Multi-ResNet with that encoder's parameters in its decoder, and the residual U-Net with
the small constant-width encoder. Columns: parameters (encoder / total, encoder share),
test relative L2 error (mean ± std over seeds, and per seed), training seconds per run,
and for forecasting tasks the rollout scores at the last lead.

    python experiments/encoder_capacity/summarise.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: task folder -> heading
TASKS = {
    "navier_stokes_square": "Square: 2-D Navier-Stokes vorticity, the FNO setting (Li et al.), "
                            "not the paper's PDEArena smoke",
    "shallow_water_healpix": "Sphere: rotating shallow water on HEALPix nside 32 (1-h increments)",
}
#: (results subfolder, compare.py model) -> row label
ROWS = {
    ("wide", "unet:residual"): "Residual U-Net, wide encoder (channels x2 per level)",
    ("wide", "unet:multiresnet_matched"): "Multi-ResNet, the wide encoder's parameters in the decoder",
    ("small", "unet:residual"): "Residual U-Net, small encoder (width on every level)",
}


def task_table(folder: Path) -> list[str]:
    rows = {}
    for (size, model), label in ROWS.items():
        path = folder / size / "results.json"
        if path.is_file() and model in (found := json.loads(path.read_text())["rows"]):
            rows[label] = found[model]
    if not rows:
        return ["(no finished runs)"]
    last_lead = next((row["lead_hours"][-1] for row in rows.values() if "lead_hours" in row), None)
    head = "| model | encoder / total params | encoder share | test rel. L2 | per seed | train s/run |"
    rule = "|---|---:|---:|---:|---|---:|"
    if last_lead:
        head += f" RMSE h at {last_lead:g} h [m] | ACC ζ at {last_lead:g} h |"
        rule += "---:|---:|"
    lines = [head, rule]
    for label, row in rows.items():
        p = row["parameters"]
        line = (f"| {label} | {p['encoder']:,} / {p['total']:,} | {p['encoder'] / p['total']:.0%} | "
                f"{row['rel_l2_mean']:.4f} ± {row['rel_l2_std']:.4f} | "
                f"{', '.join(f'{e:.4f}' for e in row['rel_l2_per_seed'])} | {row['train_seconds_mean']:.0f} |")
        if last_lead:
            (rmse, rmse_sd), (acc, acc_sd) = row["model_rmse_h_final"], row["model_acc_vorticity_final"]
            line += f" {rmse:.1f} ± {rmse_sd:.1f} | {acc:.3f} ± {acc_sd:.3f} |"
        lines.append(line)
    return lines


def main() -> None:
    for name, heading in TASKS.items():
        print("\n".join([f"### {heading}", "", *task_table(HERE / name), ""]))


if __name__ == "__main__":
    main()
