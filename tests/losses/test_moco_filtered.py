"""Filtered and dual-view MoCo losses against a float64 NumPy reference."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.infonce import infonce
from contrastive.losses.moco_filtered import dual_view_moco
from contrastive.losses.moco_filtered import filtered_infonce
from tests.losses.numeric import numeric_grad


# ----------------------------------------------------------------------------
# Independent reference: explicit loops, float64.


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_filtered(q, k, negatives, t, top_k=None, threshold=None, mask=None):
  """Mean over queries of InfoNCE over the kept queue negatives; `mask[i, j]`
  False removes queue row j from query i's candidates before filtering."""
  uq, uk, queue = _unit(q), _unit(k), _unit(negatives)
  losses = []
  for i in range(len(uq)):
    sims = sorted((uq[i] @ row for j, row in enumerate(queue)
                   if mask is None or mask[i][j]), reverse=True)
    if top_k is not None:
      sims = sims[:top_k]
    if threshold is not None:
      sims = [s for s in sims if s > threshold]
    pos = math.exp(uq[i] @ uk[i] / t)
    neg = sum(math.exp(s / t) for s in sims)
    losses.append(-math.log(pos / (pos + neg)))
  return float(np.mean(losses))


def ref_dual_view(q1, k1, q2, k2, queue_1, queue_2, t, **kw):
  """q1 -> k2 against queue_2 (past k2), q2 -> k1 against queue_1."""
  return (ref_filtered(q1, k2, queue_2, t, **kw)
          + ref_filtered(q2, k1, queue_1, t, **kw)) / 2


def _data(n=3, d=4, k=7, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)), rng.normal(size=(n, d)),
          rng.normal(size=(k, d)))


def _f32(*xs):
  return tuple(jnp.asarray(x, jnp.float32) for x in xs)


@functools.partial(jax.jit, static_argnames=("top_k",))
def _run(q, k, negatives, temperature, threshold, *, top_k):
  """[dense, streamed] of (loss, aux, grads w.r.t. q, k, negatives).

  One program per (top_k, threshold given, shapes); chunks of 3 pad k = 7.
  No defaults: a call that omitted one would not share the compiled program.
  """
  results = []
  for streaming in (False, True):
    fn = lambda a, b, c: filtered_infonce(
        a, b, c, temperature=temperature, top_k=top_k, threshold=threshold,
        streaming=streaming, chunk_size=3)
    (value, aux), grads = jax.value_and_grad(
        fn, argnums=(0, 1, 2), has_aux=True)(q, k, negatives)
    results.append((value, aux, grads))
  return results


_FILTERS = [dict(top_k=3), dict(threshold=0.1), dict()]


@pytest.mark.parametrize("kw", _FILTERS, ids=["top_k", "threshold", "none"])
def test_value_and_gradients_match_reference_dense_and_streamed(kw):
  q, k, negs = _data()
  t = 0.3
  ref = lambda a, b, c: ref_filtered(a, b, c, t, **kw)
  want = (numeric_grad(lambda x: ref(x, k, negs), q),
          numeric_grad(lambda x: ref(q, x, negs), k),
          numeric_grad(lambda x: ref(q, k, x), negs))
  results = _run(*_f32(q, k, negs), t, kw.get("threshold"),
                 top_k=kw.get("top_k"))
  for value, aux, grads in results:
    np.testing.assert_allclose(value, ref(q, k, negs), rtol=1e-5)
    for got, exp in zip(grads, want):
      np.testing.assert_allclose(got, exp, atol=2e-5, rtol=1e-4)
    if "top_k" in kw:
      np.testing.assert_allclose(aux["num_negatives"], 3.0)
  (v1, aux1, g1), (v2, aux2, g2) = results
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for key in aux1:
    np.testing.assert_allclose(aux1[key], aux2[key], atol=1e-6)


