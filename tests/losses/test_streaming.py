"""The streamed log-sum-exp engine against NumPy and against its dense form."""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses import streaming
from tests.losses.numeric import numeric_grad


# ----------------------------------------------------------------------------
# Independent reference, float64.


def ref_log_sums(anchors, bank, scales, mask=None, floor=None):
  """[S, m] log sum over allowed j of exp(scale * <a_i, b_j>); -inf if none."""
  sims = np.asarray(anchors, np.float64) @ np.asarray(bank, np.float64).T
  allowed = np.ones(sims.shape, bool) if mask is None else np.array(mask)
  if floor is not None:
    allowed &= sims >= np.asarray(floor)[:, None]
  out = np.full((len(scales), len(sims)), -np.inf)
  for s, scale in enumerate(np.asarray(scales, np.float64)):
    for i in range(len(sims)):
      if allowed[i].any():
        out[s, i] = np.log(np.sum(np.exp(scale * sims[i][allowed[i]])))
  return out


def _problem(m=3, k=7, d=4, seed=0):
  rng = np.random.default_rng(seed)
  anchors = rng.normal(size=(m, d))
  anchors /= np.linalg.norm(anchors, axis=1, keepdims=True)
  bank = rng.normal(size=(k, d))
  bank /= np.linalg.norm(bank, axis=1, keepdims=True)
  mask = rng.random((m, k)) < 0.6
  mask[0] = False  # an anchor with no allowed entry
  mask[1, :2] = True
  return anchors, bank, np.array([2.0, 0.5]), mask


# Weights of the scalar objective, so that each (scale, anchor) output matters.
_WEIGHTS = np.array([[1.0, -0.5, 2.0], [0.3, 1.5, -1.0]])


def _objective(log_sums):
  return jnp.sum(jnp.where(jnp.isfinite(log_sums), log_sums, 0.0) * _WEIGHTS)


def _ref_objective(*args, **kwargs):
  out = ref_log_sums(*args, **kwargs)
  return float(np.sum(np.where(np.isfinite(out), out, 0.0) * _WEIGHTS))


# (streaming, chunk_size): chunks of 3 pad k = 7 to 9; chunks of 1 are the
# extreme; 16 > k is a single chunk.
_FORMS = ((False, 3), (True, 3), (True, 1), (True, 16))


@jax.jit
def _run(anchors, bank, scales, mask, floor):
  """For each of _FORMS: ((objective, NegativeSums), grads), one program."""
  results = []
  for use_streaming, chunk_size in _FORMS:
    def fn(a, b, s):
      out = streaming.negative_log_sums(a, b, s, mask=mask, floor=floor,
                                        streaming=use_streaming,
                                        chunk_size=chunk_size)
      return _objective(out.log_sums), out
    results.append(jax.value_and_grad(fn, argnums=(0, 1, 2), has_aux=True)(
        anchors, bank, scales))
  return results


def _f32(*xs):
  return tuple(None if x is None else jnp.asarray(x) for x in xs)


# ----------------------------------------------------------------------------
# Values and gradients.


@pytest.mark.parametrize("use_mask, use_floor", [(False, False), (True, False),
                                                 (True, True)])
def test_dense_and_streamed_match_reference(use_mask, use_floor):
  anchors, bank, scales, mask = _problem()
  mask = mask if use_mask else None
  floor = np.array([-0.2, 0.1, -1.0]) if use_floor else None
  want = ref_log_sums(anchors, bank, scales, mask, floor)
  ref = lambda a, b, s: _ref_objective(a, b, s, mask, floor)
  want_grads = (numeric_grad(lambda x: ref(x, bank, scales), anchors),
                numeric_grad(lambda x: ref(anchors, x, scales), bank),
                numeric_grad(lambda x: ref(anchors, bank, x), scales))
  for (_, out), grads in _run(*_f32(anchors, bank, scales, mask, floor)):
    np.testing.assert_allclose(out.log_sums, want, rtol=1e-5)
    for got, exp in zip(grads, want_grads):
      np.testing.assert_allclose(got, exp, atol=2e-5, rtol=1e-4)
    sims = anchors @ bank.T
    allowed = np.ones(sims.shape, bool) if mask is None else mask.copy()
    if floor is not None:
      allowed &= sims >= floor[:, None]
    np.testing.assert_allclose(out.count, allowed.sum(1))
    for i in range(3):
      if allowed[i].any():
        np.testing.assert_allclose(out.sim_mean[i], sims[i][allowed[i]].mean(),
                                   atol=1e-6)
        np.testing.assert_allclose(out.sim_max[i], sims[i][allowed[i]].max(),
                                   atol=1e-6)
      else:
        assert out.sim_max[i] == -np.inf and out.sim_mean[i] == 0.0


def test_empty_rows_are_minus_inf_with_zero_gradient():
  anchors, bank, scales, _ = _problem()
  mask = jnp.zeros((3, 7), bool)
  for (_, out), grads in _run(*_f32(anchors, bank, scales), mask, None):
    assert np.all(out.log_sums == -np.inf)
    for grad in grads:
      np.testing.assert_array_equal(grad, 0.0)


