"""MCL on planted clusters: stage 2 learns the factor stage 1 suppressed.

Synthetic vectors carry two independent 4-way factors: A (dominant, centres
on a circle of radius 4 in dims 0-1) and B (radius 1.5 in dims 2-3), plus
noise; views add Gaussian noise. A tiny MLP with a 2-d output has room for
one factor. Stage 1 (NT-Xent, in-batch negatives) learns A; k-means on its
outputs recovers A; stage 2 (a fresh MLP) draws negatives only from the
anchor's stage-1 cluster, where A is constant, so it must learn B. The
concatenated representation then separates B far better than stage 1's,
and A as well. Library pieces: `losses.infonce`, `clustering.stages`,
`negatives.kmeans` (the train loop's schedule is tested in test_mcl_train).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from contrastive import losses
from contrastive.clustering import stages
from contrastive.negatives import kmeans as kmeans_lib

N, D, BATCH, STEPS, K = 1024, 16, 128, 200, 4


def _planted_data():
  r = np.random.default_rng(0)
  a, b = r.integers(0, K, N), r.integers(0, K, N)
  angle = np.pi / 2 * np.arange(K)
  x = r.normal(0, 0.5, (N, D)).astype(np.float32)
  x[:, 0] += 4 * np.cos(angle[a])
  x[:, 1] += 4 * np.sin(angle[a])
  x[:, 2] += 1.5 * np.cos(angle[b])
  x[:, 3] += 1.5 * np.sin(angle[b])
  return x, a, b


class _MLP(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(nn.relu(nn.Dense(32)(x)))


_MODEL, _TX = _MLP(), optax.adam(1e-2)


@jax.jit
def _step(params, opt_state, rng, x, mcl, index):
  """One NT-Xent step with MCL's mask; also counts allowed pairs whose
  stage-1 clusters differ (must be 0 in stage 2)."""
  ids = stages.stage_ids(mcl, index)
  mask, fell_back = stages.restricted_mask(
      ids, ids, ~jnp.eye(index.shape[0], dtype=bool), min_negatives=1)
  r1, r2 = jax.random.split(rng)
  v1 = x + 0.5 * jax.random.normal(r1, x.shape)
  v2 = x + 0.5 * jax.random.normal(r2, x.shape)

  def loss_fn(p):
    return losses.infonce(_MODEL.apply(p, v1), _MODEL.apply(p, v2),
                          temperature=0.2, negative_mask=mask)[0]

  grads = jax.grad(loss_fn)(params)
  updates, opt_state = _TX.update(grads, opt_state, params)
  finished = mcl.stage > 1
  first = mcl.assignments[index, 0]
  crossing = mask & (first[:, None] != first[None, :]) & finished
  return (optax.apply_updates(params, updates), opt_state,
          jnp.sum(crossing) + jnp.sum(fell_back & finished))


def _train_stage(x, mcl, seed):
  params = _MODEL.init(jax.random.PRNGKey(seed), x[:1])
  opt_state, rng = _TX.init(params), jax.random.PRNGKey(100 + seed)
  order = np.random.default_rng(seed)
  violations = 0
  for _ in range(STEPS):
    index = order.choice(N, BATCH, replace=False)
    rng, sub = jax.random.split(rng)
    params, opt_state, bad = _step(params, opt_state, sub, x[index], mcl,
                                   jnp.asarray(index))
    violations += int(bad)
  return params, violations


def _knn_accuracy(features, labels, k=10):
  """Cosine kNN, trained on the first half, tested on the second."""
  u = features / np.linalg.norm(features, axis=1, keepdims=True)
  train, test = slice(0, N // 2), slice(N // 2, N)
  nearest = np.argsort(-(u[test] @ u[train].T), axis=1)[:, :k]
  votes = labels[train][nearest]
  predicted = np.array([np.bincount(v, minlength=K).argmax() for v in votes])
  return float(np.mean(predicted == labels[test]))


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_stage_two_learns_the_suppressed_factor():
  x, a, b = _planted_data()
  template = {"params": _MODEL.init(jax.random.PRNGKey(0), x[:1])["params"]}
  mcl = stages.init_mcl_state(N, 2, template)
  params1, violations1 = _train_stage(x, mcl, seed=1)
  out1 = np.asarray(_MODEL.apply(params1, x))
  clusters = np.asarray(kmeans_lib.kmeans(
      jax.random.PRNGKey(0), out1, K, spherical=True).assignments)
  # Stage 1 learned the dominant factor: its clusters are A's values.
  purity = sum(np.bincount(a[clusters == c]).max()
               for c in np.unique(clusters)) / N
  assert purity > 0.95
  mcl = stages.record_stage(mcl, clusters, {"params": params1["params"]})
  params2, violations2 = _train_stage(x, mcl, seed=2)
  assert violations1 == 0 and violations2 == 0  # negatives within clusters
  out2 = np.asarray(_MODEL.apply(params2, x))
  concat = np.concatenate([_unit(out1), _unit(out2)], axis=1)
  stage1_b, concat_b = _knn_accuracy(out1, b), _knn_accuracy(concat, b)
  stage1_a, concat_a = _knn_accuracy(out1, a), _knn_accuracy(concat, a)
  print(f"kNN accuracy, factor A: stage 1 {stage1_a:.3f}, concat"
        f" {concat_a:.3f}; factor B: stage 1 {stage1_b:.3f}, concat"
        f" {concat_b:.3f}")
  assert stage1_a > 0.95 and concat_a > 0.95
  assert concat_b > stage1_b + 0.2           # measured: ~0.55 -> ~0.85
  assert concat_b > 0.7