def test_keeping_everything_is_plain_moco():
  q, k, negs = _f32(*_data())
  plain = jax.jit(jax.value_and_grad(
      lambda a: infonce(a, k, temperature=0.3, negatives=negs)[0]))(q)
  for kw in (dict(top_k=7), dict(threshold=-1.0), dict()):
    for value, _, grads in _run(q, k, negs, 0.3, kw.get("threshold"),
                                top_k=kw.get("top_k")):
      np.testing.assert_allclose(value, plain[0], rtol=1e-6)
      np.testing.assert_allclose(grads[0], plain[1], atol=1e-6)


def test_top_k_keeps_the_most_similar_negatives():
  q = jnp.array([[1.0, 0.0]])
  # Cosines with q: 1/sqrt(2), 0, -1, 0.6.
  negs = jnp.array([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
  want = math.log(1 + (math.exp(1 / math.sqrt(2)) + math.exp(0.6)) / math.e)
  for value, aux, _ in _run(q, q, negs, 1.0, None, top_k=2):
    np.testing.assert_allclose(value, want, rtol=1e-6)
    np.testing.assert_allclose(aux["num_negatives"], 2.0)


def test_threshold_above_every_negative_gives_zero_loss():
  q, k, negs = _f32(*_data())
  for value, aux, grads in _run(q, k, negs, 0.3, 0.999, top_k=None):
    assert float(value) == 0.0
    assert float(aux["frac_without_negatives"]) == 1.0
    assert all(np.all(g == 0) for g in grads)


@pytest.mark.parametrize("kw", _FILTERS, ids=["top_k", "threshold", "none"])
def test_negative_mask_removes_rows_before_the_filter(kw):
  q, k, negs = _data()
  rng = np.random.default_rng(5)
  mask = rng.random((3, 7)) < 0.6
  mask[0] = [True, True, False, False, False, False, False]  # < top_k rows
  want = ref_filtered(q, k, negs, 0.3, mask=mask, **kw)
  # The mask changes the value: the test can tell it was applied.
  assert abs(want - ref_filtered(q, k, negs, 0.3, **kw)) > 1e-3
  grad_want = numeric_grad(
      lambda x: ref_filtered(x, k, negs, 0.3, mask=mask, **kw), q)
  for streaming in (False, True):
    fn = jax.jit(lambda a, b, c, m: filtered_infonce(
        a, b, c, temperature=0.3, negative_mask=m, streaming=streaming,
        chunk_size=3, **kw)[0])
    got = fn(*_f32(q, k, negs), jnp.asarray(mask))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    grad = jax.grad(fn)(*_f32(q, k, negs), jnp.asarray(mask))
    np.testing.assert_allclose(grad, grad_want, atol=2e-5, rtol=1e-4)


def test_empty_queue_slots_are_never_negatives():
  """A training queue's unfilled (zero) slots, masked out, change nothing:
  the loss equals the one over the filled rows alone."""
  q, k, negs = _f32(*_data())
  padded = jnp.concatenate([negs, jnp.zeros((5, 4))])
  valid = jnp.broadcast_to(jnp.arange(12) < 7, (3, 12))
  for kw in _FILTERS:
    masked, _ = filtered_infonce(q, k, padded, temperature=0.3,
                                 negative_mask=valid, **kw)
    filled, _ = filtered_infonce(q, k, negs, temperature=0.3, **kw)
    np.testing.assert_allclose(masked, filled, rtol=1e-6)


# ----------------------------------------------------------------------------
# Dual view.


@jax.jit
def _dual(q1, k1, q2, k2, queue_1, queue_2):
  """[dense, streamed] (loss, aux, grads w.r.t. q1, q2) with a queue pair."""
  results = []
  for streaming in (False, True):
    fn = lambda a, b: dual_view_moco(a, k1, b, k2, (queue_1, queue_2),
                                     temperature=0.3, top_k=4,
                                     streaming=streaming, chunk_size=3)
    (value, aux), grads = jax.value_and_grad(fn, argnums=(0, 1),
                                             has_aux=True)(q1, q2)
    results.append((value, aux, grads))
  return results


def test_dual_view_uses_the_positive_views_queue():
  q1, k1, queue_1 = _data(seed=1)
  q2, k2, queue_2 = _data(seed=2)
  want = ref_dual_view(q1, k1, q2, k2, queue_1, queue_2, 0.3, top_k=4)
  # The swapped assignment gives a different value: the test can tell.
  swapped = ref_dual_view(q1, k1, q2, k2, queue_2, queue_1, 0.3, top_k=4)
  assert abs(swapped - want) > 1e-3
  want_grads = [
      numeric_grad(lambda x: ref_dual_view(x, k1, q2, k2, queue_1, queue_2,
                                           0.3, top_k=4), q1),
      numeric_grad(lambda x: ref_dual_view(q1, k1, x, k2, queue_1, queue_2,
                                           0.3, top_k=4), q2)]
  for loss, aux, grads in _dual(*_f32(q1, k1, q2, k2, queue_1, queue_2)):
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    np.testing.assert_allclose(
        aux["loss_12"], ref_filtered(q1, k2, queue_2, 0.3, top_k=4), rtol=1e-5)
    np.testing.assert_allclose(
        aux["loss_21"], ref_filtered(q2, k1, queue_1, 0.3, top_k=4), rtol=1e-5)
    for got, exp in zip(grads, want_grads):
      np.testing.assert_allclose(got, exp, atol=2e-5)


def test_dual_view_single_queue_is_shared():
  q1, k1, queue = _data(seed=3)
  q2, k2, _ = _data(seed=4)
  # Passing the same queue twice is the shared-queue case.
  for loss, _, _ in _dual(*_f32(q1, k1, q2, k2, queue, queue)):
    np.testing.assert_allclose(loss, ref_dual_view(
        q1, k1, q2, k2, queue, queue, 0.3, top_k=4), rtol=1e-5)
  shared, _ = jax.jit(functools.partial(
      dual_view_moco, temperature=0.3, top_k=4))(*_f32(q1, k1, q2, k2, queue))
  np.testing.assert_allclose(shared, ref_dual_view(
      q1, k1, q2, k2, queue, queue, 0.3, top_k=4), rtol=1e-5)


def test_dual_view_masks_each_direction():
  q1, k1, queue_1 = _data(seed=1)
  q2, k2, queue_2 = _data(seed=2)
  rng = np.random.default_rng(6)
  m1, m2 = rng.random((2, 3, 7)) < 0.7
  want = (ref_filtered(q1, k2, queue_2, 0.3, top_k=4, mask=m2)
          + ref_filtered(q2, k1, queue_1, 0.3, top_k=4, mask=m1)) / 2
  got, _ = jax.jit(functools.partial(dual_view_moco, temperature=0.3,
                                     top_k=4))(
      *_f32(q1, k1, q2, k2), _f32(queue_1, queue_2),
      negative_mask=(jnp.asarray(m1), jnp.asarray(m2)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  shared_want = ref_dual_view(q1, k1, q2, k2, queue_1, queue_1, 0.3, top_k=4,
                              mask=m1)
  shared, _ = dual_view_moco(*_f32(q1, k1, q2, k2, queue_1), temperature=0.3,
                             top_k=4, negative_mask=jnp.asarray(m1))
  np.testing.assert_allclose(shared, shared_want, rtol=1e-5)


# ----------------------------------------------------------------------------
# Transformations and numerics.


def test_vmap_over_problems():
  data = [_data(seed=s) for s in range(3)]
  q, k, negs = (jnp.asarray(np.stack(x), jnp.float32) for x in zip(*data))
  fn = lambda a, b, c: filtered_infonce(a, b, c, temperature=0.3, top_k=3,
                                        streaming=True, chunk_size=3)[0]
  values = jax.jit(jax.vmap(fn))(q, k, negs)
  for i, (a, b, c) in enumerate(data):
    np.testing.assert_allclose(values[i], ref_filtered(a, b, c, 0.3, top_k=3),
                               rtol=1e-5)


def test_small_temperature_and_bfloat16_match_reference():
  # Raw, unaligned q and k at t = 0.01: logits reach +-100 (e^100 overflows
  # float32) and the loss is large (51), so a wrong value cannot hide under
  # the tolerance.
  q, k, negs = _data(seed=5)
  t = 0.01
  for dtype in (jnp.float32, jnp.bfloat16):
    args = tuple(jnp.asarray(x, dtype) for x in (q, k, negs))
    # The reference sees the same rounded inputs; the library upcasts to
    # float32 before normalising, so bfloat16 inputs agree as closely as
    # float32 ones (measured 2e-9 relative, 1e-8 for float32).
    as64 = [np.asarray(x.astype(jnp.float32), np.float64) for x in args]
    ref = lambda a, b, c: ref_filtered(a, b, c, t, top_k=3)
    want = ref(*as64)
    assert want > 10.0
    want_grads = None
    if dtype == jnp.float32:
      a, b, c = as64
      want_grads = (numeric_grad(lambda x: ref(x, b, c), a),
                    numeric_grad(lambda x: ref(a, x, c), b),
                    numeric_grad(lambda x: ref(a, b, x), c))
    for value, _, grads in _run(*args, t, None, top_k=3):
      assert np.isfinite(value)
      assert all(np.all(np.isfinite(g.astype(jnp.float32))) for g in grads)
      np.testing.assert_allclose(value, want, rtol=1e-5, atol=0)
      if want_grads is not None:
        # Gradients scale with 1/t (up to ~24); measured error at most 2e-5.
        for got, exp in zip(grads, want_grads):
          np.testing.assert_allclose(got, exp, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(top_k=2, threshold=0.5), "at most one of top_k"),
        (dict(top_k=8), r"top_k must lie in \[1, k\] = \[1, 7\]"),
        (dict(top_k=0), r"top_k must lie in \[1, k\]"),
        (dict(top_k=2.0), "top_k must be an int"),
        (dict(threshold=1.0), r"threshold is a cosine .* \[-1, 1\)"),
        (dict(threshold=-1.5), r"threshold is a cosine .* \[-1, 1\)"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(k=jnp.ones((2, 4))), "same shape"),
        (dict(q=jnp.ones((3,))), "q must have rank 2"),
        (dict(negatives=jnp.ones((7, 3))), "feature dimension"),
        (dict(negatives=jnp.ones((7,))), "negatives must have rank 2"),
        (dict(streaming=1), "streaming must be None"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_filtered_errors(kwargs, match):
  args = dict(q=jnp.ones((3, 4)), k=jnp.ones((3, 4)),
              negatives=jnp.ones((7, 4)), temperature=0.1)
  args.update(kwargs)
  q, k, negs = args.pop("q"), args.pop("k"), args.pop("negatives")
  with pytest.raises(ValueError, match=match):
    filtered_infonce(q, k, negs, **args)


def test_dual_view_errors():
  x = jnp.ones((3, 4))
  queue = jnp.ones((7, 4))
  with pytest.raises(ValueError, match=r"pair \(queue_1, queue_2\)"):
    dual_view_moco(x, x, x, x, (queue, queue, queue), temperature=0.1)
  with pytest.raises(ValueError, match="same shape"):
    dual_view_moco(x, x, jnp.ones((2, 4)), x, queue, temperature=0.1)
  with pytest.raises(ValueError, match="feature dimension"):
    dual_view_moco(x, x, x, x, (queue, jnp.ones((7, 5))), temperature=0.1)
  with pytest.raises(ValueError, match="at most one of top_k"):
    dual_view_moco(x, x, x, x, queue, temperature=0.1, top_k=1, threshold=0.)
  mask = jnp.ones((3, 7), bool)
  with pytest.raises(ValueError, match="pair of \\[n, k\\] masks"):
    dual_view_moco(x, x, x, x, (queue, queue), temperature=0.1,
                   negative_mask=mask)
  with pytest.raises(ValueError, match="one shared queue"):
    dual_view_moco(x, x, x, x, queue, temperature=0.1,
                   negative_mask=(mask, mask))
  with pytest.raises(ValueError, match=r"shape \[n, k\] = \(3, 7\)"):
    dual_view_moco(x, x, x, x, queue, temperature=0.1,
                   negative_mask=jnp.ones((3, 6), bool))
  with pytest.raises(ValueError, match="must be boolean"):
    filtered_infonce(x, x, queue, temperature=0.1,
                     negative_mask=jnp.ones((3, 7)))
