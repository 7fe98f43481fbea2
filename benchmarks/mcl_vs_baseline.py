"""MCL (2 stages) against its single-stage baseline: linear probe over seeds.

Each seed trains configs/mcl.py on a small config through
`train_and_evaluate` (SimCLR stage 1 for T steps; cluster the training set;
stage 2 for T steps, a fresh encoder, negatives only from the anchor's
stage-1 cluster), then probes, on the frozen backbone features of the test
split:

- stage 1 alone: the single-stage baseline with T steps. Stage 1 of MCL IS
  that run (same seed, data order, initialisation, optimizer schedule; its
  mask allows every in-batch negative), so it is read off the MCL run;
- SimCLR for 2T steps: the single-stage baseline with MCL's total compute
  (a separate run);
- stage 2 alone, and the concatenation of both stages (MCL's representation,
  twice the dimensions).

It prints the linear-probe and kNN accuracy (mean and standard deviation
over seeds), and the time spent clustering as a share of stage 1's training.

  python -m benchmarks.mcl_vs_baseline                    # ~12 min, 2 cores
  python -m benchmarks.mcl_vs_baseline --seeds=0 --steps_per_stage=10
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from configs import mcl as mcl_config
from configs import simclr as simclr_config
from contrastive import evaluate as eval_lib
from contrastive.ablation import similarity
from contrastive.train import evaluation
from contrastive.train.loop import train_and_evaluate


def _configure(config, args, seed: int):
  config.seed = seed
  config.train.batch_size = args.batch_size
  config.train.progress = False
  config.train.checkpoint_every = 10**6   # only the final save
  config.optimizer.warmup_steps = max(1, args.steps_per_stage // 5)
  config.eval.nuisance = None
  return config


def _scores(exp, train, test, columns) -> tuple[float, float]:
  """Linear-probe and kNN test accuracy on `features[:, columns]`, with the
  evaluation settings of the config (as `evaluation.final` uses them)."""
  cfg = exp.config.eval
  tr, te = train["features"][:, columns], test["features"][:, columns]
  num_classes = exp.train_data.info.num_classes
  probe = eval_lib.linear_probe(tr, train["label"], te, test["label"],
                                num_classes=num_classes,
                                **dict(cfg.get("linear_probe", {})))
  knn = eval_lib.knn_accuracy(tr, train["label"], te, test["label"],
                              num_classes=num_classes,
                              k=int(cfg.get("knn_k", 20)),
                              temperature=float(cfg.get("knn_temperature",
                                                        0.07)))
  return float(probe.test_accuracy), float(knn)


def run_seed(args, seed: int, root: str) -> dict:
  """One seed: the MCL run (giving stage 1, stage 2, concat) and SimCLR 2T."""
  config = _configure(mcl_config.get_config(f"{args.dataset},small"), args,
                      seed)
  config.mcl.update(steps_per_stage=args.steps_per_stage,
                    num_clusters=args.num_clusters,
                    min_negatives=args.min_negatives)
  workdir = os.path.join(root, f"mcl_seed{seed}")
  start = time.perf_counter()
  mcl_results = train_and_evaluate(config, workdir)
  mcl_seconds = time.perf_counter() - start
  exp, state = similarity.restore_final_state(config, workdir)
  train = evaluation.embed_representation(exp, state, exp.train_data,
                                          config.eval.get("max_train_examples"))
  test = evaluation.embed_representation(exp, state, exp.test_data,
                                         config.eval.get("max_test_examples"))
  width = train["features"].shape[1] // 2
  scores = {
      "stage 1 alone (T steps)": _scores(exp, train, test, slice(0, width)),
      "stage 2 alone": _scores(exp, train, test, slice(width, None)),
      "MCL: stages 1 + 2": _scores(exp, train, test, slice(None)),
  }
  baseline = _configure(simclr_config.get_config(f"{args.dataset},small"),
                        args, seed)
  baseline.train.num_steps = 2 * args.steps_per_stage
  start = time.perf_counter()
  base = train_and_evaluate(baseline, os.path.join(root, f"simclr_seed{seed}"))
  base_seconds = time.perf_counter() - start
  scores["SimCLR, 2T steps"] = (base["linear_probe_accuracy"],
                                base["knn_accuracy"])
  return dict(scores=scores, width=width,
              share=mcl_results["mcl/stage1_cluster_share"],
              cluster_seconds=mcl_results["mcl/stage1_cluster_seconds"],
              stage_seconds=mcl_results["mcl/stage1_train_seconds"],
              mcl_seconds=mcl_seconds, base_seconds=base_seconds,
              concat_check=(mcl_results["linear_probe_accuracy"],
                            scores["MCL: stages 1 + 2"][0]))


def _table(args, runs) -> str:
  t = args.steps_per_stage
  dims = {"stage 1 alone (T steps)": 1, "stage 2 alone": 1,
          "MCL: stages 1 + 2": 2, "SimCLR, 2T steps": 1}
  steps = {"stage 1 alone (T steps)": t, "stage 2 alone": t,
           "MCL: stages 1 + 2": 2 * t, "SimCLR, 2T steps": 2 * t}
  width = runs[0]["width"]
  lines = [f"{args.dataset}, T = {t} steps per stage, batch {args.batch_size},"
           f" k = {args.num_clusters} clusters, seeds {args.seeds}",
           f"{'representation':<26}{'dims':>6}{'steps':>7}"
           f"{'linear probe':>18}{'kNN':>18}   per seed (probe)"]
  for name in dims:
    probe = np.array([r["scores"][name][0] for r in runs])
    knn = np.array([r["scores"][name][1] for r in runs])
    per_seed = " ".join(f"{p:.4f}" for p in probe)
    lines.append(f"{name:<26}{dims[name] * width:>6}{steps[name]:>7}"
                 f"{probe.mean():>11.4f} ± {probe.std():.4f}"
                 f"{knn.mean():>11.4f} ± {knn.std():.4f}   {per_seed}")
  lines.append("")
  lines.append(f"{'seed':<6}{'stage-1 train s':>16}{'clustering s':>14}"
               f"{'share':>8}{'MCL run s':>11}{'2T run s':>10}")
  for seed, r in zip(args.seeds, runs):
    lines.append(f"{seed:<6}{r['stage_seconds']:>16.1f}"
                 f"{r['cluster_seconds']:>14.1f}{100 * r['share']:>7.1f}%"
                 f"{r['mcl_seconds']:>11.1f}{r['base_seconds']:>10.1f}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="uci_hapt",
                      choices=("uci_hapt", "fsdd", "fashion_mnist"))
  parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")],
                      default=[0, 1, 2])
  parser.add_argument("--steps_per_stage", type=int, default=60)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--num_clusters", type=int, default=4)
  parser.add_argument("--min_negatives", type=int, default=4)
  parser.add_argument("--workdir", default=None,
                      help="where the runs go (default: a temporary folder)")
  args = parser.parse_args()
  # Identical programs (the same step for every seed) compile once.
  cache = os.path.join(tempfile.gettempdir(), "contrastive_jax_cache")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  start = time.perf_counter()
  with tempfile.TemporaryDirectory() as tmp:
    root = args.workdir or tmp
    runs = [run_seed(args, seed, root) for seed in args.seeds]
  print()
  print(_table(args, runs))
  for seed, r in zip(args.seeds, runs):
    reported, recomputed = r["concat_check"]
    if abs(reported - recomputed) > 1e-6:
      print(f"note: seed {seed}: train_and_evaluate reported {reported:.4f}"
            f" for the concatenation, the re-probe gave {recomputed:.4f}")
  print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
