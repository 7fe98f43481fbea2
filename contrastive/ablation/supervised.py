"""A supervised (cross-entropy) encoder: the ceiling of an ablation table.

The encoder, data, augmentation, optimizer and schedule are those of a
contrastive run's config (`build_experiment`); instead of a contrastive
loss, a linear classifier on the encoder's projection output is trained with
the cross-entropy on the labels, on one augmented view per example. The
backbone features (what the kNN and linear probes read) are then evaluated
exactly as a contrastive run's (`contrastive.train.evaluation.final`), and
alignment/uniformity are measured on the (supervised) projection.

The classifier sits on the projection MLP rather than on the features so
that every part of the network the evaluation reads has been trained; the
features below it play the role of a contrastive encoder's backbone.

The run is resumable like `train_and_evaluate`: checkpoints hold a
`TrainState` whose `extra['head']` is the classifier.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from contrastive.ablation import similarity
from contrastive.augment import make_views
from contrastive.train import evaluation
from contrastive.train import experiment as experiment_lib
from contrastive.train import mesh as mesh_lib
from contrastive.train.checkpoint import Checkpointer, abstract_like
from contrastive.train.compiler import compiler_options
from contrastive.train.metrics_writer import MetricsWriter
from contrastive.train.state import TrainState


def _apply(exp, params, batch_stats, x, rng):
  """Train-mode forward pass; returns (outputs, new batch_stats)."""
  model = exp.deps.model
  variables = {"params": params}
  kwargs = {}
  if exp.deps.spec_transform is not None:
    kwargs["spec_transform"] = exp.deps.spec_transform
  spec_rng, dropout_rng = jax.random.split(rng)
  rngs = {"spec_augment": spec_rng, "dropout": dropout_rng}
  if batch_stats:
    variables["batch_stats"] = batch_stats
    out, updates = model.apply(variables, x, train=True, rngs=rngs,
                               mutable=["batch_stats"], **kwargs)
    return out, updates["batch_stats"]
  return model.apply(variables, x, train=True, rngs=rngs, **kwargs), batch_stats


def supervised_step(state: TrainState, batch: Mapping[str, jax.Array], *,
                    exp, tx) -> tuple[TrainState, dict[str, jax.Array]]:
  """One cross-entropy step on one augmented view of `batch['x'] [b, ...]`.

  Returns the new state and `{'loss', 'top1', 'grad_norm'}` (top1 is the
  batch's training accuracy).
  """
  rng, view_rng, model_rng = jax.random.split(state.rng, 3)
  x = make_views(view_rng, batch["x"], exp.deps.augment, num_views=1)[0]
  labels = batch["label"]

  def loss_fn(params):
    out, batch_stats = _apply(exp, params["encoder"], state.batch_stats, x,
                              model_rng)
    head = params["head"]
    z = out["projection"].astype(jnp.float32)
    logits = z @ head["kernel"] + head["bias"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    top1 = jnp.mean(jnp.argmax(logits, -1) == labels)
    return jnp.mean(loss), (top1, batch_stats)

  params = {"encoder": state.params, "head": state.extra["head"]}
  (loss, (top1, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, state.opt_state, params)
  params = optax.apply_updates(params, updates)
  new_state = state.replace(
      step=state.step + 1, params=params["encoder"], batch_stats=batch_stats,
      opt_state=opt_state, rng=rng, extra={"head": params["head"]})
  return new_state, {"loss": loss, "top1": top1,
                     "grad_norm": optax.tree.norm(grads)}


def _initial_state(exp) -> TrainState:
  """The contrastive run's initial encoder (same seed) and a zero head."""
  encoder, _ = experiment_lib.init_state(exp)
  n = exp.mesh.shape[mesh_lib.DATA_AXIS]
  example = np.asarray(exp.train_data.get_batch(np.arange(n))["x"])

  def project(params, batch_stats, x):
    views = make_views(jax.random.PRNGKey(0), x, exp.deps.augment,
                       num_views=1)[0]
    variables = {"params": params}
    if batch_stats:
      variables["batch_stats"] = batch_stats
    return exp.deps.model.apply(variables, views, train=False)["projection"]

  dim = jax.eval_shape(project, encoder.params, encoder.batch_stats,
                       example).shape[-1]
  num_classes = exp.train_data.info.num_classes
  head = {"kernel": jnp.zeros((dim, num_classes), jnp.float32),
          "bias": jnp.zeros((num_classes,), jnp.float32)}
  params = {"encoder": encoder.params, "head": head}
  return TrainState(step=jnp.zeros((), jnp.int32), params=encoder.params,
                    batch_stats=encoder.batch_stats,
                    opt_state=exp.deps.tx.init(params), rng=encoder.rng,
                    extra={"head": head})


def _restore_or_init(exp, ckpt: Checkpointer, iterator) -> TrainState:
  state = _initial_state(exp)
  if ckpt.latest_step() is None:
    return state
  replicated = jax.tree.map(lambda _: mesh_lib.replicated(exp.mesh), state)
  state, data_state = ckpt.restore(abstract_like(state, replicated))
  iterator.set_state(data_state)
  return state


def restore_final_state(config, workdir: str):
  """`(experiment, state)` of the supervised run in `workdir` (its latest
  checkpoint), e.g. for `similarity.view_similarities`.

  Raises:
    ValueError: `workdir` holds no checkpoint.
  """
  return similarity.restore_latest(config, workdir, _restore_or_init)


def train_and_evaluate_supervised(config, workdir: str) -> dict[str, Any]:
  """Trains the cross-entropy baseline of `config` in `workdir`, resumably.

  Args:
    config: a run config as for `train_and_evaluate` (its `loss` and
      `method` are ignored; `config.train.*`, `optimizer`, `model`,
      `augment`, `data` and `eval` are used the same way).
    workdir: checkpoints, `metrics.jsonl` and `results.json` go here.

  Returns:
    The final evaluation dict (`knn_accuracy`, `linear_probe_accuracy`,
    `alignment`, `uniformity`, nuisance probes, `step`), as
    `train_and_evaluate`.

  Example:
    >>> config = configs.simclr.get_config('uci_hapt,tiny')
    >>> results = train_and_evaluate_supervised(config, '/tmp/sup')
  """
  os.makedirs(workdir, exist_ok=True)
  exp = experiment_lib.build_experiment(config)
  tx = exp.deps.tx  # the run's optimizer and schedule, on encoder + head
  train_cfg = config.train
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      max_to_keep=int(train_cfg.get("keep_checkpoints", 3)))
  iterator = exp.train_iterator()
  state = _restore_or_init(exp, ckpt, iterator)
  step_fn = jax.jit(functools.partial(supervised_step, exp=exp, tx=tx),
                    donate_argnums=(0,),
                    compiler_options=compiler_options(config))
  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0)
  log_every = int(train_cfg.get("log_every", 50))
  ckpt_every = int(train_cfg.get("checkpoint_every", 1000))
  for step in range(int(state.step), exp.num_steps):
    batch = mesh_lib.global_batch(next(iterator), exp.mesh)
    state, metrics = step_fn(state, batch)
    done = step + 1
    if done % log_every == 0 or done == exp.num_steps:
      metrics = jax.device_get(metrics)
      if not np.isfinite(metrics["loss"]):
        raise FloatingPointError(
            f"supervised loss is {metrics['loss']} at step {done}; lower the"
            " learning rate.")
      writer.write(done, dict(metrics, learning_rate=exp.lr_schedule(step)))
    if done % ckpt_every == 0:
      ckpt.save(done, state, iterator.get_state())
  ckpt.save(int(state.step), state, iterator.get_state(), force=True)
  ckpt.close()
  results = evaluation.final(exp, state)
  results["step"] = int(state.step)
  writer.write(int(state.step), {k: v for k, v in results.items()
                                 if isinstance(v, (int, float))})
  writer.close()
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  return results
