"""InfoNCE over SimANS-drawn negatives against a NumPy InfoNCE written from
the formula on the drawn sets, and the draws against the SimANS scores."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import losses
from contrastive.losses.simans import sampled_mask
from contrastive.negatives import simans
from tests.losses.numeric import numeric_grad

KEY = jax.random.key(3)


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _data(seed, n=6, d=5, k=20):
  rng = np.random.default_rng(seed)
  z1 = rng.normal(size=(n, d))
  z2 = z1 + 0.7 * rng.normal(size=(n, d))
  queue = rng.normal(size=(k, d))
  return [np.asarray(a, np.float32) for a in (z1, z2, queue)]


def _np_simclr(z1, z2, drawn, t):
  """SimCLR InfoNCE over 2n anchors; anchor i (either view) has as negatives
  both views of the samples j with drawn[i, j]."""
  u1, u2 = _unit(z1), _unit(z2)
  n, total = len(u1), 0.0
  for i in range(n):
    for anchor, positive in ((u1[i], u2[i]), (u2[i], u1[i])):
      pos = np.exp(anchor @ positive / t)
      neg = sum(np.exp(anchor @ u[j] / t)
                for j in range(n) if drawn[i, j] for u in (u1, u2))
      total += -np.log(pos / (pos + neg))
  return total / (2 * n)


def _np_moco(q, k, queue, drawn, t):
  uq, uk, ub = _unit(q), _unit(k), _unit(queue)
  total = 0.0
  for i in range(len(uq)):
    pos = np.exp(uq[i] @ uk[i] / t)
    neg = sum(np.exp(uq[i] @ ub[j] / t)
              for j in range(len(ub)) if drawn[i, j])
    total += -np.log(pos / (pos + neg))
  return total / len(uq)


def _drawn(z1, z2, candidates, num_samples, mask, **kw):
  sample = simans.simans_sample(KEY, z1, z2, candidates, num_samples,
                                mask=mask, **kw)
  return np.asarray(sampled_mask(sample, len(candidates)))


@pytest.mark.parametrize("queue_mode", [False, True])
def test_loss_and_gradient_match_numpy_on_the_drawn_negatives(queue_mode):
  z1, z2, queue = _data(0)
  t, m, kw = 0.3, 3, dict(a=4.0, b=0.05, top_n=10)
  n = len(z1)
  if queue_mode:
    mask = np.random.default_rng(1).random((n, len(queue))) > 0.2
    drawn = _drawn(z1, z2, queue, m, mask, **kw)
    loss_fn = lambda x: losses.simans_infonce(
        x, z2, KEY, temperature=t, num_samples=m, negatives=queue,
        negative_mask=mask, **kw)
    reference = lambda x: _np_moco(x, z2, queue, drawn, t)
  else:
    mask = ~np.eye(n, dtype=bool) & (np.random.default_rng(1).random((n, n))
                                    > 0.2)
    drawn = _drawn(z1, z2, z2, m, mask, top_n=4, a=kw["a"], b=kw["b"])
    loss_fn = lambda x: losses.simans_infonce(
        x, z2, KEY, temperature=t, num_samples=m, negative_mask=mask,
        top_n=4, a=kw["a"], b=kw["b"])
    reference = lambda x: _np_simclr(x, z2, drawn, t)
  # The draws: num_samples per anchor, all allowed, never the anchor itself.
  assert np.all(drawn.sum(1) == m) and not np.any(drawn & ~mask)
  loss, aux = loss_fn(z1)
  np.testing.assert_allclose(loss, reference(z1), rtol=1e-5)
  assert aux["simans_valid_frac"] == 1.0 and aux["num_negatives"] == (
      m if queue_mode else 2 * m)
  # No gradient through the draw: the gradient is InfoNCE's on the drawn set.
  grad = jax.grad(lambda x: loss_fn(x)[0])(z1)
  np.testing.assert_allclose(grad, numeric_grad(reference, z1), rtol=1e-3,
                             atol=1e-5)


def test_top_n_draws_are_the_most_similar_and_large_a_the_nearest_score():
  """With num_samples = top_n the draw is the top_n most similar keys; with
  one draw and a large a, the key whose score is nearest s+ + b."""
  z1, z2, queue = _data(4, n=5, k=30)
  uq, uk, ub = _unit(z1), _unit(z2), _unit(queue)
  s = uq @ ub.T
  top = _drawn(z1, z2, queue, 7, None, top_n=7, a=3.0)
  for i in range(len(z1)):
    assert set(np.flatnonzero(top[i])) == set(np.argsort(-s[i])[:7])
  b = -0.3
  near = _drawn(z1, z2, queue, 1, None, a=1e5, b=b)
  target = np.sum(uq * uk, 1) + b
  np.testing.assert_array_equal(np.argmax(near, 1),
                                np.argmin(np.abs(s - target[:, None]), 1))


@pytest.mark.parametrize("queue_mode", [False, True])
def test_drawing_every_candidate_is_infonce(queue_mode):
  z1, z2, queue = _data(5)
  kw = dict(negatives=queue) if queue_mode else {}
  m = len(queue) if queue_mode else len(z1) - 1
  got, _ = losses.simans_infonce(z1, z2, KEY, temperature=0.2,
                                 num_samples=m, a=2.0, **kw)
  want, _ = losses.infonce(z1, z2, temperature=0.2, **kw)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_too_few_candidates_leave_invalid_draws():
  """A queue whose mask allows 2 rows for 4 draws: 2 valid draws each."""
  z1, z2, queue = _data(6, n=3, k=8)
  mask = np.zeros((3, 8), bool)
  mask[:, :2] = True
  loss, aux = losses.simans_infonce(
      z1, z2, KEY, temperature=0.5, num_samples=4, negatives=queue,
      negative_mask=mask)
  assert aux["simans_valid_frac"] == 0.5 and aux["num_negatives"] == 2
  want = _np_moco(z1, z2, queue, mask, 0.5)
  np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_jit_vmap_and_the_key():
  z1, z2, queue = _data(7)
  fn = lambda a, b, key: losses.simans_infonce(
      a, b, key, temperature=0.2, num_samples=4, negatives=queue, a=5.0)[0]
  keys = jax.random.split(KEY, 3)
  batch1, batch2 = np.stack([z1] * 3), np.stack([z2] * 3)
  got = jax.vmap(jax.jit(fn))(batch1, batch2, keys)
  want = [fn(z1, z2, key) for key in keys]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert len(set(np.round(np.asarray(want), 6))) > 1  # keys draw differently


def test_errors():
  z1, z2, queue = _data(8, n=4)
  with pytest.raises(ValueError, match=r"num_samples must lie in \[1, 3\]"):
    losses.simans_infonce(z1, z2, KEY, temperature=0.2, num_samples=4)
  with pytest.raises(ValueError, match=r"num_samples must lie in \[1, 20\]"):
    losses.simans_infonce(z1, z2, KEY, temperature=0.2, num_samples=0,
                          negatives=queue)
  with pytest.raises(ValueError, match="negative_mask must have shape"):
    losses.simans_infonce(z1, z2, KEY, temperature=0.2, num_samples=2,
                          negatives=queue,
                          negative_mask=jnp.ones((4, 4), bool))
  with pytest.raises(ValueError, match="temperature"):
    losses.simans_infonce(z1, z2, KEY, temperature=0.0, num_samples=2)
  with pytest.raises(ValueError, match="a must be >= 0"):
    losses.simans_infonce(z1, z2, KEY, temperature=0.2, num_samples=2,
                          a=-1.0)
