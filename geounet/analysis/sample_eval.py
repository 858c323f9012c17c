"""Evaluate diffusion runs: samples of every run against the task's held-out data.

All runs must learn the same fields (one ``[task]`` table, ``diffusion.field`` and
``model.num_levels``): their samples are compared, with
:func:`geounet.analysis.sample_metrics.compare_samples`, against the task's *test* split. The
metrics' floor comes from the data themselves: up to :data:`REFERENCE_DRAWS` disjoint
subsets of the *training* split, each as large as a run's sample set, compared with the
same test split ("data" rows). Runs that differ only in ``diffusion.seed`` form a group,
labelled by ``model.variant`` (and the first run's directory when two groups share a
variant); a group's row is the mean ± standard deviation over its runs (seeds).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from geounet.analysis.sample_metrics import compare_samples
from geounet.errors import GeounetError
from geounet.experiment.diffusion import draw_samples, load_run
from geounet.hierarchy.base import Hierarchy

#: the most disjoint training subsets compared with the test split for the metrics' floor ("data" rows)
REFERENCE_DRAWS = 3
#: the scalar metrics of :func:`compare_samples`, in table order
SCALARS = ("band_error", "cl_error", "cl_tail", "sw_bands", "mmd2_bands", "sw_features", "mmd2_features")
DATA_LABEL = "data (train vs test)"


@dataclass
class Row:
    """One compared set: a run's samples or a subset of the training data."""

    label: str
    name: str
    metrics: dict
    fields: Tensor = field(repr=False)  # [S, N, C] the compared set
    parameters: dict[str, int] | None = None


@dataclass
class SampleEvaluation:
    hierarchy: Hierarchy
    task: dict
    field: str
    test: Tensor  # [S, N, C]
    rows: list[Row]

    def labels(self) -> list[str]:
        """Group labels in order of first appearance, the data reference first."""
        return list(dict.fromkeys(row.label for row in self.rows))

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``{label: {metric: (mean, std)}}`` over each group's rows (std 0 for one row)."""
        table = {}
        for label in self.labels():
            rows = [row.metrics for row in self.rows if row.label == label]
            table[label] = {
                key: (statistics.fmean(r[key] for r in rows), statistics.stdev(r[key] for r in rows) if len(rows) > 1
                      else 0.0)
                for key in SCALARS if key in rows[0]
            }
        return table


def _fields_key(cfg, diffusion: dict) -> tuple:
    return repr(cfg.to_dict()["task"]), diffusion["field"], cfg.model.num_levels


def group_labels(run_dirs: list[Path], configs: list[tuple]) -> list[str]:
    """One label per run: runs whose configs differ only in ``diffusion.seed`` share it."""
    first: dict[str, Path] = {}  # group (the config without the seed) -> its first run
    variants: dict[str, str] = {}  # group -> model.variant
    groups = []
    for run_dir, (cfg, diffusion) in zip(run_dirs, configs, strict=True):
        group = repr((cfg.to_dict(), {k: v for k, v in diffusion.items() if k != "seed"}))
        first.setdefault(group, run_dir)
        variants[group] = cfg.model.variant
        groups.append(group)
    shared = Counter(variants.values())
    return [variants[g] if shared[variants[g]] == 1 else f"{variants[g]} ({first[g].name})" for g in groups]


def evaluate_runs(run_dirs: list[Path], num: int, seed: int = 0, progress: bool = True) -> SampleEvaluation:
    """Draw ``num`` samples (seed ``seed``) from every run and compare them and the data
    references with the test split (module docstring)."""
    from geounet.tasks import prepare_task

    if not run_dirs:
        raise GeounetError("give at least one run directory")
    if len(set(run_dirs)) != len(run_dirs):
        raise GeounetError(f"run directories repeat: {[str(d) for d in run_dirs]}")
    loaded = [load_run(run_dir) for run_dir in run_dirs]
    _, hierarchy, cfg, diffusion = loaded[0]
    for run_dir, (_, _, other_cfg, other) in zip(run_dirs[1:], loaded[1:], strict=True):
        if _fields_key(other_cfg, other) != _fields_key(cfg, diffusion):
            raise GeounetError(f"{run_dir} learns other fields than {run_dirs[0]} (its [task], diffusion.field or "
                             "model.num_levels differ); evaluate runs of one data set together")
    task = prepare_task(cfg.task, cfg.model.num_levels)
    train, test = (getattr(split, diffusion["field"]) for split in (task.train, task.test))  # [S, N, C]
    rows = []
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    size = min(num, len(train))
    for k in range(min(REFERENCE_DRAWS, len(train) // size)):
        subset = train[order[k * size:(k + 1) * size]]
        rows.append(Row(DATA_LABEL, f"train subset {k}", compare_samples(subset, test, hierarchy, seed), subset))
    labels = group_labels(run_dirs, [(run_cfg, run_diffusion) for _, _, run_cfg, run_diffusion in loaded])
    for run_dir, label, (denoiser, run_hierarchy, _, run_diffusion) in zip(run_dirs, labels, loaded, strict=True):
        samples = draw_samples(denoiser, run_hierarchy, run_diffusion, num, seed)
        counts = {**denoiser.model.parameter_counts(), "denoiser": sum(p.numel() for p in denoiser.parameters())}
        metrics = compare_samples(samples, test, hierarchy, seed)
        rows.append(Row(label, str(run_dir), metrics, samples, counts))
        if progress:
            print(f"{run_dir}: band error {rows[-1].metrics['band_error']:.3f}")
    return SampleEvaluation(hierarchy, cfg.to_dict()["task"], diffusion["field"], test, rows)


def markdown_table(evaluation: SampleEvaluation) -> str:
    """The summary as a markdown table: one row per group, mean ± std of every metric."""
    summary = evaluation.summary()
    metrics = [key for key in SCALARS if key in next(iter(summary.values()))]
    header = ["model", "runs", "parameters (encoder)", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, values in summary.items():
        rows = [row for row in evaluation.rows if row.label == label]
        counts = rows[0].parameters
        params = "-" if counts is None else f"{counts['denoiser']:,} ({counts['encoder']:,})"
        cells = [f"{mean:.3g} ± {std:.2g}" for mean, std in (values[key] for key in metrics)]
        lines.append("| " + " | ".join([label, str(len(rows)), params, *cells]) + " |")
    return "\n".join(lines) + "\n"
