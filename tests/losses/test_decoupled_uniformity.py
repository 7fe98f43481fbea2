"""Tests of decoupled uniformity against a float64 NumPy reference."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from contrastive.losses.decoupled_uniformity import decoupled_uniformity
from tests.losses.numeric import np_kernel, numeric_grad

# Compiled once per (kernel, shapes); the error tests call the plain function.
_jitted = jax.jit(decoupled_uniformity, static_argnames=("kernel",))


def np_decoupled_uniformity(views, prior=None, kernel=None, lam=None, t=2.0,
                            scale=1.0):
  """L = log(mean_{i<j} exp(-t ||mu_i - mu_j||^2)), explicit loops."""
  u = views / np.linalg.norm(views, axis=-1, keepdims=True)
  n = u.shape[0]
  mu = u.mean(axis=1)
  if prior is not None:
    lam = 1.0 / math.sqrt(n) if lam is None else lam
    k = np_kernel(prior, kernel, scale)
    alpha = np.linalg.inv(k + lam * np.eye(n)) @ k
    mu = alpha @ mu
  terms = [math.exp(-t * np.sum((mu[i] - mu[j]) ** 2))
           for i in range(n) for j in range(i + 1, n)]
  return math.log(np.mean(terms))


def _views(seed, n=5, v=2, d=3):
  return np.random.default_rng(seed).normal(size=(n, v, d))


def _jax(views, **kw):
  if kw.get("prior") is not None:
    kw["prior"] = jnp.asarray(kw["prior"])
  return _jitted(jnp.asarray(views, jnp.float32), **kw)


@pytest.mark.parametrize("v", [2, 3])
@pytest.mark.parametrize("t", [2.0, 0.5])
def test_no_prior_matches_numpy(v, t):
  views = _views(0, v=v)
  loss, aux = _jax(views, t=t)
  assert loss.dtype == jnp.float32
  np.testing.assert_allclose(float(loss), np_decoupled_uniformity(views, t=t),
                             rtol=1e-5, atol=1e-6)
  assert set(aux) >= {"pos_sim", "neg_sim", "top1", "centroid_norm",
                      "alignment"}


@pytest.mark.parametrize(
    "kernel, prior, lam, scale",
    [
        ("rbf", np.array([0.0, 0.3, 1.0, 1.2, 3.0]), None, 1.0),
        ("rbf", np.arange(10.0).reshape(5, 2) / 4, 0.05, 2.0),
        ("cosine", np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.5],
                             [0.2, -1.0]]), 0.5, 1.0),
        ("categorical", np.array([0, 0, 1, 1, 1]), None, 1.0),
    ],
)
def test_prior_matches_numpy(kernel, prior, lam, scale):
  views = _views(1, v=3)
  loss, _ = _jax(views, prior=prior, kernel=kernel, lam=lam,
                 kernel_scale=scale)
  expected = np_decoupled_uniformity(views, prior, kernel, lam, 2.0, scale)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("with_prior", [False, True])
def test_gradient_matches_finite_differences(with_prior):
  views = _views(2, n=4, v=2, d=3)
  prior = np.array([0.0, 0.5, 1.5, 1.7]) if with_prior else None
  kernel = "rbf" if with_prior else None
  expected = numeric_grad(
      lambda x: np_decoupled_uniformity(x, prior, kernel, 0.3), views)
  grad = jax.jit(jax.grad(lambda x: decoupled_uniformity(
      x, prior=None if prior is None else jnp.asarray(prior), kernel=kernel,
      lam=0.3)[0]))(jnp.asarray(views, jnp.float32))
  np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-3,
                             atol=1e-4)


def test_equal_views_give_wang_isola_uniformity():
  # With every view equal mu_i = u_i, and the loss is the uniformity
  # log E exp(-2 ||u_i - u_j||^2) of the samples (Wang and Isola, 2020).
  z = np.random.default_rng(3).normal(size=(6, 4))
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  uniformity = math.log(np.mean(np.exp(-2.0 * pdist(u, "sqeuclidean"))))
  for v in (2, 4):
    views = np.repeat(z[:, None, :], v, axis=1) * np.arange(1, v + 1)[
        None, :, None]  # Rescaled copies: equal after normalisation.
    loss, aux = _jax(views)
    np.testing.assert_allclose(float(loss), uniformity, rtol=1e-5)
    np.testing.assert_allclose(float(aux["centroid_norm"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(aux["pos_sim"]), 1.0, rtol=1e-6)


def test_distinct_categorical_prior_rescales_t():
  # K = I gives alpha = I / (1 + lam): mu shrinks by 1 / (1 + lam), which is
  # the prior-free loss with t / (1 + lam)^2.
  views = _views(4)
  lam = 0.5
  loss, _ = _jax(views, prior=np.arange(5), kernel="categorical", lam=lam)
  expected = np_decoupled_uniformity(views, t=2.0 / (1 + lam) ** 2)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_lambda_limits():
  views = _views(5)
  prior = np.array([0.0, 0.4, 1.1, 1.3, 2.5])
  # lam -> infinity: alpha ~ K / lam -> 0, every centroid -> 0, L -> log 1.
  loss, aux = _jax(views, prior=prior, kernel="rbf", lam=1e6)
  assert abs(float(loss)) < 1e-5
  assert float(aux["centroid_norm"]) < 1e-5
  # lam -> 0 with an invertible K: alpha -> I, the prior-free loss.
  loss, _ = _jax(views, prior=prior, kernel="rbf", lam=1e-5)
  np.testing.assert_allclose(float(loss), np_decoupled_uniformity(views),
                             rtol=1e-3)


def test_no_gradient_through_prior():
  views = jnp.asarray(_views(6), jnp.float32)
  g = jax.jit(jax.grad(lambda p: decoupled_uniformity(
      views, prior=p, kernel="rbf")[0]))(jnp.arange(5.0))
  np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_metrics_match_numpy():
  views = _views(7, n=4, v=3)
  _, aux = _jax(views)
  u = views / np.linalg.norm(views, axis=-1, keepdims=True)
  n, v, _ = u.shape
  pos_all, neg_all, top1 = [], [], []
  for i in range(n):
    for a in range(v):
      pos = [u[i, a] @ u[i, b] for b in range(v) if b != a]
      neg = [u[i, a] @ u[j, b] for j in range(n) if j != i for b in range(v)]
      pos_all.append(np.mean(pos))
      neg_all.append(np.mean(neg))
      top1.append(np.mean(pos) > max(neg))
  np.testing.assert_allclose(float(aux["pos_sim"]), np.mean(pos_all),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(aux["neg_sim"]), np.mean(neg_all),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(float(aux["top1"]), np.mean(top1), rtol=1e-6)
  mu = u.mean(axis=1)
  np.testing.assert_allclose(float(aux["centroid_norm"]),
                             np.mean(np.linalg.norm(mu, axis=1)), rtol=1e-5)
  np.testing.assert_allclose(float(aux["alignment"]),
                             np.mean(np.sum(mu**2, axis=1)), rtol=1e-5)


def test_jit_and_vmap():
  views = np.random.default_rng(8).normal(size=(3, 4, 2, 3))
  priors = np.random.default_rng(9).normal(size=(3, 4, 2))

  def f(x, p):
    return decoupled_uniformity(x, prior=p, kernel="rbf", lam=0.2)[0]

  batched = jax.jit(jax.vmap(f))(jnp.asarray(views, jnp.float32),
                                 jnp.asarray(priors, jnp.float32))
  for b in range(3):
    expected = np_decoupled_uniformity(views[b], priors[b], "rbf", 0.2)
    np.testing.assert_allclose(float(batched[b]), expected, rtol=1e-5)
  # A traced t and lam pass through jit.
  g = jax.jit(lambda t, lam: decoupled_uniformity(
      jnp.asarray(views[0], jnp.float32), prior=jnp.asarray(priors[0]),
      kernel="rbf", lam=lam, t=t)[0])
  np.testing.assert_allclose(
      float(g(2.0, 0.2)), np_decoupled_uniformity(views[0], priors[0], "rbf",
                                                  0.2), rtol=1e-5)


def test_large_t_and_bfloat16_are_finite():
  views = _views(10, n=6, v=2, d=4)
  # exp(-100 * 4) underflows float32; the log-sum-exp keeps the loss finite.
  loss, grad = jax.jit(jax.value_and_grad(
      lambda x: decoupled_uniformity(x, t=100.0)[0]))(
          jnp.asarray(views, jnp.float32))
  assert np.isfinite(float(loss))
  assert np.all(np.isfinite(np.asarray(grad)))
  np.testing.assert_allclose(float(loss),
                             np_decoupled_uniformity(views, t=100.0),
                             rtol=1e-5)
  bf = jnp.asarray(views, jnp.bfloat16)
  loss_bf, _ = _jitted(bf, prior=jnp.arange(6, dtype=jnp.bfloat16),
                       kernel="rbf")
  assert loss_bf.dtype == jnp.float32
  expected = np_decoupled_uniformity(np.asarray(bf, np.float64),
                                     np.arange(6.0), "rbf")
  np.testing.assert_allclose(float(loss_bf), expected, rtol=1e-4)


def test_errors():
  views = jnp.ones((4, 2, 3))
  with pytest.raises(ValueError, match="rank 3"):
    decoupled_uniformity(jnp.ones((4, 3)))
  with pytest.raises(ValueError, match="v >= 2"):
    decoupled_uniformity(jnp.ones((4, 1, 3)))
  with pytest.raises(ValueError, match="n >= 2"):
    decoupled_uniformity(jnp.ones((1, 2, 3)))
  with pytest.raises(ValueError, match="prior and kernel go together"):
    decoupled_uniformity(views, prior=jnp.zeros(4))
  with pytest.raises(ValueError, match="prior and kernel go together"):
    decoupled_uniformity(views, kernel="rbf")
  with pytest.raises(ValueError, match="rbf, laplacian"):
    decoupled_uniformity(views, prior=jnp.zeros(4), kernel="gaussian")
  with pytest.raises(ValueError, match="leading dimension 4"):
    decoupled_uniformity(views, prior=jnp.zeros(5), kernel="rbf")
  with pytest.raises(ValueError, match=r"\[n\] or \[n, p\]"):
    decoupled_uniformity(views, prior=jnp.zeros((4, 1, 1)), kernel="rbf")
  with pytest.raises(ValueError, match="t must be > 0"):
    decoupled_uniformity(views, t=0.0)
  with pytest.raises(ValueError, match="lam"):
    decoupled_uniformity(views, prior=jnp.zeros(4), kernel="rbf", lam=-0.1)
  with pytest.raises(ValueError, match="kernel_scale"):
    decoupled_uniformity(views, prior=jnp.zeros(4), kernel="rbf",
                         kernel_scale=0.0)
