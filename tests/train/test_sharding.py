"""The step on a device mesh computes what it computes on one device.

SimCLR (global-batch negatives, BatchNorm over the global batch) and MoCo
(momentum encoder, global queue) run a few steps on 8 simulated CPU devices,
as a (4, 2) mesh with kernels split over `model` and as (8, 1), and on one
device with the same global batch; the losses and gradient norms of every
step (AdamW hides a gradient's scale from the parameters), the parameters,
BatchNorm statistics and MoCo's momentum encoder and queue must agree.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import moco
from configs import simclr
from contrastive.negatives import queue as queue_lib
from contrastive.train import experiment
from contrastive.train import mesh as mesh_lib

NUM_STEPS = 3


def _run(config, devices):
  exp = experiment.build_experiment(config, devices=devices)
  state, shardings = experiment.init_state(exp)
  step = experiment.compile_train_step(exp, shardings)
  iterator = exp.train_iterator()
  metrics_seen, batches = [], []
  for _ in range(NUM_STEPS):
    batch = next(iterator)
    batches.append(batch)
    state, metrics = step(state, mesh_lib.global_batch(batch, exp.mesh))
    metrics_seen.append((float(metrics["loss"]), float(metrics["grad_norm"])))
  return jax.device_get(state), np.array(metrics_seen), batches, shardings


def _config(module, shape):
  config = module.get_config("uci_hapt,tiny")
  config.train.batch_size = 16
  config.moco.queue_size = 32       # two global batches
  # A constant EMA of 0.5 (not 0.99) so that the momentum encoder moves far
  # beyond the tolerance in three steps.
  config.moco.momentum_start = config.moco.momentum_end = 0.5
  config.mesh.shape = shape
  config.mesh.shard_min_size = 64   # so that the (4, 2) mesh splits kernels
  return config


_CACHE = {}


def _cached_run(module, shape):
  """Each (method, mesh) pair is compiled and run once per test session."""
  key = (module.__name__, shape)
  if key not in _CACHE:
    devices = jax.devices()[:1] if shape == (1, 1) else jax.devices()
    _CACHE[key] = _run(_config(module, shape), devices)
  return _CACHE[key]


@pytest.mark.parametrize(
    "module, shape",
    [(simclr, (4, 2)), (moco, (4, 2)), (moco, (8, 1))],
    ids=["simclr-4x2", "moco-4x2", "moco-8x1"])
def test_mesh_matches_single_device(module, shape):
  assert len(jax.devices()) == 8, "conftest.py should simulate 8 CPU devices"
  reference, ref_metrics, _, _ = _cached_run(module, (1, 1))
  state, metrics, _, shardings = _cached_run(module, shape)
  if shape == (4, 2):  # some kernels really are split over `model`
    specs = [s.spec for s in jax.tree.leaves(shardings.params)]
    assert any(mesh_lib.MODEL_AXIS in tuple(s) for s in specs)
  losses, grad_norms = metrics.T
  ref_losses, ref_grad_norms = ref_metrics.T
  np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(grad_norms, ref_grad_norms, rtol=1e-5)
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  jax.tree.map(close, state.params, reference.params)
  jax.tree.map(close, state.batch_stats, reference.batch_stats)
  if module is moco:
    jax.tree.map(close, state.momentum_params, reference.momentum_params)
    jax.tree.map(close, state.momentum_batch_stats,
                 reference.momentum_batch_stats)
    close(state.queue.keys, reference.queue.keys)


def test_queue_holds_global_batches_in_order():
  """After n steps the queue holds the last K/b global batches' keys, oldest
  first, on an 8-device mesh; row metadata follows the keys."""
  state, _, batches, _ = _cached_run(moco, (8, 1))
  meta = queue_lib.ordered_metadata(state.queue)
  np.testing.assert_array_equal(
      np.asarray(meta["index"]),
      np.concatenate([b["index"] for b in batches[-2:]]))
  np.testing.assert_array_equal(
      np.asarray(meta["label"]),
      np.concatenate([b["label"] for b in batches[-2:]]))
  assert bool(np.all(state.queue.valid))
  keys = np.asarray(queue_lib.ordered_keys(state.queue))
  np.testing.assert_allclose(np.linalg.norm(keys, axis=1), 1.0, rtol=1e-5)
