"""DCL and HCL against a float64 NumPy reference written from docs/losses.md."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.debiased import debiased_infonce
from contrastive.losses.debiased import hard_negative_infonce
from contrastive.losses.infonce import infonce
from tests.losses.numeric import numeric_grad


# ----------------------------------------------------------------------------
# Independent reference: explicit loops, float64.


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _anchor_sims(z1, z2, negatives, mask):
  """Per anchor: (cosine with its positive, cosines with its negatives)."""
  u1, u2 = _unit(z1), _unit(z2)
  n = len(u1)
  out = []
  if negatives is not None:
    q = _unit(negatives)
    for i in range(n):
      out.append((u1[i] @ u2[i], [u1[i] @ q[j] for j in range(len(q))
                                  if mask is None or mask[i, j]]))
    return out
  u = np.concatenate([u1, u2])
  for i in range(2 * n):
    partner = (i + n) % (2 * n)
    out.append((u[i] @ u[partner], [
        u[i] @ u[j] for j in range(2 * n)
        if j not in (i, partner) and (mask is None or mask[i % n, j % n])]))
  return out


def ref_debiased(z1, z2, t, tau_plus, beta=None, negatives=None, mask=None,
                 weights_from=None):
  """DCL (beta=None) / HCL; HCL weights from `weights_from` inputs if given.

  Returns (mean loss, fraction of anchors where the clamp is active).
  """
  anchors = _anchor_sims(z1, z2, negatives, mask)
  if weights_from is None:
    frozen = anchors
  else:
    w1, w2, wneg = weights_from
    frozen = _anchor_sims(w1, w2, None if negatives is None else wneg, mask)
  losses, clamped = [], []
  for (s_pos, s_negs), (_, w_sims) in zip(anchors, frozen):
    big_n = len(s_negs)
    if big_n == 0:
      losses.append(0.0)
      continue
    pos = math.exp(s_pos / t)
    neg = np.exp(np.array(s_negs) / t)
    if beta is None:
      reweighted = neg.sum()
    else:
      w = np.exp(beta * np.array(w_sims) / t)
      reweighted = (w * neg).sum() / w.mean()
    floor = big_n * math.exp(-1 / t)
    ng = max((reweighted - tau_plus * big_n * pos) / (1 - tau_plus), floor)
    clamped.append(ng == floor)
    losses.append(-math.log(pos / (pos + ng)))
  return float(np.mean(losses)), float(np.mean(clamped))


def _data(n=3, d=4, k=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)), rng.normal(size=(n, d)),
          rng.normal(size=(k, d)))


def _f32(*xs):
  return tuple(jnp.asarray(x, jnp.float32) for x in xs)


# ----------------------------------------------------------------------------
# One compiled function per static configuration, shared by the tests.


@functools.partial(jax.jit, static_argnames=("method", "queue",
                                             "stop_gradient_weights"))
def _run(z1, z2, negatives, mask, temperature, tau_plus, beta, *, method,
         queue, stop_gradient_weights=False):
  """[dense, streamed] of (loss, aux, grads w.r.t. z1, z2, negatives).

  One program per static configuration, shared by the tests; tau_plus and
  beta are traced so the limiting cases reuse it. chunk_size=2 pads k=5.
  """
  results = []
  for streaming in (False, True):
    def fn(a, b, c):
      kwargs = dict(temperature=temperature, tau_plus=tau_plus,
                    negatives=c if queue else None, negative_mask=mask,
                    streaming=streaming, chunk_size=2)
      if method == "dcl":
        return debiased_infonce(a, b, **kwargs)
      return hard_negative_infonce(
          a, b, beta=beta, stop_gradient_weights=stop_gradient_weights,
          **kwargs)
    (value, aux), grads = jax.value_and_grad(
        fn, argnums=(0, 1, 2), has_aux=True)(z1, z2, negatives)
    results.append((value, aux, grads))
  return results


def _mask(queue, seed=1):
  rng = np.random.default_rng(seed)
  mask = rng.random((3, 5) if queue else (3, 3)) < 0.6
  mask[0] = False  # an anchor without negatives: loss 0, N = 0
  mask[1, :2] = True
  return mask


# Both conventions, with a mask that leaves one anchor without negatives. The
# mask-free engine path is covered by the InfoNCE and streaming tests; DCL and
# HCL only change what is done with the log-sums.
@pytest.mark.parametrize("method", ["dcl", "hcl"])
@pytest.mark.parametrize("mode", ["simclr", "queue"])
def test_value_and_gradients_match_reference_dense_and_streamed(method, mode):
  queue = mode == "queue"
  z1, z2, negs = _data()
  t, tau, beta = 0.4, 0.1, (None if method == "dcl" else 1.5)
  mask = _mask(queue)
  qneg = negs if queue else None
  ref = lambda a, b, c: ref_debiased(a, b, t, tau, beta, c if queue else None,
                                     mask)[0]
  want = (numeric_grad(lambda x: ref(x, z2, negs), z1),
          numeric_grad(lambda x: ref(z1, x, negs), z2),
          numeric_grad(lambda x: ref(z1, z2, x), negs))
  results = _run(*_f32(z1, z2, negs),
                 None if mask is None else jnp.asarray(mask), t, tau,
                 beta or 0.0, method=method, queue=queue)
  for value, _, grads in results:
    np.testing.assert_allclose(
        value, ref_debiased(z1, z2, t, tau, beta, qneg, mask)[0], rtol=1e-5)
    for got, exp in zip(grads, want):
      np.testing.assert_allclose(got, exp, atol=2e-5, rtol=1e-4)
  (v1, aux1, g1), (v2, aux2, g2) = results
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  for a, b in zip(g1, g2):
    np.testing.assert_allclose(a, b, atol=1e-6)
  for key in aux1:
    np.testing.assert_allclose(aux1[key], aux2[key], atol=1e-6)


def test_stop_gradient_weights_matches_frozen_weight_reference():
  z1, z2, negs = _data(seed=2)
  mask = _mask(True)
  t, tau, beta = 0.4, 0.1, 1.5
  # Weights frozen at the evaluation point: differentiate only through neg.
  ref = lambda a, b, c: ref_debiased(a, b, t, tau, beta, c, mask,
                                     weights_from=(z1, z2, negs))[0]
  want = (numeric_grad(lambda x: ref(x, z2, negs), z1),
          numeric_grad(lambda x: ref(z1, x, negs), z2),
          numeric_grad(lambda x: ref(z1, z2, x), negs))
  stopped = _run(*_f32(z1, z2, negs), jnp.asarray(mask), t, tau, beta,
                 method="hcl", queue=True, stop_gradient_weights=True)
  through_w = _run(*_f32(z1, z2, negs), jnp.asarray(mask), t, tau, beta,
                   method="hcl", queue=True)
  for (value, _, grads), (_, _, default_grads) in zip(stopped, through_w):
    np.testing.assert_allclose(value, ref(z1, z2, negs), rtol=1e-5)
    for got, exp in zip(grads, want):
      np.testing.assert_allclose(got, exp, atol=2e-5, rtol=1e-4)
    # And it differs from the default (gradients through w).
    assert not np.allclose(default_grads[0], grads[0], atol=1e-4)


# Every anchor clamped, with the same N = 2n - 2 (SimCLR); and, in queue mode
# with N = 5 and N = 3 allowed negatives (anchor 0 has none), the clamp holds
# for the N = 3 anchor only: a clamp built from the batch's largest N (0.20197)
# or one anchor's clamp applied to every anchor (~0.049) misses 0.190434.
@pytest.mark.parametrize("queue, seed, noise, tau, frac",
                         [(False, 3, 0.05, 0.6, 1.0), (True, 5, 0.3, 0.2, 0.5)],
                         ids=["every_anchor", "per_anchor"])
def test_clamp_matches_reference(queue, seed, noise, tau, frac):
  z1, eps, negs = _data(seed=seed)
  z2 = z1 + noise * eps  # similar positives: tau_plus N pos can exceed R
  t = 0.5
  # The all-True SimCLR mask reuses the masked SimCLR program.
  mask = _mask(True) if queue else np.ones((3, 3), bool)
  np.testing.assert_array_equal(mask.sum(axis=1),
                                [0, 5, 3] if queue else [3, 3, 3])
  ref = lambda a, b, c: ref_debiased(a, b, t, tau, None, c if queue else None,
                                     mask)
  want, clamped = ref(z1, z2, negs)
  assert clamped == frac
  want_grads = (numeric_grad(lambda x: ref(x, z2, negs)[0], z1),
                numeric_grad(lambda x: ref(z1, x, negs)[0], z2),
                numeric_grad(lambda x: ref(z1, z2, x)[0], negs))
  for value, aux, grads in _run(*_f32(z1, z2, negs), jnp.asarray(mask), t,
                                tau, 0.0, method="dcl", queue=queue):
    np.testing.assert_allclose(value, want, rtol=1e-5)
    np.testing.assert_allclose(aux["clamped_frac"], clamped, atol=1e-6)
    for got, exp in zip(grads, want_grads):
      np.testing.assert_allclose(got, exp, atol=2e-5, rtol=1e-4)


# ----------------------------------------------------------------------------
# Limiting cases, on the compiled functions above.


@functools.partial(jax.jit, static_argnames=("queue",))
def _run_infonce(z1, z2, negatives, mask, temperature, *, queue):
  """[dense, streamed] of (loss, grads) of the library's InfoNCE."""
  results = []
  for streaming in (False, True):
    fn = lambda a, b, c: infonce(a, b, temperature=temperature,
                                 negatives=c if queue else None,
                                 negative_mask=mask, streaming=streaming,
                                 chunk_size=2)[0]
    results.append(jax.value_and_grad(fn, argnums=(0, 1, 2))(
        z1, z2, negatives))
  return results


