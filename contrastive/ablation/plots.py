"""PNG plots of a sweep.

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no
display or backend is needed, and a notebook's own backend is left alone.

- `plot_accuracy`: linear-probe and kNN accuracy per method, mean with
  standard-deviation error bars, one panel per dataset, with the baseline
  rows (random init, input representations, supervised) drawn as horizontal
  lines at their linear-probe accuracy; datasets with a nuisance variable
  get a second row with the nuisance probe and its chance level (lower =
  fairer).
- `plot_curves`: training loss and the mean positive / negative cosine per
  logged step, averaged over seeds, one row per dataset.
- `plot_similarities`: end-of-run histograms of positive and negative cosines
  (summed over seeds), one panel per (dataset, method).
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

from matplotlib.figure import Figure
import numpy as np

from contrastive.ablation import runner

# Rows drawn as horizontal lines (not bars) on the accuracy panels: the
# baselines that give the trained methods' bars their meaning.
FLOOR_METHOD = "random_init"
CEILING_METHOD = "supervised"
INPUT_PREFIX = "input_"


def is_baseline(method: str) -> bool:
  """Random init, the input representations and the supervised ceiling."""
  return method in (FLOOR_METHOD, CEILING_METHOD) or method.startswith(
      INPUT_PREFIX)
CURVE_METRICS = (("loss", "loss (scale differs by method)"),
                 ("pos_sim", "mean positive cosine"),
                 ("neg_sim", "mean negative cosine"))


def _datasets(rows: Sequence[dict[str, Any]]) -> list[str]:
  return list(dict.fromkeys(r["dataset"] for r in rows))


def _bars(ax, rows, keys_labels, title):
  x = np.arange(len(rows))
  width = 0.8 / len(keys_labels)
  for i, (key, label) in enumerate(keys_labels):
    mean = np.array([r[f"{key}_mean"] for r in rows], float) * 100
    # A single seed has no std (NaN): matplotlib then draws no error bar.
    std = np.array([r[f"{key}_std"] for r in rows], float) * 100
    ax.bar(x + (i - (len(keys_labels) - 1) / 2) * width, mean, width,
           yerr=std, capsize=2, label=label)
  ax.set_xticks(x, [r["method"] for r in rows], rotation=60, ha="right",
                fontsize=8)
  ax.set_ylabel("accuracy %")
  ax.set_title(title)


_LINE_STYLES = ("-.", "--", ":", (0, (1, 3)), (0, (5, 2, 1, 2)))


def _baseline_lines(ax, rows) -> None:
  """A horizontal line at each baseline row's linear-probe accuracy."""
  for i, row in enumerate(rows):
    value = row["linear_probe_accuracy_mean"]
    if np.isnan(value):
      continue
    color = {FLOOR_METHOD: "k", CEILING_METHOD: "tab:green"}.get(
        row["method"], "tab:purple")
    ax.axhline(100 * value, color=color, lw=1.2,
               ls=_LINE_STYLES[i % len(_LINE_STYLES)],
               label=f"{row['method']} (probe {100 * value:.1f})")


