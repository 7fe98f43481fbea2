r"""Learning curves: accuracy against CPU minutes, the evidence behind a recipe.

Each variant of a dataset (a method config, a size and overrides) trains with
the full evaluation protocol run every `--eval_every` steps (kNN and linear
probe on the whole splits, `config.eval.monitor_probe`); the training CPU
time at each point (all threads, without evaluation and checkpoints) is
logged as `train_cpu_s`. The plot puts both accuracies against CPU minutes,
with the input baselines and the random-init encoder as horizontal lines,
and a JSON file keeps the points.

  python -m benchmarks.learning_curves --dataset=uci_hapt \
      --workdir=/tmp/curves            # docs/curves/uci_hapt.{png,json}
  python -m benchmarks.learning_curves --dataset=fsdd --variants=small \
      --sweep=/tmp/cpu_sweep --workdir=/tmp/curves

Runs are resumable and skipped once finished (their results.json exists),
so re-running the command only redraws. `--quick` trains each variant for a
few steps (a smoke run). Variants, per dataset (`VARIANTS`): `small`, the
README job's recipe (at most 10 minutes on a 2-core CPU); `cpu`, the
45-minute recipe; `previous`, the recipe the project had before they were
chosen, at the `small` budget; further variants are the alternatives that
the choice was made against. `--sweep` adds the SimCLR runs of a sweep
folder (`configs/ablation.py:cpu` logs their curves), one line per seed,
instead of training `cpu` again.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np

from contrastive.ablation import grid

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "curves"

# name -> (config file, argument, overrides, evaluations along the run).
# The previous recipes (before issue 13): what configs/*.py:<dataset>,small
# trained then, kept here as the curves' point of comparison.
PREVIOUS = {
    "fashion_mnist": dict(
        model=dict(name="resnet18", stem="cifar", width=16),
        augment=dict(crop_scale=(0.2, 1.0)),
        loss=dict(temperature=0.5),
        optimizer=dict(learning_rate=1e-3, warmup_steps=50),
        train=dict(batch_size=128, num_steps=300)),
    "fsdd": dict(
        model=dict(name="audio_cnn", width=16, depth=4),
        loss=dict(temperature=0.5),
        optimizer=dict(learning_rate=1e-3, warmup_steps=50),
        train=dict(batch_size=128, num_steps=300)),
    "uci_hapt": dict(
        model=dict(name="sensor_resnet1d", width=32, depth=3),
        loss=dict(temperature=0.5),
        optimizer=dict(learning_rate=1e-3, warmup_steps=50),
        train=dict(batch_size=128, num_steps=300)),
}
VARIANTS = {
    dataset: {
        "small": ("simclr", f"{dataset},small", {}, 4),
        "cpu": ("simclr", f"{dataset},cpu", {}, 6),
        "previous": ("simclr", f"{dataset},small", PREVIOUS[dataset], 3),
    }
    for dataset in PREVIOUS
}


def _config(variant, quick: bool):
  name, arg, overrides, points = variant
  config = grid.load_config_module(name).get_config(arg)
  grid.merge_overrides(config, overrides)
  steps = int(config.train.num_steps)
  if quick:
    steps = min(steps, 4)
    config.train.num_steps = steps
    config.train.batch_size = min(config.train.batch_size, 32)
    config.eval.max_train_examples = config.eval.monitor_train_examples = 512
    config.eval.max_test_examples = config.eval.monitor_test_examples = 256
  else:
    config.eval.monitor_train_examples = None
    config.eval.monitor_test_examples = None
  config.eval.monitor_probe = True
  config.eval.baselines = ("random_init", "input")
  config.train.eval_every = max(1, steps // points)
  config.train.log_every = min(int(config.train.log_every),
                               config.train.eval_every)
  config.train.progress = False
  return config


def _sweep_curves(sweep_dir: str, dataset: str) -> dict[str, dict]:
  """`{'cpu seed s': points}` of the sweep's SimCLR runs on `dataset`."""
  out = {}
  runs = os.path.join(sweep_dir, "runs")
  for name in sorted(os.listdir(runs)):
    run_dataset, method, seed = name.split("__")
    run_dir = os.path.join(runs, name)
    if (run_dataset, method) == (dataset, "simclr") and os.path.exists(
        os.path.join(run_dir, "results.json")):
      out[f"cpu, {seed.replace('seed', 'seed ')}"] = _points(run_dir)
  return out