def test_tau_plus_zero_is_infonce_and_beta_zero_is_dcl():
  args = _f32(*_data(seed=4))
  mask = jnp.asarray(_mask(True))
  base = _run_infonce(*args, mask, 0.4, queue=True)
  dcl_tau0 = _run(*args, mask, 0.4, 0.0, 0.0, method="dcl", queue=True)
  dcl = _run(*args, mask, 0.4, 0.2, 0.0, method="dcl", queue=True)
  hcl_beta0 = _run(*args, mask, 0.4, 0.2, 0.0, method="hcl", queue=True)
  for form in range(2):  # dense, streamed
    np.testing.assert_allclose(dcl_tau0[form][0], base[form][0], rtol=1e-6)
    for a, b in zip(dcl_tau0[form][2], base[form][1]):
      np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(hcl_beta0[form][0], dcl[form][0], rtol=1e-6)
    for a, b in zip(hcl_beta0[form][2], dcl[form][2]):
      np.testing.assert_allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------
# Transformations and numerics.


def test_jit_and_vmap_over_problems():
  data = [_data(seed=s) for s in range(3)]
  z1, z2, negs = (jnp.asarray(np.stack(x), jnp.float32) for x in zip(*data))
  fn = lambda a, b, c: hard_negative_infonce(
      a, b, temperature=0.4, tau_plus=0.1, beta=1.0, negatives=c,
      streaming=True, chunk_size=2)[0]
  values = jax.jit(jax.vmap(fn))(z1, z2, negs)
  for i, (a, b, c) in enumerate(data):
    np.testing.assert_allclose(
        values[i], ref_debiased(a, b, 0.4, 0.1, 1.0, c)[0], rtol=1e-5)


