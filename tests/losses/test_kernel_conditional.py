"""Tests of CCL-K against a float64 NumPy reference (docs/losses.md)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.kernel_conditional import kernel_conditional_infonce
from tests.losses.numeric import np_kernel, numeric_grad

# Compiled once per (mode, kernel, shapes): eager dispatch of every small op is
# what makes tiny-array tests slow. The error tests call the plain function.
_jitted = jax.jit(kernel_conditional_infonce,
                  static_argnames=("mode", "kernel"))


def _normalize(z):
  return z / np.linalg.norm(z, axis=-1, keepdims=True)


def _np_weights(c, kernel, scale, lam, threshold=1e-6):
  k = np_kernel(c, kernel, scale)
  n = k.shape[0]
  w = np.linalg.inv(k + lam * np.eye(n)) @ k
  w[np.eye(n, dtype=bool) | (w < threshold)] = 0.0
  return w


def _np_direction(a, b, w, t, mode):
  """One direction: anchors a_i, positives b_i, weights w; explicit loops."""
  n = a.shape[0]
  losses = []
  for i in range(n):
    pos_logit = a[i] @ b[i] / t
    k_ab = [math.exp(a[i] @ b[j] / t) for j in range(n)]
    k_aa = [0.0 if j == i else math.exp(a[i] @ a[j] / t) for j in range(n)]
    m_ab = sum(k_ab[j] * w[j, i] for j in range(n))  # [K_ab W]_ii
    m_aa = sum(k_aa[j] * w[j, i] for j in range(n))  # [K_aa W]_ii
    if mode == "weakly_supervised":
      pos = m_aa + m_ab
      if pos == 0.0:  # No conditional positive: left out of the mean.
        continue
      losses.append(-math.log(pos / (pos + sum(k_ab) + sum(k_aa))))
    else:
      neg = (n - 1) * (m_ab + m_aa)
      losses.append(-(pos_logit - math.log(math.exp(pos_logit) + neg)))
  return float(np.mean(losses)) if losses else 0.0


def np_ccl(z1, z2, condition, *, t, kernel, lam, mode, scale, frozen_w=None):
  """Reference CCL-K. `frozen_w` holds (W_x, W_y) fixed (for differences)."""
  u1, u2 = _normalize(z1), _normalize(z2)
  if frozen_w is not None:
    w_x, w_y = frozen_w
  else:
    if condition is None:
      cx, cy = u1, u2
    elif isinstance(condition, tuple):
      cx, cy = condition
    else:
      cx = cy = condition
    w_x = _np_weights(cx, kernel, scale, lam)
    w_y = _np_weights(cy, kernel, scale, lam)
  return 0.5 * (_np_direction(u1, u2, w_x, t, mode)
                + _np_direction(u2, u1, w_y, t, mode))


def _data(seed, n=5, d=3, p=2):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, d)), rng.normal(size=(n, d)),
          rng.normal(size=(n, p)))


def _jax(z1, z2, condition, **kw):
  if isinstance(condition, tuple):
    condition = tuple(jnp.asarray(c, jnp.float32) for c in condition)
  elif condition is not None:
    condition = jnp.asarray(condition)
  return _jitted(
      jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), condition,
      **kw)


# (mode, kernel, lam, kernel_scale); polynomial and linear give negative raw
# weights, which the threshold removes.
CASES = [
    ("fair", "rbf", 0.1, 1.0),
    ("hard_negative", "laplacian", 0.5, 0.5),
    ("weakly_supervised", "cosine", 0.01, 1.0),
    ("weakly_supervised", "rbf", 0.1, 1.0),
    ("fair", "polynomial", 2.0, 3.0),
    ("weakly_supervised", "linear", 2.0, 2.0),
]


@pytest.mark.parametrize("mode, kernel, lam, scale", CASES)
@pytest.mark.parametrize("t", [0.5, 0.1])
def test_value_matches_numpy(mode, kernel, lam, scale, t):
  z1, z2, c = _data(0)
  expected = np_ccl(z1, z2, c, t=t, kernel=kernel, lam=lam, mode=mode,
                    scale=scale)
  loss, aux = _jax(z1, z2, c, temperature=t, kernel=kernel, lam=lam,
                   mode=mode, kernel_scale=scale)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(float(loss), expected, rtol=2e-5, atol=2e-5)
  assert set(aux) >= {"pos_sim", "neg_sim", "top1", "w_nonzero", "w_row_sum",
                      "no_positive_frac"}


def test_hard_negative_defaults_to_own_representations():
  z1, z2, _ = _data(1)
  expected = np_ccl(z1, z2, None, t=0.2, kernel="rbf", lam=0.3,
                    mode="hard_negative", scale=0.5)
  loss, _ = _jax(z1, z2, None, temperature=0.2, lam=0.3, kernel_scale=0.5)
  np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
  # The same as passing the normalised views as a per-view pair.
  pair = (_normalize(z1), _normalize(z2))
  loss_pair, _ = _jax(z1, z2, pair, temperature=0.2, lam=0.3,
                      kernel_scale=0.5)
  np.testing.assert_allclose(float(loss), float(loss_pair), rtol=1e-6)


def test_per_view_conditions():
  z1, z2, c = _data(2)
  c2 = c + np.random.default_rng(3).normal(size=c.shape)
  kw = dict(temperature=0.3, kernel="rbf", lam=0.2, mode="fair",
            kernel_scale=1.0)
  expected = np_ccl(z1, z2, (c, c2), t=0.3, kernel="rbf", lam=0.2,
                    mode="fair", scale=1.0)
  loss, _ = _jax(z1, z2, (c, c2), **kw)
  np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
  # Swapping the views (and their conditions) leaves the loss unchanged.
  swapped, _ = _jax(z2, z1, (c2, c), **kw)
  np.testing.assert_allclose(float(loss), float(swapped), rtol=1e-5)
  same, _ = _jax(z1, z2, (c, c), **kw)
  shared, _ = _jax(z1, z2, c, **kw)
  np.testing.assert_allclose(float(same), float(shared), rtol=1e-6)
  # The condition carries no gradient.
  g = jax.jit(jax.grad(lambda cc: kernel_conditional_infonce(
      jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), cc,
      **kw)[0]))(jnp.asarray(c, jnp.float32))
  np.testing.assert_array_equal(np.asarray(g), 0.0)


@pytest.mark.parametrize("mode", ["fair", "hard_negative", "weakly_supervised"])
def test_gradient_matches_finite_differences(mode):
  z1, z2, c = _data(4, n=4, d=3)
  condition = None if mode == "hard_negative" else c
  kw = dict(t=0.5, kernel="rbf", lam=0.2, mode=mode, scale=1.0)
  # W carries no gradient: hold it at its value at the base point.
  u1, u2 = _normalize(z1), _normalize(z2)
  cx, cy = (u1, u2) if condition is None else (c, c)
  frozen = (_np_weights(cx, "rbf", 1.0, 0.2), _np_weights(cy, "rbf", 1.0, 0.2))
  g1 = numeric_grad(
      lambda x: np_ccl(x, z2, None, frozen_w=frozen, **kw), z1)
  g2 = numeric_grad(
      lambda x: np_ccl(z1, x, None, frozen_w=frozen, **kw), z2)
  jc = None if condition is None else jnp.asarray(condition, jnp.float32)
  grad = jax.jit(jax.grad(
      lambda a, b: kernel_conditional_infonce(
          a, b, jc, temperature=0.5, kernel="rbf", lam=0.2, mode=mode,
          kernel_scale=1.0)[0], argnums=(0, 1)))(
              jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32))
  np.testing.assert_allclose(np.asarray(grad[0]), g1, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(np.asarray(grad[1]), g2, rtol=1e-3, atol=1e-4)


def test_limits_where_every_weight_vanishes():
  # Distinct categorical conditions: K = I, so W = (1 + lam)^-1 I, whose
  # diagonal is zeroed: W = 0. The fair negative term vanishes and
  # L_x = -mean[S_ii - log exp(S_ii)] = 0, with zero gradient.
  z1, z2, c = _data(6)
  ids = jnp.arange(5)
  loss, grad = jax.jit(jax.value_and_grad(
      lambda a: kernel_conditional_infonce(
          a, jnp.asarray(z2, jnp.float32), ids, temperature=0.1, mode="fair",
          kernel="categorical", lam=0.01)[0]))(jnp.asarray(z1, jnp.float32))
  assert float(loss) == 0.0
  np.testing.assert_allclose(np.asarray(grad), 0.0, atol=1e-6)
  # Weakly supervised: no anchor has a positive; all are left out, loss 0.
  loss, aux = _jax(z1, z2, np.arange(5), temperature=0.1,
                   mode="weakly_supervised", kernel="categorical", lam=0.1)
  assert float(loss) == 0.0
  assert float(aux["no_positive_frac"]) == 1.0
  # lam = 1e8: W ~ K / lam < 1e-6, every weight is clipped, loss 0.
  loss, aux = _jax(z1, z2, c, temperature=0.1, mode="fair", kernel="rbf",
                   lam=1e8, kernel_scale=1.0)
  assert float(loss) == 0.0
  assert float(aux["w_nonzero"]) == 0.0


def _np_groups(z1, z2, ids, t, lam, mode):
  """Closed form for a categorical condition (derived, no matrix inverse).

  A group of m equal ids has W_ij = 1 / (m + lam) for j != i in the group and
  0 elsewhere, so [K W]_ii = sum_{j in group, j != i} K_ij / (m + lam).
  """
  u1, u2 = _normalize(z1), _normalize(z2)

  def direction(a, b):
    s_ab, s_aa = a @ b.T / t, a @ a.T / t
    n = len(ids)
    out = []
    for i in range(n):
      same = (ids == ids[i]) & (np.arange(n) != i)
      m = int(np.sum(ids == ids[i]))
      weighted = np.sum(np.exp(s_ab[i, same]) + np.exp(s_aa[i, same])) / (
          m + lam)
      if mode == "fair":
        out.append(np.log(np.exp(s_ab[i, i]) + (n - 1) * weighted)
                   - s_ab[i, i])
      elif m > 1:
        rest = np.sum(np.exp(s_ab[i])) + np.sum(
            np.exp(np.delete(s_aa[i], i)))
        out.append(np.log(weighted + rest) - np.log(weighted))
    return np.mean(out)

  return 0.5 * (direction(u1, u2) + direction(u2, u1))


@pytest.mark.parametrize("mode", ["fair", "weakly_supervised"])
def test_categorical_groups_closed_form(mode):
  z1, z2, _ = _data(8, n=6)
  ids = np.array([0, 0, 0, 1, 1, 2])
  loss, aux = _jax(z1, z2, ids, temperature=0.2, mode=mode,
                   kernel="categorical", lam=0.3)
  np.testing.assert_allclose(
      float(loss), _np_groups(z1, z2, ids, 0.2, 0.3, mode), rtol=2e-5)
  # The singleton (id 2) has no positive in weakly supervised mode.
  expected_frac = 1 / 6 if mode == "weakly_supervised" else 0.0
  np.testing.assert_allclose(float(aux["no_positive_frac"]), expected_frac,
                             rtol=1e-6)


def test_metrics_match_numpy():
  z1, z2, c = _data(10)
  _, aux = _jax(z1, z2, c, temperature=0.5, mode="fair", lam=0.1,
                kernel_scale=1.0)
  u1, u2 = _normalize(z1), _normalize(z2)
  u = np.concatenate([u1, u2])
  n = len(u1)
  pos, neg_mean, top1 = [], [], []
  for a in range(2 * n):
    partner = (a + n) % (2 * n)
    negs = [u[a] @ u[b] for b in range(2 * n) if b not in (a, partner)]
    pos.append(u[a] @ u[partner])
    neg_mean.append(np.mean(negs))
    top1.append(pos[-1] > max(negs))
  np.testing.assert_allclose(float(aux["pos_sim"]), np.mean(pos), rtol=1e-5)
  np.testing.assert_allclose(float(aux["neg_sim"]), np.mean(neg_mean),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(aux["top1"]), np.mean(top1), rtol=1e-6)
  w = _np_weights(c, "rbf", 1.0, 0.1)
  np.testing.assert_allclose(float(aux["w_row_sum"]), w.sum(1).mean(),
                             rtol=1e-4)
  np.testing.assert_allclose(float(aux["w_nonzero"]),
                             np.sum(w > 0) / (n * (n - 1)), rtol=1e-6)


def test_jit_and_vmap():
  rng = np.random.default_rng(11)
  z1 = jnp.asarray(rng.normal(size=(3, 4, 3)), jnp.float32)
  z2 = jnp.asarray(rng.normal(size=(3, 4, 3)), jnp.float32)
  c = jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32)

  def f(a, b, cc):
    return kernel_conditional_infonce(a, b, cc, temperature=0.3, mode="fair",
                                      lam=0.1, kernel_scale=1.0)[0]

  # vmap under jit: eager vmap would compile every batched op on its own.
  batched = jax.jit(jax.vmap(f))(z1, z2, c)
  jitted = jax.jit(f)
  for i in range(3):
    expected = np_ccl(np.asarray(z1[i], np.float64),
                      np.asarray(z2[i], np.float64),
                      np.asarray(c[i], np.float64), t=0.3, kernel="rbf",
                      lam=0.1, mode="fair", scale=1.0)
    np.testing.assert_allclose(float(batched[i]), expected, rtol=2e-5)
    np.testing.assert_allclose(float(jitted(z1[i], z2[i], c[i])), expected,
                               rtol=2e-5)
  # A traced temperature passes through jit.
  g = jax.jit(lambda t: kernel_conditional_infonce(
      z1[0], z2[0], temperature=t, lam=0.1, kernel_scale=1.0)[0])
  assert np.isfinite(float(g(0.2)))


@pytest.mark.parametrize("mode", ["fair", "hard_negative", "weakly_supervised"])
def test_low_temperature_and_bfloat16_match_reference(mode):
  # Raw, unaligned views at t = 0.01: logits reach +-100 (e^100 overflows
  # float32 unless kept in log space) and the losses are large (fair 56,
  # hard_negative 80, weakly_supervised 39), so a wrong value cannot hide
  # under the tolerance.
  z1, z2, c = _data(12, n=6, d=4)
  t = 0.01
  kw = dict(kernel="rbf", lam=0.1, mode=mode)
  for dtype in (jnp.float32, jnp.bfloat16):
    a, b = jnp.asarray(z1, dtype), jnp.asarray(z2, dtype)
    cond = None if mode == "hard_negative" else jnp.asarray(c, dtype)
    # The reference sees the same rounded inputs; the library upcasts to
    # float32, so bfloat16 inputs agree as closely as float32 ones (measured
    # at most 6e-8 relative); one bfloat16 step at a logit of 100 is ~0.4.
    a64, b64 = (np.asarray(x.astype(jnp.float32), np.float64) for x in (a, b))
    c64 = None if cond is None else np.asarray(cond.astype(jnp.float32),
                                               np.float64)
    want = np_ccl(a64, b64, c64, t=t, scale=1.0, **kw)
    assert want > 10.0
    loss, grads = jax.jit(jax.value_and_grad(
        lambda x, y: kernel_conditional_infonce(
            x, y, cond, temperature=t, kernel_scale=1.0, **kw)[0],
        argnums=(0, 1)))(a, b)
    assert loss.dtype == jnp.float32 and np.isfinite(float(loss))
    assert all(np.all(np.isfinite(np.asarray(g, np.float32))) for g in grads)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5, atol=0)
    if dtype == jnp.float32:
      # W carries no gradient: hold it at its value at the base point.
      cx, cy = ((_normalize(a64), _normalize(b64)) if c64 is None
                else (c64, c64))
      frozen = (_np_weights(cx, "rbf", 1.0, 0.1),
                _np_weights(cy, "rbf", 1.0, 0.1))
      want_grads = (
          numeric_grad(lambda x: np_ccl(x, b64, None, t=t, scale=1.0,
                                        frozen_w=frozen, **kw), a64),
          numeric_grad(lambda x: np_ccl(a64, x, None, t=t, scale=1.0,
                                        frozen_w=frozen, **kw), b64))
      # Gradients scale with 1/t (up to ~17); measured error at most 2e-5.
      for got, exp in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(got), exp, rtol=1e-4,
                                   atol=1e-4)


def test_errors():
  z = jnp.ones((4, 3))
  c = jnp.zeros((4,))
  with pytest.raises(ValueError,
                     match="hard_negative, fair, weakly_supervised"):
    kernel_conditional_infonce(z, z, c, mode="conditional")
  with pytest.raises(ValueError, match="rbf, laplacian"):
    kernel_conditional_infonce(z, z, c, mode="fair", kernel="gauss")
  with pytest.raises(ValueError, match="z1 must have rank 2"):
    kernel_conditional_infonce(z[0], z, c, mode="fair")
  with pytest.raises(ValueError, match="same shape"):
    kernel_conditional_infonce(z, jnp.ones((5, 3)), c, mode="fair")
  with pytest.raises(ValueError, match="temperature"):
    kernel_conditional_infonce(z, z, c, mode="fair", temperature=0.0)
  with pytest.raises(ValueError, match="lam"):
    kernel_conditional_infonce(z, z, c, mode="fair", lam=-1.0)
  with pytest.raises(ValueError, match="kernel_scale"):
    kernel_conditional_infonce(z, z, c, mode="fair", kernel_scale=-2.0)
  with pytest.raises(ValueError, match="leading dimension 4"):
    kernel_conditional_infonce(z, z, jnp.zeros((5, 2)), mode="fair")
  with pytest.raises(ValueError, match=r"\[n\] or \[n, p\]"):
    kernel_conditional_infonce(z, z, jnp.zeros((4, 2, 1)), mode="fair")
  with pytest.raises(ValueError, match="needs a condition"):
    kernel_conditional_infonce(z, z, None, mode="weakly_supervised")
  with pytest.raises(ValueError, match="pair"):
    kernel_conditional_infonce(z, z, (c, c, c), mode="fair")
  with pytest.raises(ValueError, match="leading dimension 4"):
    kernel_conditional_infonce(z, z, (c, jnp.zeros(3)), mode="fair")
  with pytest.raises(ValueError, match="n >= 2"):
    kernel_conditional_infonce(z[:1], z[:1], c[:1], mode="fair")
