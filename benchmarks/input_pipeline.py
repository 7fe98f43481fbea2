"""Is input the bottleneck? Pipeline examples/s against a train step's.

Run from the repository root:

    python -m benchmarks.input_pipeline            # the three default datasets
    python -m benchmarks.input_pipeline --quick    # fewer repeats, batch 64
    python -m benchmarks.input_pipeline --datasets fsdd --repeats 10

For each modality's default dataset (fashion_mnist, fsdd, uci_hapt, read from
../shared/data) and the 'small' size of configs/simclr.py, built through the
experiment API exactly as `launch.main` builds it, it measures:

  host      `BatchIterator` batches (read, gather, on the host), examples/s;
  augment   the modality's standard recipe making two views, jit-compiled
            `make_views` on the device (a batch already on the device);
  pipeline  both in sequence, as a loop would run them: next(iterator),
            transfer, two views, wait;
  step      one full train step (which itself augments, on device, from the
            state's rng) at the config's global batch, examples/s.

and the ratios pipeline/step (the issue's target: >= 3) and host/step. Because
augmentation runs inside the jitted step, what the step really waits for is
the host column; the augment column says what share of the step the views
cost. Each figure is the median of `--repeats` timed runs after a warm-up
(and compilation); the load average printed beside it says how busy the
machine was.
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from typing import Any, Callable

import jax
import numpy as np

from configs import simclr
from contrastive.augment import make_views
from contrastive.train import experiment as experiment_lib
from contrastive.train import mesh as mesh_lib

DATASETS = ("fashion_mnist", "fsdd", "uci_hapt")
TARGET_RATIO = 3.0


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1
                   ) -> float:
  """Median wall time of `fn()` (which must block until its work is done)."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def measure(dataset: str, *, repeats: int, batch_size: int | None
            ) -> dict[str, float]:
  """Examples/s of host reading, augmentation, both, and one train step."""
  config = simclr.get_config(f"{dataset},small")
  if batch_size:
    config.train.batch_size = batch_size
  exp = experiment_lib.build_experiment(config)
  b = exp.batch_size
  iterator = exp.train_iterator()
  num_views = exp.deps.num_views

  host = median_seconds(lambda: next(iterator), repeats)

  views_fn = jax.jit(functools.partial(
      make_views, augment=exp.deps.augment, num_views=num_views))
  rng = jax.random.PRNGKey(0)
  x = jax.device_put(next(iterator)["x"])
  augment = median_seconds(
      lambda: views_fn(rng, x).block_until_ready(), repeats)

  def pipeline():
    batch = next(iterator)
    views_fn(rng, jax.device_put(batch["x"])).block_until_ready()
  both = median_seconds(pipeline, repeats)

  state, shardings = experiment_lib.init_state(exp)
  step_fn = experiment_lib.compile_train_step(exp, shardings)
  batch = mesh_lib.global_batch(next(iterator), exp.mesh)
  holder = {"state": state}

  def step():
    # The state is donated: each step consumes the previous one.
    holder["state"], metrics = step_fn(holder["state"], batch)
    jax.block_until_ready(metrics)
  step_s = median_seconds(step, repeats, warmup=2)  # 1st compiles
  return {"batch": b, "host": b / host, "augment": b / augment,
          "pipeline": b / both, "step": b / step_s,
          "model": config.model.name, "width": config.model.width,
          "augment_name": config.augment.name,
          "shape": tuple(np.shape(x)[1:])}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help="batch 64 and 3 repeats: a smoke run")
  parser.add_argument("--datasets", default=",".join(DATASETS),
                      help="comma-separated, from " + ", ".join(DATASETS))
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed runs per figure (default 5, quick 3)")
  parser.add_argument("--batch_size", type=int, default=None,
                      help="global batch (default: the small config's, 256)")
  args = parser.parse_args()
  datasets = [d for d in args.datasets.split(",") if d]
  unknown = sorted(set(datasets) - set(DATASETS))
  if unknown:
    raise ValueError(f"unknown datasets {unknown}; valid: {DATASETS}.")
  repeats = args.repeats or (3 if args.quick else 5)
  batch_size = args.batch_size or (64 if args.quick else None)

  print(f"backend {jax.default_backend()}, {jax.device_count()} device(s),"
        f" {os.cpu_count()} CPU cores; configs/simclr.py:<dataset>,small;"
        f" median of {repeats}.")
  header = (f"{'dataset':<14} {'encoder':<20} {'batch':>5} {'host':>9}"
            f" {'augment':>9} {'pipeline':>9} {'step':>8} {'pipe/step':>9}"
            f" {'host/step':>9}  load")
  print("examples/s (two views per example)")
  print(header)
  print("-" * len(header))
  for dataset in datasets:
    r = measure(dataset, repeats=repeats, batch_size=batch_size)
    load = os.getloadavg()[0]
    encoder = f"{r['model']} w{r['width']}"
    ratio = r["pipeline"] / r["step"]
    flag = "" if ratio >= TARGET_RATIO else " (<3)"
    print(f"{dataset:<14} {encoder:<20} {r['batch']:>5} {r['host']:>9.0f}"
          f" {r['augment']:>9.0f} {r['pipeline']:>9.0f} {r['step']:>8.0f}"
          f" {ratio:>9.1f} {r['host'] / r['step']:>9.1f}  {load:.1f}{flag}")
  print("host: BatchIterator on the host; augment: jitted make_views on the"
        " device; pipeline: both in sequence; step: full SimCLR train step"
        " (augmentation included). load: 1-min load average after the row.")


if __name__ == "__main__":
  main()