def plot_accuracy(rows: Sequence[dict[str, Any]], path: str) -> str:
  """Bar chart of accuracies (mean ± std over seeds) per dataset.

  Args:
    rows: `aggregate.summarize` rows.
    path: the PNG to write.

  Returns:
    `path`.
  """
  datasets = _datasets(rows)
  has_nuisance = [any(r["nuisance"] for r in rows if r["dataset"] == d)
                  for d in datasets]
  nrows = 2 if any(has_nuisance) else 1
  fig = Figure(figsize=(4.5 * len(datasets), 4 * nrows))
  axes = fig.subplots(nrows, len(datasets), squeeze=False)
  for col, dataset in enumerate(datasets):
    sub = [r for r in rows if r["dataset"] == dataset]
    bars = [r for r in sub if not is_baseline(r["method"])] or sub
    _bars(axes[0, col], bars, (("linear_probe_accuracy", "linear probe"),
                               ("knn_accuracy", "kNN")), dataset)
    _baseline_lines(axes[0, col], [r for r in sub if is_baseline(r["method"])
                                   and r not in bars])
    axes[0, col].legend(fontsize=7)
    if nrows == 2:
      ax = axes[1, col]
      if not has_nuisance[col]:
        ax.axis("off")
        continue
      name = next(r["nuisance"] for r in sub if r["nuisance"])
      _bars(ax, sub, (("nuisance_probe_accuracy", f"{name} probe"),), "")
      chance = np.nanmean([r["nuisance_chance_accuracy_mean"] for r in sub])
      ax.axhline(chance * 100, color="k", ls="--", lw=1, label="chance")
      ax.set_title(f"{dataset}: {name} probe (lower = fairer)")
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
  """The run's metrics.jsonl lines that are training logs (have 'loss')."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [json.loads(line) for line in f if line.strip()]
  return [line for line in lines if "loss" in line]


def _mean_curve(run_dirs: Sequence[str], key: str):
  """Steps and the seed-mean of `key` at the steps every seed logged."""
  curves = []
  for run_dir in run_dirs:
    points = {int(m["step"]): m[key] for m in read_metrics(run_dir)
              if isinstance(m.get(key), (int, float))}
    if points:
      curves.append(points)
  if not curves:
    return None
  steps = sorted(set.intersection(*(set(c) for c in curves)))
  if not steps:
    return None
  return steps, [float(np.mean([c[s] for c in curves])) for s in steps]


def plot_curves(records: Sequence[dict[str, Any]], workdir: str,
                path: str) -> str:
  """Training curves (seed means) of the finished runs; returns `path`."""
  datasets = list(dict.fromkeys(r["dataset"] for r in records))
  fig = Figure(figsize=(5 * len(CURVE_METRICS), 3.5 * len(datasets)))
  axes = fig.subplots(len(datasets), len(CURVE_METRICS), squeeze=False)
  for i, dataset in enumerate(datasets):
    methods = list(dict.fromkeys(r["method"] for r in records
                                 if r["dataset"] == dataset))
    for j, (key, label) in enumerate(CURVE_METRICS):
      ax = axes[i, j]
      for method in methods:
        dirs = [os.path.join(workdir, "runs", r["run_id"]) for r in records
                if r["dataset"] == dataset and r["method"] == method
                and r["status"] == "done"]
        curve = _mean_curve(dirs, key)
        if curve is not None:
          ax.plot(*curve, label=method, lw=1.2)
      ax.set_title(f"{dataset}: {label}", fontsize=9)
      ax.set_xlabel("step")
      if ax.lines and j == 0:
        ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def _summed_histogram(run_dirs: Sequence[str]) -> dict[str, Any] | None:
  hists = []
  for run_dir in run_dirs:
    file = os.path.join(run_dir, runner.HISTOGRAM_FILE)
    if os.path.exists(file):
      with open(file) as f:
        hists.append(json.load(f))
  if not hists:
    return None
  return {"edges": np.asarray(hists[0]["edges"]),
          "positive": np.sum([h["positive"] for h in hists], axis=0),
          "negative": np.sum([h["negative"] for h in hists], axis=0)}


def plot_similarities(records: Sequence[dict[str, Any]], workdir: str,
                      path: str) -> str:
  """End-of-run positive/negative cosine histograms; returns `path`."""
  datasets = list(dict.fromkeys(r["dataset"] for r in records))
  methods = list(dict.fromkeys(r["method"] for r in records))
  fig = Figure(figsize=(2.4 * len(methods), 2.2 * len(datasets)))
  axes = fig.subplots(len(datasets), len(methods), squeeze=False,
                      sharex=True)
  for i, dataset in enumerate(datasets):
    for j, method in enumerate(methods):
      ax = axes[i, j]
      dirs = [os.path.join(workdir, "runs", r["run_id"]) for r in records
              if (r["dataset"], r["method"]) == (dataset, method)
              and r["status"] == "done"]
      hist = _summed_histogram(dirs)
      if hist is None:
        ax.axis("off")
        continue
      centers = (hist["edges"][1:] + hist["edges"][:-1]) / 2
      width = hist["edges"][1] - hist["edges"][0]
      for key, color in (("negative", "tab:red"), ("positive", "tab:green")):
        counts = hist[key] / max(hist[key].sum(), 1) / width  # a density
        ax.bar(centers, counts, width, color=color, alpha=0.5, label=key)
      ax.set_title(f"{dataset}\n{method}", fontsize=7)
      ax.tick_params(labelsize=6)
  axes[0, 0].legend(fontsize=6)
  fig.supxlabel("cosine similarity of two views (positive) / two examples"
                " (negative)", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path
