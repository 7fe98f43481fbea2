"""Tests of contrastive.losses.kernels: hand-computed values, NumPy."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses import kernels

# Three 2-D conditions with easy geometry: squared distances 1, 4 and 5.
C3 = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
# Three 2-D conditions with inner products <0,1> = 1, <0,2> = 0, <1,2> = 2.
D3 = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])


def _sym(off01, off02, off12):
  """A 3x3 symmetric matrix with unit diagonal and the given off-diagonals."""
  return np.array([[1.0, off01, off02], [off01, 1.0, off12],
                   [off02, off12, 1.0]])


@pytest.mark.parametrize(
    "name, c, scale, expected",
    [
        ("rbf", C3, 2.0,
         _sym(math.exp(-0.5), math.exp(-2.0), math.exp(-2.5))),
        ("laplacian", C3, 2.0,
         _sym(math.exp(-0.5), math.exp(-1.0), math.exp(-math.sqrt(5) / 2))),
        ("cosine", D3, 7.0, _sym(1 / math.sqrt(2), 0.0, 1 / math.sqrt(2))),
        # Linear and polynomial get a unit diagonal too, as in the reference.
        ("linear", D3, 2.0, _sym(0.5, 0.0, 1.0)),
        ("polynomial", D3, 2.0, _sym(0.5, 0.0, 4.0)),
        ("categorical", np.array([3, 7, 3]), 1.0, _sym(0.0, 1.0, 0.0)),
    ],
)
def test_kernel_hand_computed(name, c, scale, expected):
  got = kernels.condition_kernel(jnp.asarray(c), kernel=name,
                                 kernel_scale=scale)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-7)


def test_kernel_dict_is_explicit():
  assert set(kernels.KERNELS) == {
      "rbf", "laplacian", "cosine", "linear", "polynomial", "categorical"}


def test_one_dimensional_condition_is_a_column():
  c = jnp.array([0.0, 1.0, 3.0])
  for name in kernels.KERNELS:
    a = kernels.condition_kernel(c, kernel=name, kernel_scale=2.0)
    b = kernels.condition_kernel(c[:, None], kernel=name, kernel_scale=2.0)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
  rbf = kernels.condition_kernel(c, kernel="rbf", kernel_scale=2.0)
  np.testing.assert_allclose(float(rbf[0, 2]), math.exp(-9 / 2), rtol=1e-6)


def test_categorical_rows_and_large_ids():
  rows = jnp.array([[1, 2], [1, 3], [1, 2]])
  np.testing.assert_array_equal(
      np.asarray(kernels.condition_kernel(rows, kernel="categorical")),
      _sym(0.0, 1.0, 0.0))
  # 2^24 and 2^24 + 1 are the same float32; ids must compare exactly.
  ids = jnp.array([2**24, 2**24 + 1], jnp.int32)
  np.testing.assert_array_equal(
      np.asarray(kernels.condition_kernel(ids, kernel="categorical")),
      np.eye(2))


def test_laplacian_has_finite_gradient_at_duplicates():
  c = jnp.array([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
  g = jax.grad(lambda x: jnp.sum(
      kernels.condition_kernel(x, kernel="laplacian")))(c)
  assert np.all(np.isfinite(np.asarray(g)))


def _np_weights(gram, lam, threshold=1e-6):
  """W = (K + lam I)^-1 K, diagonal and entries < threshold zeroed."""
  n = gram.shape[0]
  w = np.linalg.inv(gram + lam * np.eye(n)) @ gram
  for i in range(n):
    for j in range(n):
      if i == j or w[i, j] < threshold:
        w[i, j] = 0.0
  return w


def _np_rbf(c, scale):
  n = c.shape[0]
  k = np.ones((n, n))
  for i in range(n):
    for j in range(n):
      if i != j:
        k[i, j] = math.exp(-np.sum((c[i] - c[j]) ** 2) / scale)
  return k


@pytest.mark.parametrize("lam", [0.01, 0.5, 10.0])
def test_conditional_weights_match_numpy(lam):
  rng = np.random.default_rng(0)
  c = rng.normal(size=(5, 2))
  gram = _np_rbf(c, 1.0)
  got = kernels.conditional_weights(jnp.asarray(gram, jnp.float32), lam=lam)
  np.testing.assert_allclose(np.asarray(got), _np_weights(gram, lam),
                             rtol=2e-4, atol=2e-5)


def test_conditional_weights_properties():
  rng = np.random.default_rng(1)
  # Linear kernel on signed features: W has negative entries before clipping.
  c = rng.normal(size=(6, 3))
  gram = kernels.condition_kernel(jnp.asarray(c), kernel="linear",
                                  kernel_scale=3.0)
  raw = np.linalg.solve(np.asarray(gram, np.float64) + 0.5 * np.eye(6),
                        np.asarray(gram, np.float64))
  assert raw.min() < 0  # The clipping below is exercised.
  w = np.asarray(kernels.conditional_weights(gram, lam=0.5, threshold=1e-3))
  np.testing.assert_array_equal(np.diag(w), 0.0)
  assert np.all((w == 0) | (w >= 1e-3))
  # The kept entries are the raw solution's, unchanged.
  kept = (raw >= 1e-3) & ~np.eye(6, dtype=bool)
  np.testing.assert_array_equal(w > 0, kept)
  np.testing.assert_allclose(w[kept], raw[kept], rtol=1e-3)


def test_conditional_weights_have_no_gradient():
  gram = jnp.asarray(_np_rbf(np.arange(4.0)[:, None], 2.0), jnp.float32)
  g = jax.grad(lambda k: jnp.sum(kernels.conditional_weights(k, lam=0.1)))(
      gram)
  np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_large_lambda_gives_k_over_lambda_then_zero():
  c = np.array([[0.0], [0.5], [1.5]])
  gram = _np_rbf(c, 1.0)
  lam = 1e3
  w = np.asarray(kernels.conditional_weights(
      jnp.asarray(gram, jnp.float32), lam=lam))
  off = ~np.eye(3, dtype=bool)
  # (K + lam I)^-1 K = K / lam - K^2 / lam^2 + ...: relative error ~ n / lam.
  np.testing.assert_allclose(w[off], gram[off] / lam, rtol=5e-3)
  # Once K / lam drops under the threshold, everything is clipped.
  w = kernels.conditional_weights(jnp.asarray(gram, jnp.float32), lam=1e8)
  np.testing.assert_array_equal(np.asarray(w), 0.0)


def test_categorical_groups_give_uniform_in_group_weights():
  # For a group of m equal conditions K_g = 1 1^T and
  # (1 1^T + lam I)^-1 1 1^T = 1 1^T / (m + lam): weight 1/(m + lam) within
  # the group, 0 across groups, and 0 for a singleton (K = I -> W = 0 after
  # the diagonal is zeroed).
  ids = jnp.array([0, 0, 0, 1, 1, 2])
  lam = 0.3
  w = np.asarray(kernels.conditional_weights(
      kernels.condition_kernel(ids, kernel="categorical"), lam=lam))
  expected = np.zeros((6, 6))
  sizes = {0: 3, 1: 2, 2: 1}
  ids_np = np.asarray(ids)
  for i in range(6):
    for j in range(6):
      if i != j and ids_np[i] == ids_np[j]:
        expected[i, j] = 1.0 / (sizes[int(ids_np[i])] + lam)
  np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-7)


def test_jit_and_vmap():
  rng = np.random.default_rng(2)
  cs = jnp.asarray(rng.normal(size=(3, 4, 2)), jnp.float32)

  def f(c):
    return kernels.conditional_weights(
        kernels.condition_kernel(c, kernel="rbf", kernel_scale=2.0), lam=0.1)

  batched = jax.vmap(f)(cs)
  jitted = jax.jit(f)
  for b in range(3):
    np.testing.assert_allclose(np.asarray(batched[b]), np.asarray(f(cs[b])),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(jitted(cs[b])),
                               np.asarray(f(cs[b])), rtol=1e-5, atol=1e-7)


def test_errors():
  c = jnp.zeros((3, 2))
  with pytest.raises(ValueError, match="rbf, laplacian, cosine"):
    kernels.condition_kernel(c, kernel="gaussian")
  with pytest.raises(ValueError, match=r"\[n\] or \[n, p\]"):
    kernels.condition_kernel(jnp.zeros((3, 2, 1)))
  with pytest.raises(ValueError, match=r"\[n\] or \[n, p\]"):
    kernels.condition_kernel(jnp.float32(1.0))
  with pytest.raises(ValueError, match="kernel_scale"):
    kernels.condition_kernel(c, kernel="rbf", kernel_scale=0.0)
  gram = jnp.eye(3)
  with pytest.raises(ValueError, match="lam"):
    kernels.conditional_weights(gram, lam=-1.0)
  with pytest.raises(ValueError, match="lam"):
    kernels.conditional_weights(gram, lam=0.0)
  with pytest.raises(ValueError, match="square"):
    kernels.conditional_weights(jnp.zeros((3, 2)), lam=1.0)
  with pytest.raises(ValueError, match="rank 2"):
    kernels.conditional_weights(jnp.zeros((3,)), lam=1.0)
