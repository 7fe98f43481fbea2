"""Linear probe: multinomial logistic regression on frozen features.

The standard linear evaluation protocol of self-supervised learning (e.g.
SimCLR, Chen et al. 2020, section 4; MoCo, He et al. 2020): the encoder is
frozen and a single linear layer is trained on its features with the
cross-entropy loss; its test accuracy measures how linearly separable the
classes are in the representation.

Features are standardised with the training set's mean and standard
deviation. The objective is

    mean_i CE(x_i W + b, y_i) + 0.5 * weight_decay * ||W||^2

(the bias is not penalised), minimised either full-batch with L-BFGS
(`optax.lbfgs` with its zoom line search; the default: deterministic and
converged) or with mini-batch Adam or SGD with momentum for a fixed number of
epochs. With `weight_decay = 1 / (C * N_train)` the objective is
scikit-learn's `LogisticRegression(C=C)` divided by `C * N_train`.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from contrastive import checks
from contrastive.evaluate import _checks

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
Params = dict[str, Array]

# Learning rates used when `learning_rate=None`; L-BFGS takes its step sizes
# from the line search and has no learning rate.
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "sgd": 0.1}


def _sgd(learning_rate: Array, momentum: Array) -> optax.GradientTransformation:
  return optax.sgd(learning_rate, momentum=momentum)


def _adam(
    learning_rate: Array, momentum: Array
) -> optax.GradientTransformation:
  return optax.adam(learning_rate, b1=momentum)


# Mini-batch optimisers by name: (learning_rate, momentum) -> optax optimiser.
# Both arrive as traced scalars, so changing them does not recompile.
MINIBATCH_OPTIMIZERS: dict[
    str, Callable[[Array, Array], optax.GradientTransformation]
] = {"adam": _adam, "sgd": _sgd}
OPTIMIZERS = ("lbfgs",) + tuple(MINIBATCH_OPTIMIZERS)


@dataclasses.dataclass(frozen=True)
class LinearProbeResult:
  """What `linear_probe` returns.

  Attributes:
    train_accuracy: accuracy on the training features, in `[0, 1]`.
    test_accuracy: accuracy on the test features, in `[0, 1]`.
    train_objective: final value of the regularised training objective.
    num_steps: L-BFGS iterations, or mini-batch steps, that were taken.
    weights: `[F, C]` weights acting on the raw (unstandardised) features,
      so that `features @ weights + bias` are the logits; `None` unless
      `return_weights=True`.
    bias: `[C]` bias to go with `weights`; `None` unless asked for.
  """

  train_accuracy: float
  test_accuracy: float
  train_objective: float
  num_steps: int
  weights: np.ndarray | None = None
  bias: np.ndarray | None = None


def _objective(
    params: Params, x: Array, y: Array, weight_decay: Array
) -> Array:
  logits = x @ params["w"] + params["b"]
  ce = optax.losses.softmax_cross_entropy_with_integer_labels(logits, y)
  return jnp.mean(ce) + 0.5 * weight_decay * jnp.sum(params["w"] ** 2)


@functools.partial(jax.jit, static_argnames=("max_steps", "memory_size"))
def _fit_lbfgs(
    params: Params,
    x: Array,
    y: Array,
    weight_decay: Array,
    tolerance: Array,
    *,
    max_steps: int,
    memory_size: int,
) -> tuple[Params, Array]:
  fun = functools.partial(_objective, x=x, y=y, weight_decay=weight_decay)
  solver = optax.lbfgs(memory_size=memory_size)
  value_and_grad = optax.value_and_grad_from_state(fun)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = solver.update(
        grad, state, params, value=value, grad=grad, value_fn=fun
    )
    return optax.apply_updates(params, updates), state

  def keep_going(carry):
    _, state = carry
    count = otu.tree_get(state, "count")
    grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
    return (count == 0) | ((count < max_steps) & (grad_norm >= tolerance))

  params, state = jax.lax.while_loop(
      keep_going, step, (params, solver.init(params))
  )
  return params, otu.tree_get(state, "count")


@functools.partial(
    jax.jit,
    static_argnames=("optimizer", "num_epochs", "batch_size"),
)
def _fit_minibatch(
    params: Params,
    x: Array,
    y: Array,
    weight_decay: Array,
    key: Array,
    learning_rate: Array,
    momentum: Array,
    *,
    optimizer: str,
    num_epochs: int,
    batch_size: int,
) -> Params:
  opt = MINIBATCH_OPTIMIZERS[optimizer](learning_rate, momentum)
  grad_fn = jax.grad(_objective)
  # The last partial batch is dropped; reshuffling each epoch means every
  # example is still used across epochs.
  num_batches = x.shape[0] // batch_size

  def batch_step(carry, idx):
    params, opt_state = carry
    grads = grad_fn(params, x[idx], y[idx], weight_decay)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  def epoch_step(carry, epoch_key):
    order = jax.random.permutation(epoch_key, x.shape[0])
    batches = order[: num_batches * batch_size].reshape(num_batches, -1)
    return jax.lax.scan(batch_step, carry, batches)[0], None

  epoch_keys = jax.random.split(key, num_epochs)
  (params, _), _ = jax.lax.scan(
      epoch_step, (params, opt.init(params)), epoch_keys
  )
  return params


def _accuracy(params: Params, x: Array, y: Array) -> float:
  predictions = jnp.argmax(x @ params["w"] + params["b"], axis=-1)
  # Counted in NumPy: a float32 mean would turn 0.59 into 0.5900000334.
  return float(np.mean(np.asarray(predictions) == np.asarray(y)))


def linear_probe(
    train_features: ArrayLike,
    train_labels: ArrayLike,
    test_features: ArrayLike,
    test_labels: ArrayLike,
    *,
    num_classes: int,
    optimizer: str = "lbfgs",
    weight_decay: float = 1e-4,
    max_steps: int = 200,
    tolerance: float = 1e-5,
    memory_size: int = 10,
    num_epochs: int = 30,
    batch_size: int = 512,
    learning_rate: float | None = None,
    momentum: float = 0.9,
    standardize_eps: float = 1e-6,
    seed: int = 0,
    return_weights: bool = False,
) -> LinearProbeResult:
  """Trains a linear classifier on frozen features; reports its accuracy.

  Args:
    train_features: `[N_train, F]` frozen features of the training set.
    train_labels: `[N_train]` integer labels in `[0, num_classes)`.
    test_features: `[N_test, F]` frozen features of the test set.
    test_labels: `[N_test]` integer labels in `[0, num_classes)`.
    num_classes: number of classes `C`.
    optimizer: `"lbfgs"` (full batch, runs until the gradient norm is below
      `tolerance` or `max_steps` iterations), `"adam"` or `"sgd"` (mini-batch
      with momentum, `num_epochs` epochs of reshuffled batches).
    weight_decay: coefficient of `0.5 * ||W||^2` added to the mean
      cross-entropy; `>= 0`. Some decay keeps L-BFGS finite on separable data.
    max_steps: L-BFGS iteration limit.
    tolerance: L-BFGS stops once the gradient norm falls below it.
    memory_size: number of past updates L-BFGS keeps.
    num_epochs: passes over the training set for Adam/SGD.
    batch_size: Adam/SGD batch size (capped at `N_train`; the last partial
      batch of each epoch is dropped).
    learning_rate: Adam/SGD step size; `None` picks
      `DEFAULT_LEARNING_RATES[optimizer]` (Adam 1e-3, SGD 0.1).
    momentum: SGD momentum, or Adam's `b1`; in `[0, 1)`.
    standardize_eps: features whose training standard deviation is below this
      are only centred (not divided), so constant features stay finite.
    seed: seeds the Adam/SGD shuffling; L-BFGS starts from zeros and is
      deterministic whatever the seed.
    return_weights: also return the weights and bias, folded back so that
      they act on the raw features.

  Returns:
    A `LinearProbeResult`.

  Example:
    >>> x = jnp.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
    >>> y = jnp.array([0, 0, 1, 1])
    >>> linear_probe(x, y, x, y, num_classes=2).test_accuracy
    1.0
  """
  _checks.check_features("train_features", train_features)
  _checks.check_features("test_features", test_features)
  checks.check_same_feature_dim(
      "train_features", train_features, "test_features", test_features
  )
  _checks.check_int_at_least("num_classes", num_classes, 1)
  _checks.check_labels(
      "train_labels", train_labels, jnp.shape(train_features)[0], num_classes
  )
  _checks.check_labels(
      "test_labels", test_labels, jnp.shape(test_features)[0], num_classes
  )
  if optimizer not in OPTIMIZERS:
    raise ValueError(
        f"Unknown optimizer {optimizer!r}; valid values are:"
        f" {', '.join(OPTIMIZERS)}."
    )
  _checks.check_non_negative("weight_decay", weight_decay)
  _checks.check_non_negative("standardize_eps", standardize_eps)

  x_train = jnp.asarray(train_features, jnp.float32)
  x_test = jnp.asarray(test_features, jnp.float32)
  y_train = jnp.asarray(train_labels, jnp.int32)
  y_test = jnp.asarray(test_labels, jnp.int32)
  mean = jnp.mean(x_train, axis=0)
  std = jnp.std(x_train, axis=0)
  scale = jnp.where(std < standardize_eps, 1.0, std)
  x_train = (x_train - mean) / scale
  x_test = (x_test - mean) / scale

  num_features = x_train.shape[1]
  params = {
      "w": jnp.zeros((num_features, num_classes), jnp.float32),
      "b": jnp.zeros((num_classes,), jnp.float32),
  }
  decay = jnp.asarray(weight_decay, jnp.float32)
  if optimizer == "lbfgs":
    _checks.check_int_at_least("max_steps", max_steps, 1)
    _checks.check_int_at_least("memory_size", memory_size, 1)
    _checks.check_non_negative("tolerance", tolerance)
    params, num_steps = _fit_lbfgs(
        params, x_train, y_train, decay, jnp.asarray(tolerance, jnp.float32),
        max_steps=int(max_steps), memory_size=int(memory_size),
    )
    num_steps = int(num_steps)
  else:
    _checks.check_int_at_least("num_epochs", num_epochs, 1)
    _checks.check_int_at_least("batch_size", batch_size, 1)
    if learning_rate is None:
      learning_rate = DEFAULT_LEARNING_RATES[optimizer]
    _checks.check_positive("learning_rate", learning_rate)
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f"momentum must lie in [0, 1), got {momentum}.")
    batch_size = min(int(batch_size), x_train.shape[0])
    params = _fit_minibatch(
        params, x_train, y_train, decay, jax.random.key(seed),
        jnp.asarray(learning_rate, jnp.float32),
        jnp.asarray(momentum, jnp.float32),
        optimizer=optimizer, num_epochs=int(num_epochs), batch_size=batch_size,
    )
    num_steps = int(num_epochs) * (x_train.shape[0] // batch_size)

  objective = float(_objective(params, x_train, y_train, decay))
  if not np.isfinite(objective):
    raise ValueError(
        f"The linear probe diverged (training objective {objective}); lower"
        " learning_rate or raise weight_decay."
    )
  weights = bias = None
  if return_weights:
    weights = np.asarray(params["w"] / scale[:, None])
    bias = np.asarray(params["b"] - (mean / scale) @ params["w"])
  return LinearProbeResult(
      train_accuracy=_accuracy(params, x_train, y_train),
      test_accuracy=_accuracy(params, x_test, y_test),
      train_objective=objective,
      num_steps=num_steps,
      weights=weights,
      bias=bias,
  )
