"""SimANS probabilities vs the formula in NumPy, and sampling statistics."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.negatives import simans


def _data(seed, n=4, k=12, d=5):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(n, d)).astype(np.float32)
  pos = (q + 0.5 * rng.normal(size=(n, d))).astype(np.float32)
  cand = rng.normal(size=(k, d)).astype(np.float32)
  return q, pos, cand


def _np_probs(q, pos, cand, a, b, top_n=None, mask=None):
  """p_ij ∝ exp(-a (s_ij - s_i+ - b)^2) over allowed, top_n candidates."""
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  q, pos, cand = unit(q).astype(np.float64), unit(pos), unit(cand)
  n, k = q.shape[0], cand.shape[0]
  mask = np.broadcast_to(True if mask is None else mask, (n, k))
  probs = np.zeros((n, k))
  for i in range(n):
    s = cand @ q[i]
    sp = q[i] @ pos[i]
    allowed = [j for j in np.argsort(-s, kind="stable") if mask[i, j]]
    if top_n is not None:
      allowed = allowed[:top_n]
    for j in allowed:
      probs[i, j] = np.exp(-a * (s[j] - sp - b) ** 2)
    if probs[i].sum() > 0:
      probs[i] /= probs[i].sum()
  return probs


@pytest.mark.parametrize(
    "a,b,top_n", [(0.5, 0.0, None), (5.0, 0.1, None), (20.0, -0.2, 6)]
)
def test_probabilities_match_formula(a, b, top_n):
  q, pos, cand = _data(0)
  mask = np.random.default_rng(1).random((4, 12)) > 0.25
  got = simans.simans_probabilities(
      q, pos, cand, a=a, b=b, top_n=top_n, mask=mask
  )
  want = _np_probs(q, pos, cand, a, b, top_n, mask)
  np.testing.assert_allclose(got, want, atol=1e-6)
  np.testing.assert_allclose(np.sum(got, 1), 1.0, rtol=1e-5)


def test_limits_and_log_weights():
  q, pos, cand = _data(2)
  # a = 0: uniform over the allowed candidates.
  valid = np.arange(12) % 3 != 0
  got = simans.simans_probabilities(q, pos, cand, a=0.0, mask=valid)
  uniform = np.broadcast_to(valid / valid.sum(), (4, 12))
  np.testing.assert_allclose(got, uniform, atol=1e-7)
  # The mode is the candidate whose score is nearest s(q, d+) + b.
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  s = unit(q) @ unit(cand).T
  sp = np.sum(unit(q) * unit(pos), 1, keepdims=True)
  got = simans.simans_probabilities(q, pos, cand, a=50.0, b=0.05)
  np.testing.assert_array_equal(
      np.argmax(got, 1), np.argmin(np.abs(s - sp - 0.05), 1)
  )
  log_w = simans.simans_log_weights(q, pos, cand, a=2.0, b=0.0, mask=valid)
  np.testing.assert_allclose(
      np.where(valid, log_w, 0.0),
      np.where(valid, -2.0 * (s - sp) ** 2, 0.0),
      atol=1e-5,
  )
  assert np.all(np.isneginf(np.asarray(log_w)[:, ~valid]))
  # No allowed candidate: zeros, never NaN.
  none = simans.simans_probabilities(q, pos, cand, mask=np.zeros(12, bool))
  np.testing.assert_array_equal(none, 0.0)


def test_sampling_frequencies_match_probabilities():
  # 4,000 copies of one query -> 4,000 independent draws from one key. The
  # seed is fixed, so the test is deterministic; the bound is ~5 sigma.
  q, pos, cand = _data(11, n=1, k=8)
  reps = 4000
  qs, ps = np.repeat(q, reps, 0), np.repeat(pos, reps, 0)
  sample = jax.jit(simans.simans_sample, static_argnums=4, static_argnames="a")
  probs = _np_probs(q, pos, cand, 1.0, 0.0)[0]
  first = sample(jax.random.key(0), qs, ps, cand, 1, a=1.0)
  freq = np.bincount(np.asarray(first.indices[:, 0]), minlength=8) / reps
  bound = 5 * np.sqrt(probs * (1 - probs) / reps) + 1e-3
  assert np.all(np.abs(freq - probs) <= bound), (freq, probs)
  # Two draws without replacement:
  # P(i included) = p_i + sum_{j != i} p_j p_i / (1 - p_j).
  two = sample(jax.random.key(1), qs, ps, cand, 2, a=1.0)
  idx = np.asarray(two.indices)
  assert np.all(idx[:, 0] != idx[:, 1])
  incl = np.array([
      probs[i]
      + sum(probs[j] * probs[i] / (1 - probs[j]) for j in range(8) if j != i)
      for i in range(8)
  ])
  freq2 = np.bincount(idx.ravel(), minlength=8) / reps
  bound2 = 5 * np.sqrt(incl * (1 - incl) / reps) + 1e-3
  assert np.all(np.abs(freq2 - incl) <= bound2), (freq2, incl)


def test_masked_and_out_of_top_n_never_sampled():
  q, pos, cand = _data(4, n=300, k=12)
  mask = np.random.default_rng(5).random((300, 12)) > 0.4
  out = simans.simans_sample(
      jax.random.key(2), q, pos, cand, 3, a=0.0, top_n=5, mask=mask
  )
  eligible = _np_probs(q, pos, cand, 0.0, 0.0, 5, mask) > 0
  idx, valid = np.asarray(out.indices), np.asarray(out.valid)
  for i in range(300):
    picked = idx[i][valid[i]]
    assert eligible[i, picked].all()
    assert len(set(picked)) == len(picked) == min(3, eligible[i].sum())
  assert np.all(idx[~valid] == -1)
  np.testing.assert_allclose(
      out.probabilities, _np_probs(q, pos, cand, 0.0, 0.0, 5, mask), atol=1e-6
  )


def test_determinism_and_fewer_than_num_samples():
  q, pos, cand = _data(6)
  a = simans.simans_sample(jax.random.key(7), q, pos, cand, 4)
  b = simans.simans_sample(jax.random.key(7), q, pos, cand, 4)
  c = simans.simans_sample(jax.random.key(8), q, pos, cand, 4)
  np.testing.assert_array_equal(a.indices, b.indices)
  assert not np.array_equal(a.indices, c.indices)
  mask = np.zeros((4, 12), bool)
  mask[:, :2] = True
  few = simans.simans_sample(jax.random.key(7), q, pos, cand, 4, mask=mask)
  np.testing.assert_array_equal(few.valid, [[True, True, False, False]] * 4)
  first_two = np.sort(np.asarray(few.indices)[:, :2], 1)
  np.testing.assert_array_equal(first_two, [[0, 1]] * 4)


def test_vmap_and_no_gradient():
  q, pos, cand = _data(9, n=6)
  qs, ps = q.reshape(2, 3, 5), pos.reshape(2, 3, 5)
  got = jax.vmap(
      lambda x, y: simans.simans_probabilities(x, y, cand, a=1.0)
  )(qs, ps)
  np.testing.assert_allclose(
      np.asarray(got).reshape(6, 12),
      _np_probs(q, pos, cand, 1.0, 0.0),
      atol=1e-6,
  )
  grad = jax.grad(
      lambda x: jnp.sum(simans.simans_probabilities(x, pos, cand)[:, 0])
  )(q)
  np.testing.assert_array_equal(grad, 0.0)


def test_errors():
  q, pos, cand = _data(10)
  with pytest.raises(ValueError, match="positive"):
    simans.simans_probabilities(q, pos[:2], cand)
  with pytest.raises(ValueError, match="a must be"):
    simans.simans_probabilities(q, pos, cand, a=-1.0)
  with pytest.raises(ValueError, match="top_n"):
    simans.simans_probabilities(q, pos, cand, top_n=13)
  with pytest.raises(ValueError, match="num_samples"):
    simans.simans_sample(jax.random.key(0), q, pos, cand, 13)
  with pytest.raises(ValueError, match="mask"):
    simans.simans_probabilities(q, pos, cand, mask=np.ones((4, 11), bool))