def _points(workdir: str) -> dict[str, list[float]]:
  """(train CPU minutes, kNN, probe) at each evaluation, and at the end."""
  rows = [json.loads(line) for line in open(os.path.join(workdir,
                                                         "metrics.jsonl"))]
  logged = sorted({int(r["step"]): r["train_cpu_s"] / 60 for r in rows
                   if "train_cpu_s" in r}.items())
  results = json.load(open(os.path.join(workdir, "results.json")))
  evals = {int(r["step"]): (r["knn_monitor"], r["probe_monitor"])
           for r in rows if "probe_monitor" in r}
  evals[int(results["step"])] = (results["knn_accuracy"],
                                 results["linear_probe_accuracy"])
  out = {"cpu_min": [], "knn": [], "probe": [], "step": []}
  if not logged:
    return out
  steps, minutes = (np.array(v, dtype=float) for v in zip(*logged))
  for step, (knn, probe) in sorted(evals.items()):
    # The training clock is logged every `log_every` steps; an evaluation
    # between two log rows reads it by linear interpolation.
    out["cpu_min"].append(float(np.interp(step, steps, minutes)))
    out["knn"].append(100 * knn)
    out["probe"].append(100 * probe)
    out["step"].append(step)
  return out


def plot(dataset: str, curves: dict, baselines: dict, path: pathlib.Path):
  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure
  # pylint: enable=g-import-not-at-top
  fig = Figure(figsize=(11, 4))
  axes = fig.subplots(1, 2, sharey=True)
  for ax, key, title in ((axes[0], "probe", "linear probe"),
                         (axes[1], "knn", "kNN")):
    for name, points in curves.items():
      ax.plot(points["cpu_min"], points[key], marker="o", label=name)
    styles = iter(("--", ":", "-.", (0, (1, 3))))
    for name, scores in baselines.items():
      value = 100 * scores["linear_probe_accuracy" if key == "probe"
                           else "knn_accuracy"]
      ax.axhline(value, color="k" if name == "random_init" else "tab:purple",
                 ls=next(styles, "--"), lw=1, label=f"{name} ({value:.1f})")
    ax.set_title(f"{dataset}: {title} (full test split)")
    ax.set_xlabel("training CPU minutes (2-core machine, all threads)")
    ax.set_ylabel("accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", required=True, choices=sorted(VARIANTS))
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--variants", default=None,
                      help="comma-separated names (default: all)")
  parser.add_argument("--out", default=None,
                      help=f"PNG path (default {DOCS}/<dataset>.png)")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--sweep", default=None,
                      help="a sweep folder whose SimCLR runs log curves")
  args = parser.parse_args()
  # Imported after argument parsing so that --help is instant.
  from contrastive.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  variants = VARIANTS[args.dataset]
  names = args.variants.split(",") if args.variants else list(variants)
  curves, baselines = {}, None
  for name in names:
    config = _config(variants[name], args.quick)
    workdir = os.path.join(args.workdir, args.dataset, name)
    if not os.path.exists(os.path.join(workdir, "results.json")):
      start = time.perf_counter()
      train_and_evaluate(config, workdir)
      print(f"{args.dataset}/{name}: {time.perf_counter() - start:.0f} s wall")
    curves[name] = _points(workdir)
    results = json.load(open(os.path.join(workdir, "results.json")))
    baselines = baselines or results.get("baselines")
    print(f"{args.dataset}/{name}: " + ", ".join(
        f"{m:.1f} min: kNN {k:.1f} probe {p:.1f}" for m, k, p in zip(
            curves[name]["cpu_min"], curves[name]["knn"],
            curves[name]["probe"])))
  if args.sweep:
    curves.update(_sweep_curves(args.sweep, args.dataset))
  out = pathlib.Path(args.out) if args.out else DOCS / f"{args.dataset}.png"
  plot(args.dataset, curves, baselines or {}, out)
  with open(out.with_suffix(".json"), "w") as f:
    json.dump({"curves": curves, "baselines": baselines}, f, indent=2)
  print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
  main()