@pytest.mark.parametrize("method", ["dcl", "hcl"])
def test_small_temperature_and_bfloat16_match_reference(method):
  # Raw, unaligned views at t = 0.01: logits reach +-100 (and (1+beta)/t
  # scaled ones +-300; e^100 overflows float32), the losses are large (DCL
  # 51.5, HCL 52.5) and the clamp holds for one anchor in three, so the
  # debiased term and the HCL weights shape the other two.
  z1, z2, negs = _data(seed=5)
  t, tau, beta = 0.01, 0.1, (None if method == "dcl" else 2.0)
  # bfloat16 goes through the same upcast for both; HCL has the larger logits.
  dtypes = (jnp.float32, jnp.bfloat16) if beta else (jnp.float32,)
  everything = jnp.ones((3, 5), bool)  # reuses the masked queue programs
  rtol = 1e-5
  for dtype in dtypes:
    args = tuple(jnp.asarray(x, dtype) for x in (z1, z2, negs))
    # The reference sees the same rounded inputs; the library upcasts to
    # float32 before normalising, so bfloat16 inputs agree as closely as
    # float32 ones (measured at most 1e-7 relative).
    a, b, c = (np.asarray(x.astype(jnp.float32), np.float64) for x in args)
    ref = lambda x, y, q, tau_plus=tau, beta=beta: ref_debiased(
        x, y, t, tau_plus, beta, q)
    want, clamped = ref(a, b, c)
    assert 0 < clamped < 1
    # The test can tell: without the correction (tau_plus = 0), or without
    # the HCL weights, the loss moves by > 100 tolerances.
    assert abs(ref(a, b, c, tau_plus=0.0)[0] - want) > 100 * rtol * want
    if beta:
      assert abs(ref(a, b, c, beta=None)[0] - want) > 100 * rtol * want
    want_grads = None
    if dtype == jnp.float32:
      want_grads = (numeric_grad(lambda x: ref(x, b, c)[0], a),
                    numeric_grad(lambda x: ref(a, x, c)[0], b),
                    numeric_grad(lambda x: ref(a, b, x)[0], c))
    for value, aux, grads in _run(*args, everything, t, tau, beta or 0.0,
                                  method=method, queue=True):
      assert np.isfinite(value)
      assert all(np.all(np.isfinite(g.astype(jnp.float32))) for g in grads)
      np.testing.assert_allclose(value, want, rtol=rtol, atol=0)
      np.testing.assert_allclose(aux["clamped_frac"], clamped, atol=1e-6)
      if want_grads is not None:
        # Gradients scale with 1/t (up to ~24); measured error at most 3e-5.
        for got, exp in zip(grads, want_grads):
          np.testing.assert_allclose(got, exp, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------
# Errors.


_SHARED_ERRORS = [
    (dict(tau_plus=-0.1), r"tau_plus .* must lie in \[0, 1\)"),
    (dict(tau_plus=1.0), r"tau_plus .* must lie in \[0, 1\)"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(z2=jnp.ones((2, 4))), "same shape"),
    (dict(z1=jnp.ones((3, 4, 1))), "z1 must have rank 2"),
    (dict(negatives=jnp.ones((5, 2))), "feature dimension"),
    (dict(negative_mask=jnp.ones((3, 5), bool)), r"\[n, n\]"),
]
_ERRORS = ([("dcl",) + case for case in _SHARED_ERRORS]
           + [("hcl",) + case for case in _SHARED_ERRORS]
           + [("hcl", dict(beta=-1.0), "beta .* must be >= 0")])


@pytest.mark.parametrize("method, kwargs, match", _ERRORS)
def test_errors(method, kwargs, match):
  args = dict(z1=jnp.ones((3, 4)), z2=jnp.ones((3, 4)), temperature=0.1,
              tau_plus=0.1)
  args.update(kwargs)
  z1, z2 = args.pop("z1"), args.pop("z2")
  if method == "dcl":
    fn = debiased_infonce
  else:
    fn = functools.partial(hard_negative_infonce, beta=args.pop("beta", 1.0))
  with pytest.raises(ValueError, match=match):
    fn(z1, z2, **args)
