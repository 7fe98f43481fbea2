"""`train_and_evaluate(config, workdir)`: the whole run, resumable.

The launcher, the tests and the colabs all call this one function.

Hooks (`contrastive.clustering.hooks`, chosen by the config) run host-side
work between steps that may replace the state: MCL's stage transitions and
the re-clustering of cluster-balanced batches. A hook has `restore(state)`,
`before_step(state, step) -> (state, metrics)` and `summary() -> dict`.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import numpy as np
from absl import logging

from contrastive.clustering import hooks as hooks_lib
from contrastive.train import evaluation
from contrastive.train import experiment as experiment_lib
from contrastive.train import mesh as mesh_lib
from contrastive.train.checkpoint import Checkpointer, abstract_like
from contrastive.train.metrics_writer import MetricsWriter
from contrastive.train.preemption import PreemptionGuard


def _progress(total: int, initial: int, enabled: bool):
  if not enabled:
    return None
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, dynamic_ncols=True,
              desc="train", unit="step")


def restore_or_init(exp, ckpt: Checkpointer, iterator, hooks=()):
  """The latest checkpoint's state and data position, or a fresh state.

  Each hook's `restore(state)` runs before the data position is restored
  (a cluster-balanced sampler needs its clusters to order the epoch).
  """
  if ckpt.latest_step() is None:
    state, shardings = experiment_lib.init_state(exp)
    for hook in hooks:
      hook.restore(state)
    return state, shardings
  shapes = experiment_lib.abstract_state(exp)
  shardings = experiment_lib.state_shardings(exp, shapes)
  state, data_state = ckpt.restore(abstract_like(shapes, shardings))
  for hook in hooks:
    hook.restore(state)
  iterator.set_state(data_state)
  logging.info("resumed from step %d", int(state.step))
  return state, shardings


def train_and_evaluate(config, workdir: str, *,
                       guard: PreemptionGuard | None = None) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns a dict with the final evaluation (kNN, linear probe, alignment,
  uniformity, nuisance probes), or `{'preempted': True, 'step': s}` when a
  SIGTERM (or `guard.request()`) stopped the run after saving.
  """
  os.makedirs(workdir, exist_ok=True)
  exp = experiment_lib.build_experiment(config)
  is_main = jax.process_index() == 0
  train_cfg = config.train
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      max_to_keep=int(train_cfg.get("keep_checkpoints", 3)))
  iterator = exp.train_iterator()
  hooks = hooks_lib.build_hooks(exp)
  state, shardings = restore_or_init(exp, ckpt, iterator, hooks)
  step_fn = experiment_lib.compile_train_step(exp, shardings)
  writer = MetricsWriter(workdir, enabled=is_main)
  log_every = int(train_cfg.get("log_every", 50))
  ckpt_every = int(train_cfg.get("checkpoint_every", 1000))
  eval_every = int(train_cfg.get("eval_every", 0))
  start = int(state.step)
  bar = _progress(exp.num_steps, start, is_main and train_cfg.get("progress", True))
  guard = guard or PreemptionGuard()
  last_time, last_step = time.perf_counter(), start
  preempted = False
  with guard:
    for step in range(start, exp.num_steps):
      for hook in hooks:
        state, hook_metrics = hook.before_step(state, step)
        if hook_metrics:
          writer.write(step, hook_metrics)
      batch = mesh_lib.global_batch(next(iterator), exp.mesh)
      state, metrics = step_fn(state, batch)
      done = step + 1
      if done % log_every == 0 or done == exp.num_steps:
        metrics = jax.device_get(metrics)
        now = time.perf_counter()
        rate = (done - last_step) / max(now - last_time, 1e-9)
        last_time, last_step = now, done
        if not np.isfinite(metrics["loss"]):
          raise FloatingPointError(
              f"loss is {metrics['loss']} at step {done}; lower the learning"
              " rate or raise the temperature (see metrics.jsonl).")
        metrics.update(steps_per_sec=rate,
                       examples_per_sec=rate * exp.batch_size,
                       learning_rate=exp.lr_schedule(exp.optimizer_step(step)))
        writer.write(done, metrics)
        if bar is not None:
          bar.set_postfix(loss=f"{metrics['loss']:.4f}",
                          ex_per_s=f"{rate * exp.batch_size:.0f}")
      if bar is not None:
        bar.update(1)
      if eval_every and done % eval_every == 0 and done != exp.num_steps:
        writer.write(done, evaluation.monitor(exp, state))
      if done % ckpt_every == 0:
        ckpt.save(done, state, iterator.get_state())
      if guard.requested:
        ckpt.save(done, state, iterator.get_state(), force=True)
        preempted = True
        break
  if bar is not None:
    bar.close()
  if preempted:
    ckpt.close()
    writer.close()
    logging.warning("stopped by SIGTERM after step %d; checkpoint saved", done)
    return {"preempted": True, "step": done}
  ckpt.save(int(state.step), state, iterator.get_state(), force=True)
  ckpt.close()
  results = evaluation.final(exp, state) if config.eval.get("final", True) else {}
  results["step"] = int(state.step)
  for hook in hooks:
    results.update(hook.summary())
  writer.write(int(state.step), {k: v for k, v in results.items()
                                 if isinstance(v, (int, float))})
  writer.close()
  if is_main:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results
