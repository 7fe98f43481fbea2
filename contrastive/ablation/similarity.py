"""Positive and negative similarities of a finished run, as histograms.

At the end of a run, two augmented views of held-out examples go through the
trained encoder; the cosine similarities of the two views of one example
(positives) and of different examples (negatives) are binned
(`contrastive.evaluate.similarity_distribution`). A method that separates
the two distributions well has learnt invariance without collapse.

The train loop does not return its final state, so it is restored from the
run's last checkpoint with the loop's own `restore_or_init`.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from contrastive import evaluate as eval_lib
from contrastive.augment import make_views
from contrastive.train import experiment as experiment_lib
from contrastive.train import loop
from contrastive.train.checkpoint import Checkpointer



def restore_latest(config, workdir: str, restore) -> tuple[Any, Any]:
  """`(experiment, state)` of the run in `workdir` at its latest checkpoint,
  read by `restore(exp, checkpointer, iterator) -> state` (the trainer's own
  restore, so that the state has the structure that trainer saved).

  Raises:
    ValueError: `workdir` holds no checkpoint.
  """
  exp = experiment_lib.build_experiment(config)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    if ckpt.latest_step() is None:
      raise ValueError(f"no checkpoint under {workdir}/checkpoints to"
                       " restore; train the run first.")
    state = restore(exp, ckpt, exp.train_iterator())
  finally:
    ckpt.close()
  return exp, state


def restore_final_state(config, workdir: str):
  """`(experiment, state)` of the contrastive run in `workdir` at its latest
  checkpoint (restored with the train loop's `restore_or_init`).

  Raises:
    ValueError: `workdir` holds no checkpoint.
  """
  return restore_latest(
      config, workdir,
      lambda exp, ckpt, iterator: loop.restore_or_init(exp, ckpt, iterator)[0])


def view_similarities(exp, state, *, num_examples: int = 512,
                      num_negatives: int = 20_000, seed: int = 0
                      ) -> eval_lib.SimilarityDistribution:
  """Cosines of positive and negative pairs of two views of test examples.

  Args:
    exp: the run's `Experiment` (model, augmentation, test split).
    state: its train state (`params`, `batch_stats`).
    num_examples: how many test examples, evenly spread over the split
      (>= 2).
    num_negatives: negative pairs sampled (all pairs if fewer exist).
    seed: seeds the views and the negative sample.

  Returns:
    A `SimilarityDistribution` of `positive [n]` and `negative` cosines of the
    projections.

  Example:
    >>> exp, state = restore_final_state(config, workdir)
    >>> sims = view_similarities(exp, state, num_examples=256)
  """
  n = min(len(exp.test_data), int(num_examples))
  if n < 2:
    raise ValueError(f"num_examples must be >= 2, got {num_examples}.")
  # Spread over the split (HAPT's test windows are ordered by subject).
  index = np.unique(np.linspace(0, len(exp.test_data) - 1, n).round())
  x = np.asarray(exp.test_data.get_batch(index.astype(np.int64))["x"])
  variables = {"params": state.params}
  if state.batch_stats:
    variables["batch_stats"] = state.batch_stats
  model, augment = exp.deps.model, exp.deps.augment

  @jax.jit
  def project(variables, rng, x):
    views = make_views(rng, x, augment, num_views=2)
    return [model.apply(variables, v, train=False)["projection"]
            for v in views]

  z1, z2 = project(variables, jax.random.PRNGKey(seed), x)
  return eval_lib.similarity_distribution(
      z1, z2, num_negatives=num_negatives, seed=seed)


def histogram(sims: eval_lib.SimilarityDistribution, *, num_bins: int = 40
              ) -> dict[str, Any]:
  """Counts of positive and negative cosines on `num_bins` bins of [-1, 1]."""
  if num_bins < 1:
    raise ValueError(f"num_bins must be >= 1, got {num_bins}.")
  edges = np.linspace(-1.0, 1.0, num_bins + 1)
  # Rounding can put a cosine a hair outside [-1, 1]; keep it in the end bins.
  positive, _ = np.histogram(np.clip(sims.positive, -1, 1), bins=edges)
  negative, _ = np.histogram(np.clip(sims.negative, -1, 1), bins=edges)
  return {"edges": edges.tolist(), "positive": positive.tolist(),
          "negative": negative.tolist(),
          "positive_mean": float(np.mean(sims.positive)),
          "negative_mean": float(np.mean(sims.negative))}


def run_histogram(config, workdir: str, *, exp=None, state=None,
                  num_examples: int = 512, num_bins: int = 40
                  ) -> dict[str, Any]:
  """The run's end-of-training histogram (`histogram` of its view cosines).

  The state is restored from `workdir` unless `exp` and `state` are given.
  Writing it to the run's directory is the caller's part (the sweep runner
  writes `runner.HISTOGRAM_FILE`).
  """
  if state is None or exp is None:
    exp, state = restore_final_state(config, workdir)
  sims = view_similarities(exp, state, num_examples=num_examples,
                           seed=int(config.seed))
  return histogram(sims, num_bins=num_bins)
