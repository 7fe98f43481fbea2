"""The training step: a module-level pure function of (state, batch).

`train_step` takes everything it depends on through `deps`, a frozen
dataclass of static objects (the model, the optimizer, the augmentation, the
objective), so that `jax.jit(functools.partial(train_step, deps=deps))`
compiles one program for the global batch. Augmentation runs inside the step,
on device, from the state's rng: a resumed run replays the same views.

Method state beyond the encoders and the queue lives in `state.extra`: a
stateful loss's state under 'loss' (updated here after each step), and
whatever a `restrict_negatives` rule reads (e.g. MCL's cluster assignments
under 'mcl', changed between steps by the train loop's hooks).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from contrastive.augment import make_views
from contrastive.negatives import masks
from contrastive.negatives import queue as queue_lib
from contrastive.train.methods import Method
from contrastive.train.objectives import Objective, Projections
from contrastive.train.state import TrainState

Array = jax.Array
# (extra, batch, queue or None, base_mask) -> (negative_mask, metrics).
NegativeRule = Callable[..., tuple[Array, dict[str, Array]]]


@dataclasses.dataclass(frozen=True)
class StepDeps:
  """The static dependencies of `train_step`.

  Attributes:
    model: the Flax module (`contrastive.models.build_model`).
    tx: the optax optimizer.
    augment: the per-example augmentation (`contrastive.augment`).
    objective: the loss bound to its hyperparameters.
    method: the method's row of `contrastive.train.methods.METHODS`: where
      the negatives come from, and whether the state carries a momentum
      encoder and a queue.
    spec_transform: per-example spectrogram augmentation for audio models
      (applied inside the model, after its log-mel front end), or None.
    momentum: step -> EMA coefficient of the momentum encoder (MoCo), or None.
    num_views: views per example.
    use_predictor: use the online model's `prediction` output as the queries
      (MoCo v3 / BYOL-style asymmetric heads).
    restrict_negatives: optional rule `(extra, batch, queue, base_mask) ->
      (negative_mask, metrics)` that narrows the negatives from state
      (`state.extra`); `base_mask` is what the method allows without it
      (`[b, b]` not-self in-batch, `[K]` valid rows for a queue), `queue` is
      None in in-batch mode. The objective must use `negative_mask`.
  """

  model: nn.Module
  tx: optax.GradientTransformation
  augment: Any
  objective: Objective
  method: Method
  spec_transform: Callable[..., Array] | None = None
  momentum: Callable[[Array], Array] | None = None
  num_views: int = 2
  use_predictor: bool = False
  restrict_negatives: NegativeRule | None = None


def _forward(deps: StepDeps, params, batch_stats, x, rng, train: bool):
  """Applies the model to `[m, ...]` inputs; returns (outputs, batch_stats)."""
  variables = {"params": params}
  if batch_stats:
    variables["batch_stats"] = batch_stats
  kwargs = {}
  if deps.spec_transform is not None:
    kwargs["spec_transform"] = deps.spec_transform
  spec_rng, dropout_rng = jax.random.split(rng)
  rngs = {"spec_augment": spec_rng, "dropout": dropout_rng}
  if train and batch_stats:
    outputs, updates = deps.model.apply(
        variables, x, train=True, mutable=["batch_stats"], rngs=rngs,
        **kwargs)
    return outputs, updates["batch_stats"]
  outputs = deps.model.apply(variables, x, train=train, rngs=rngs, **kwargs)
  return outputs, batch_stats


def _split_views(x: Array, num_views: int) -> Array:
  return x.reshape((num_views, x.shape[0] // num_views) + x.shape[1:])


def _negatives(state: TrainState, batch: Mapping[str, Array], deps: StepDeps):
  """The queue (or None: in-batch), its `negative_mask`, and rule metrics."""
  b = batch["x"].shape[0]
  negatives = negative_mask = queue = None
  if deps.method.queue:
    queue = state.queue
    negatives = queue.keys
    negative_mask = queue_lib.queue_negative_mask(queue, num_anchors=b)
  if deps.restrict_negatives is None:
    return negatives, negative_mask, {}
  base = (queue_lib.queue_negative_mask(queue) if queue is not None
          else ~jnp.eye(b, dtype=bool))
  negative_mask, metrics = deps.restrict_negatives(
      state.extra, batch, queue, base)
  return negatives, negative_mask, metrics


def train_step(
    state: TrainState, batch: Mapping[str, Array],
    hparams: Mapping[str, Any] | None = None, *, deps: StepDeps
) -> tuple[TrainState, dict[str, Array]]:
  """One optimizer step on a global batch.

  Args:
    state: the train state.
    batch: the global batch, `{'x': [b, ...], 'label': [b], ...}`.
    hparams: None (the hyperparameters bound in `deps`), or hyperparameters
      given as (traced) arrays, so that one compiled step serves members of
      a population that differ in them (`contrastive.train.population`):
      `{'loss': {name: value}}` replaces loss hyperparameters, and
      `'learning_rate_scale'` multiplies the optimizer's updates (for
      SGD, LARS, Adam and AdamW, the same as multiplying the learning rate).
    deps: the static dependencies (bind with functools.partial).

  Returns:
    The new state and a dict of scalar metrics (loss, the loss's aux, the
    learning-rate-free gradient norm, and the EMA coefficient for MoCo).
  """
  rng, view_rng, model_rng, key_rng = jax.random.split(state.rng, 4)
  views = make_views(view_rng, batch["x"], deps.augment,
                     num_views=deps.num_views)              # [v, b, ...]
  flat_views = views.reshape((-1,) + views.shape[2:])       # [v * b, ...]

  momentum_proj = None
  momentum_batch_stats = state.momentum_batch_stats
  if deps.method.momentum_encoder:
    key_out, momentum_batch_stats = _forward(
        deps, state.momentum_params, state.momentum_batch_stats, flat_views,
        key_rng, train=True)
    momentum_proj = jax.lax.stop_gradient(
        _split_views(key_out["projection"], deps.num_views))

  negatives, negative_mask, rule_metrics = _negatives(state, batch, deps)
  loss_state = state.extra.get("loss")
  loss_kwargs = {} if loss_state is None else {"state": loss_state}
  if deps.objective.uses_rng:
    # A stream of its own (not a fifth split), so that runs without sampling
    # keep the random numbers they had.
    loss_kwargs["rng"] = jax.random.fold_in(state.rng, 1)

  def loss_fn(params):
    out, new_batch_stats = _forward(deps, params, state.batch_stats,
                                    flat_views, model_rng, train=True)
    head = "prediction" if deps.use_predictor else "projection"
    proj = Projections(online=_split_views(out[head], deps.num_views),
                       momentum=momentum_proj)
    loss, aux = deps.objective(proj, batch, negatives=negatives,
                               negative_mask=negative_mask,
                               hparams=(hparams or {}).get("loss"),
                               **loss_kwargs)
    return loss, (aux, new_batch_stats, proj.online)

  (loss, (aux, batch_stats, online)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = deps.tx.update(grads, state.opt_state, state.params)
  if hparams is not None and "learning_rate_scale" in hparams:
    scale = hparams["learning_rate_scale"]
    updates = jax.tree.map(lambda u: u * scale.astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)

  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux,
             **rule_metrics}
  new_fields = dict(step=state.step + 1, params=params,
                    batch_stats=batch_stats, opt_state=opt_state, rng=rng)
  if loss_state is not None:
    new_fields["extra"] = {
        **state.extra,
        "loss": deps.objective.update_state(
            loss_state, Projections(online=online, momentum=momentum_proj))}
  if deps.method.momentum_encoder:
    m = deps.momentum(state.step)
    new_fields["momentum_params"] = jax.tree.map(
        lambda k, q: m * k + (1.0 - m) * q, state.momentum_params, params)
    new_fields["momentum_batch_stats"] = momentum_batch_stats
    metrics["ema_momentum"] = m
  if deps.method.queue:
    # Keys of the second view are the next negatives (MoCo: the keys that
    # were the positives of this step), in the global batch's order.
    metrics["queue_false_negative_rate"] = masks.false_negative_rate(
        batch["label"], state.queue.metadata["label"], state.queue.valid)
    new_fields["queue"] = queue_lib.enqueue(
        state.queue, momentum_proj[1],
        **{k: batch[k] for k in state.queue.metadata})
  return state.replace(**new_fields), metrics
