"""contrastive.checks: the array checks and l2_normalize every package uses."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import checks


def test_l2_normalize_rows_in_float32_and_zero_rows_stay_zero():
  x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float64)
  u = checks.l2_normalize(x)
  assert u.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(u), [[0.6, 0.8], [0.0, 0.0]],
                             rtol=1e-6)
  grad = jax.grad(lambda v: checks.l2_normalize(v).sum())(jnp.zeros((1, 3)))
  assert np.all(np.isfinite(np.asarray(grad)))
  cols = checks.l2_normalize(x.T, axis=0)
  np.testing.assert_allclose(np.asarray(cols), np.asarray(u).T, rtol=1e-6)


def test_check_rank_names_the_argument_the_layout_and_the_shape():
  checks.check_rank("z1", jnp.zeros((2, 3)), 2, "[n, d]")
  with pytest.raises(ValueError,
                     match=r"^z1 must have rank 2 \(\[n, d\]\), got shape"
                     r" \(8,\)\.$"):
    checks.check_rank("z1", jnp.zeros(8), 2, "[n, d]")
  with pytest.raises(ValueError, match=r"got shape \(8,\); vmap it\.$"):
    checks.check_rank("x", jnp.zeros(8), 2, "[T, C]", hint="vmap it")


def test_shape_checks_run_on_tracers():
  @jax.jit
  def f(a, b):
    checks.check_rank("a", a, 2, "[n, d]")
    checks.check_same_shape("a", a, "b", b)
    checks.check_same_feature_dim("a", a, "b", b)
    checks.check_finite("a", a)  # values unknown: passes
    return a + b

  f(jnp.ones((2, 3)), jnp.ones((2, 3)))
  with pytest.raises(ValueError, match="must have the same shape"):
    f(jnp.ones((2, 3)), jnp.ones((3, 3)))


def test_same_feature_dim():
  checks.check_same_feature_dim("q", np.zeros((2, 5)), "queue",
                                np.zeros((9, 5)))
  with pytest.raises(ValueError,
                     match=r"q and queue must have the same number of features"
                     r" \(the feature dimension, their last axis\), got shapes"
                     r" \(2, 5\) and \(9, 4\)"):
    checks.check_same_feature_dim("q", np.zeros((2, 5)), "queue",
                                  np.zeros((9, 4)))


def test_check_finite_counts_the_bad_entries():
  checks.check_finite("x", np.ones((2, 2)))
  x = np.ones((2, 3))
  x[0, 1], x[1, 2] = np.nan, np.inf
  with pytest.raises(ValueError, match=r"x contains NaN or infinite values: 2"
                     r" of its 6 entries \(shape \(2, 3\)\)"):
    checks.check_finite("x", x)


def test_is_concrete():
  assert checks.is_concrete(np.ones(2)) and checks.is_concrete(0.5)
  seen = []
  jax.jit(lambda a: seen.append(checks.is_concrete(a)) or a)(1.0)
  assert seen == [False]
