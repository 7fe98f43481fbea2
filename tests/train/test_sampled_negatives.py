"""A loss that draws its negatives (SimANS) inside the train step."""
from __future__ import annotations

import jax
import numpy as np

from configs import simans
from contrastive.train import experiment
from contrastive.train import mesh as mesh_lib


def test_simans_step_draws_from_the_queue(shared_data_dir):
  """Step 1 sees an empty queue; later steps draw num_samples of its keys
  per query (top_n of the valid ones ranked) and learn from them."""
  del shared_data_dir  # the config reads UCI HAPT from there
  config = simans.get_config("uci_hapt,tiny")
  config.mesh.shape = (1, 1)
  exp = experiment.build_experiment(config, devices=jax.devices()[:1])
  state, shardings = experiment.init_state(exp)
  step = experiment.compile_train_step(exp, shardings)
  iterator = exp.train_iterator()
  metrics = []
  for _ in range(3):
    state, m = step(state, mesh_lib.global_batch(next(iterator), exp.mesh))
    metrics.append({k: float(v) for k, v in m.items()})
  assert metrics[0]["num_negatives"] == 0 and metrics[0]["loss"] == 0
  for m in metrics[1:]:
    assert m["simans_valid_frac"] == 1.0
    assert m["num_negatives"] == config.loss.num_samples
    assert np.isfinite(m["loss"]) and m["loss"] > 0 and m["grad_norm"] > 0
