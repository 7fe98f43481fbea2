"""InfoNCE against a float64 NumPy reference written from docs/losses.md."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.infonce import infonce, use_streaming
from tests.losses.numeric import numeric_grad


# ----------------------------------------------------------------------------
# Independent reference: explicit loops, float64.


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _nce(pos_logit, neg_logits):
  """-log(pos / (pos + sum neg)) for one anchor (0 without negatives)."""
  if not neg_logits:
    return 0.0
  pos = math.exp(pos_logit)
  return -math.log(pos / (pos + sum(math.exp(v) for v in neg_logits)))


def ref_infonce(z1, z2, t, negatives=None, symmetric=False, mask=None):
  u1, u2 = _unit(z1), _unit(z2)
  n = len(u1)
  losses = []
  if negatives is not None:
    q = _unit(negatives)
    for i in range(n):
      negs = [u1[i] @ q[j] / t for j in range(len(q))
              if mask is None or mask[i, j]]
      losses.append(_nce(u1[i] @ u2[i] / t, negs))
  elif symmetric:
    for a, b, m in ((u1, u2, mask), (u2, u1, None if mask is None else mask.T)):
      for i in range(n):
        negs = [a[i] @ b[j] / t for j in range(n)
                if j != i and (m is None or m[i, j])]
        losses.append(_nce(a[i] @ b[i] / t, negs))
  else:
    u = np.concatenate([u1, u2])
    for i in range(2 * n):
      partner = (i + n) % (2 * n)
      negs = [u[i] @ u[j] / t for j in range(2 * n)
              if j not in (i, partner) and (mask is None or mask[i % n, j % n])]
      losses.append(_nce(u[i] @ u[partner] / t, negs))
  return float(np.mean(losses))


def _data(n=3, d=4, k=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)), rng.normal(size=(n, d)),
          rng.normal(size=(k, d)))


def _f32(*xs):
  return tuple(jnp.asarray(x, jnp.float32) for x in xs)


# ----------------------------------------------------------------------------
# Hand-computed values.


_jit_infonce = jax.jit(infonce, static_argnames=("symmetric",))


def test_hand_computed_2x2_simclr():
  z = jnp.eye(2)
  loss, aux = _jit_infonce(z, z, temperature=1.0)
  # Every anchor: positive cosine 1, two negatives with cosine 0.
  np.testing.assert_allclose(loss, math.log(1 + 2 / math.e), rtol=1e-6)
  np.testing.assert_allclose(aux["pos_sim"], 1.0)
  np.testing.assert_allclose(aux["neg_sim"], 0.0, atol=1e-7)
  np.testing.assert_allclose(aux["top1"], 1.0)
  np.testing.assert_allclose(aux["num_negatives"], 2.0)


def test_hand_computed_2x2_clip_and_queue():
  z = jnp.eye(2)
  loss, _ = _jit_infonce(z, z, temperature=1.0, symmetric=True)
  np.testing.assert_allclose(loss, math.log(1 + 1 / math.e), rtol=1e-6)
  q = jnp.array([[1.0, 0.0]])
  negatives = jnp.array([[0.0, 2.0], [-3.0, 0.0]])  # cosines 0 and -1
  loss, _ = _jit_infonce(q, q, temperature=0.5, negatives=negatives)
  np.testing.assert_allclose(
      loss, math.log(1 + math.exp(-2) + math.exp(-4)), rtol=1e-6)


# ----------------------------------------------------------------------------
# Values and gradients against the reference, in both forms.

_MODES = ["simclr", "clip", "queue"]


def _call(mode, z1, z2, negatives, mask=None, **kwargs):
  if mode == "queue":
    return infonce(z1, z2, negatives=negatives, negative_mask=mask, **kwargs)
  return infonce(z1, z2, symmetric=mode == "clip", negative_mask=mask,
                 **kwargs)


@functools.partial(jax.jit, static_argnames=("mode",))
def _run(z1, z2, negatives, mask, temperature, *, mode):
  """[dense, streamed] of (loss, aux, grads w.r.t. z1, z2, negatives, t).

  Both forms are compiled into one program per (mode, mask given, shapes),
  shared by the tests. chunk_size=2 never divides the 5 negatives (padding).
  """
  results = []
  for streaming in (False, True):
    def fn(a, b, c, t):
      return _call(mode, a, b, c, mask, temperature=t, streaming=streaming,
                   chunk_size=2)
    (value, aux), grads = jax.value_and_grad(
        fn, argnums=(0, 1, 2, 3), has_aux=True)(z1, z2, negatives,
                                                 temperature)
    results.append((value, aux, grads))
  return results


def _ref(mode, z1, z2, negatives, t, mask=None):
  return ref_infonce(z1, z2, t, negatives if mode == "queue" else None,
                     mode == "clip", mask)


def _mask(mode, n, k, seed=1):
  rng = np.random.default_rng(seed)
  shape = (n, k) if mode == "queue" else (n, n)
  mask = rng.random(shape) < 0.6
  mask[0] = False  # an anchor (a sample) without any negative
  return mask


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("mode", _MODES)
def test_value_and_gradients_match_reference_dense_and_streamed(
    mode, use_mask):
  z1, z2, negs = _data()
  t = 0.3
  mask = _mask(mode, 3, 5) if use_mask else None
  jmask = None if mask is None else jnp.asarray(mask)
  refs = (
      numeric_grad(lambda x: _ref(mode, x, z2, negs, t, mask), z1),
      numeric_grad(lambda x: _ref(mode, z1, x, negs, t, mask), z2),
      numeric_grad(lambda x: _ref(mode, z1, z2, x, t, mask), negs),
      numeric_grad(lambda x: _ref(mode, z1, z2, negs, float(x), mask),
                   np.float64(t)),
  )
  results = _run(*_f32(z1, z2, negs), jmask, t, mode=mode)
  for value, _, grads in results:
    np.testing.assert_allclose(value, _ref(mode, z1, z2, negs, t, mask),
                               rtol=1e-5)
    for got, want in zip(grads, refs):
      np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
  # Streamed and direct agree far more tightly than either with the reference.
  (v1, aux1, g1), (v2, aux2, g2) = results
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for key in aux1:
    np.testing.assert_allclose(aux1[key], aux2[key], atol=1e-6)


def test_all_negatives_masked_gives_zero_loss_and_gradient():
  z1, z2, negs = _f32(*_data())
  mask = jnp.zeros((3, 5), bool)
  for value, aux, grads in _run(z1, z2, negs, mask, 0.1, mode="queue"):
    assert float(value) == 0.0
    for grad in grads:
      np.testing.assert_array_equal(grad, 0.0)
    assert float(aux["frac_without_negatives"]) == 1.0


def test_automatic_streaming_threshold():
  assert use_streaming(None, jnp.zeros((16384, 2)))
  assert not use_streaming(None, jnp.zeros((16383, 2)))
  assert not use_streaming(None, None)  # in-batch modes stream only if asked
  assert use_streaming(True, None)
  assert not use_streaming(False, jnp.zeros((20000, 2)))


# ----------------------------------------------------------------------------
# Transformations.


def test_jit_and_vmap_over_problems():
  data = [_data(seed=s) for s in range(3)]
  z1, z2, negs = (_f32(np.stack(x))[0] for x in zip(*data))
  fn = lambda a, b, c: infonce(a, b, temperature=0.2, negatives=c,
                               streaming=True, chunk_size=2)[0]
  values, grads = jax.jit(jax.vmap(jax.value_and_grad(fn)))(z1, z2, negs)
  for i, (a, b, c) in enumerate(data):
    np.testing.assert_allclose(values[i], ref_infonce(a, b, 0.2, c),
                               rtol=1e-5)
    for _, _, single in _run(*_f32(a, b, c), None, 0.2, mode="queue"):
      np.testing.assert_allclose(grads[i], single[0], atol=1e-6)
  simclr = jax.jit(jax.vmap(lambda a, b: infonce(a, b, temperature=0.2)[0]))
  np.testing.assert_allclose(
      simclr(z1, z2)[1], ref_infonce(data[1][0], data[1][1], 0.2), rtol=1e-5)


# ----------------------------------------------------------------------------
# Numerics.


@pytest.mark.parametrize("mode", _MODES)
def test_small_temperature_and_bfloat16_match_reference(mode):
  # Raw, unaligned views at t = 0.01: logits reach +-100 (e^100 overflows
  # float32) and the losses are large (simclr 71, clip 64, queue 69), so a
  # wrong value cannot hide under the tolerance.
  z1, z2, negs = _data()
  t = 0.01
  # bfloat16 inputs are upcast by the same normalisation in every mode, so
  # one mode covers them (and keeps the number of compilations down).
  dtypes = (jnp.float32, jnp.bfloat16) if mode == "queue" else (jnp.float32,)
  for dtype in dtypes:
    args = tuple(jnp.asarray(x, dtype) for x in (z1, z2, negs))
    # The reference sees the same (rounded) inputs: the library computes in
    # float32 after the upcast, so bfloat16 inputs agree as closely as float32
    # ones (measured 3e-8 relative); one bfloat16 step at a logit of 100 would
    # be ~0.4, far outside rtol.
    as64 = [np.asarray(x.astype(jnp.float32), np.float64) for x in args]
    want = _ref(mode, *as64, t)
    assert want > 10.0
    want_grads = None
    if dtype == jnp.float32:
      a, b, c = as64
      want_grads = (
          numeric_grad(lambda x: _ref(mode, x, b, c, t), a),
          numeric_grad(lambda x: _ref(mode, a, x, c, t), b),
          numeric_grad(lambda x: _ref(mode, a, b, x, t), c),
          numeric_grad(lambda x: _ref(mode, a, b, c, float(x)),
                       np.float64(t)))
    for value, _, grads in _run(*args, None, t, mode=mode):
      assert value.dtype == jnp.float32 and np.isfinite(value)
      assert all(np.all(np.isfinite(g.astype(jnp.float32))) for g in grads)
      np.testing.assert_allclose(value, want, rtol=1e-5, atol=0)
      if want_grads is not None:
        # Gradients scale with 1/t (up to ~45, ~7000 for t itself); measured
        # error at most 4e-5.
        for got, exp in zip(grads, want_grads):
          np.testing.assert_allclose(got, exp, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(z1=jnp.ones((3,))), "z1 must have rank 2"),
        (dict(z2=jnp.ones((3, 4, 1))), "z2 must have rank 2"),
        (dict(z2=jnp.ones((2, 4))), "same shape"),
        (dict(negatives=jnp.ones((5, 3))), "feature dimension"),
        (dict(negatives=jnp.ones((5,))), "negatives must have rank 2"),
        (dict(negative_mask=jnp.ones((3, 4), bool)), r"\[n, n\]"),
        (dict(negatives=jnp.ones((5, 4)), negative_mask=jnp.ones((3, 3), bool)),
         r"\[n, k\]"),
        (dict(negative_mask=jnp.ones((3, 3))), "boolean"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(temperature=-1.0), "temperature must be > 0"),
        (dict(symmetric=True, negatives=jnp.ones((5, 4))), "dual_view_moco"),
        (dict(streaming="yes"), "streaming must be None"),
        (dict(chunk_size=0), "chunk_size must be a positive int"),
    ],
)
def test_errors(kwargs, match):
  args = dict(z1=jnp.ones((3, 4)), z2=jnp.ones((3, 4)), temperature=0.1)
  args.update(kwargs)
  z1, z2 = args.pop("z1"), args.pop("z2")
  with pytest.raises(ValueError, match=match):
    infonce(z1, z2, **args)