def test_gradient_with_respect_to_one_input_only():
  # The backward pass skips the products of inputs that are not perturbed.
  anchors, bank, scales, mask = _f32(*_problem())

  @jax.jit
  def grads(a, b):
    out = []
    for use_streaming in (False, True):
      fn = lambda a, b: _objective(streaming.negative_log_sums(
          a, b, scales, mask=mask, streaming=use_streaming,
          chunk_size=3).log_sums)
      out.append((jax.grad(fn, argnums=0)(a, b), jax.grad(fn, argnums=1)(a, b)))
    return out

  (dense_a, dense_b), (streamed_a, streamed_b) = grads(anchors, bank)
  np.testing.assert_allclose(streamed_a, dense_a, atol=1e-6)
  np.testing.assert_allclose(streamed_b, dense_b, atol=1e-6)


def test_large_logits_stay_finite():
  anchors, bank, _, mask = _f32(*_problem())
  scales = jnp.array([300.0, 100.0])  # (1 + beta) / t and beta / t, t = 0.01
  for (value, out), grads in _run(anchors, bank, scales, mask, None):
    assert np.isfinite(value)
    assert all(np.all(np.isfinite(g)) for g in grads)
    want = ref_log_sums(*(np.asarray(x) for x in (anchors, bank, scales, mask)))
    np.testing.assert_allclose(out.log_sums, want, rtol=1e-5)


def test_vmap_over_problems():
  problems = [_problem(seed=s) for s in range(3)]
  anchors, bank, scales, mask = (jnp.asarray(np.stack(x))
                                 for x in zip(*problems))
  fn = lambda a, b, s, m: streaming.negative_log_sums(
      a, b, s, mask=m, streaming=True, chunk_size=3).log_sums
  out = jax.jit(jax.vmap(fn))(anchors, bank, scales, mask)
  for i, p in enumerate(problems):
    np.testing.assert_allclose(out[i], ref_log_sums(*p), rtol=1e-5)


# ----------------------------------------------------------------------------
# Top-k helper.


def test_kth_largest_similarity():
  anchors, bank, _, mask = _problem()
  sims = anchors @ bank.T

  @jax.jit
  def kth(a, b, m):
    return [(streaming.kth_largest_similarity(
        a, b, 2, mask=m, streaming=s, chunk_size=3),
             streaming.kth_largest_similarity(
                 a, b, 7, streaming=s, chunk_size=3)) for s in (False, True)]

  for masked, unmasked in kth(*_f32(anchors, bank, mask)):
    for i in range(3):
      allowed = np.sort(sims[i][mask[i]])[::-1]
      want = allowed[1] if len(allowed) >= 2 else -np.inf
      np.testing.assert_allclose(masked[i], want, atol=1e-6)
    np.testing.assert_allclose(unmasked, sims.min(1), atol=1e-6)


# ----------------------------------------------------------------------------
# Memory: the point of the streamed form.


def test_streamed_gradient_does_not_hold_the_similarity_matrix():
  m, k, d, chunk = 64, 8192, 8, 256
  args = (jnp.ones((m, d)), jnp.ones((k, d)), jnp.ones((1,)))
  def temp_bytes(use_streaming):
    fn = lambda a, b, s: jnp.sum(streaming.negative_log_sums(
        a, b, s, streaming=use_streaming, chunk_size=chunk).log_sums)
    compiled = jax.jit(jax.grad(fn)).lower(*args).compile()
    return compiled.memory_analysis().temp_size_in_bytes
  matrix = m * k * 4
  assert temp_bytes(False) >= matrix
  assert temp_bytes(True) < matrix / 4


# ----------------------------------------------------------------------------
# Options and errors.


def test_resolve_streaming():
  assert streaming.resolve_streaming(None, streaming.STREAMING_THRESHOLD)
  assert not streaming.resolve_streaming(None,
                                         streaming.STREAMING_THRESHOLD - 1)
  assert streaming.resolve_streaming(True, 1)
  assert not streaming.resolve_streaming(False, 10**6)


@pytest.mark.parametrize("chunk_size", [0, -4, 2.5, True])
def test_bad_chunk_size(chunk_size):
  with pytest.raises(ValueError, match="chunk_size must be a positive int"):
    streaming.negative_log_sums(jnp.ones((2, 3)), jnp.ones((4, 3)),
                                jnp.ones(1), streaming=True,
                                chunk_size=chunk_size)


def test_bad_streaming_flag():
  with pytest.raises(ValueError, match="streaming must be None"):
    streaming.resolve_streaming("auto", 10)


def test_masked_logsumexp_matches_numpy():
  x = np.array([[1.0, 2.0, 3.0], [50.0, -20.0, 0.0]])
  allowed = np.array([[True, False, True], [False, False, False]])
  got, grad = jax.jit(lambda v, a: (
      streaming.masked_logsumexp(v, a),
      jax.grad(lambda w: jnp.sum(jnp.where(
          a.any(1), streaming.masked_logsumexp(w, a), 0.0)))(v)))(
              jnp.asarray(x), jnp.asarray(allowed))
  np.testing.assert_allclose(got[0], np.log(np.exp(1.0) + np.exp(3.0)),
                             rtol=1e-6)
  assert got[1] == -np.inf
  assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0)
