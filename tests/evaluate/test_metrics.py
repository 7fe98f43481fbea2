"""Alignment and uniformity (Wang & Isola 2020) against NumPy formulas."""
from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.evaluate import alignment
from contrastive.evaluate import similarity_distribution
from contrastive.evaluate import uniformity


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_alignment(u1, u2, alpha):
  return np.mean([np.linalg.norm(a - b) ** alpha for a, b in zip(u1, u2)])


def _np_uniformity(u, t):
  pairs = itertools.combinations(range(len(u)), 2)
  potentials = [np.exp(-t * np.sum((u[i] - u[j]) ** 2)) for i, j in pairs]
  return np.log(np.mean(potentials))


@pytest.fixture(scope="module")
def views():
  rng = np.random.default_rng(0)
  u1 = rng.normal(size=(13, 5))
  u2 = u1 + 0.5 * rng.normal(size=(13, 5))
  return u1.astype(np.float32), u2.astype(np.float32)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("normalize", [True, False])
def test_alignment_matches_numpy(views, alpha, normalize):
  u1, u2 = (x.astype(np.float64) for x in views)
  if normalize:
    u1, u2 = _normalize(u1), _normalize(u2)
  got = alignment(*views, alpha=alpha, normalize=normalize)
  assert got.shape == ()
  np.testing.assert_allclose(got, _np_alignment(u1, u2, alpha), rtol=1e-5)


def test_alignment_limits(views):
  u1, _ = views
  assert float(alignment(u1, u1)) == pytest.approx(0.0, abs=1e-6)
  # Rescaling a view changes nothing on the sphere; antipodes give 2^2.
  assert float(alignment(u1, 3.0 * u1)) == pytest.approx(0.0, abs=1e-6)
  assert float(alignment(u1, -u1)) == pytest.approx(4.0, rel=1e-6)


@pytest.mark.parametrize("t", [1.0, 2.0])
@pytest.mark.parametrize("chunk_size", [1, 4, 13])
def test_uniformity_matches_numpy(views, t, chunk_size):
  u = views[0].astype(np.float64)
  got = uniformity(views[0], t=t, chunk_size=chunk_size)
  np.testing.assert_allclose(got, _np_uniformity(_normalize(u), t), rtol=1e-5)


def test_uniformity_unnormalized_features(views):
  """Far-apart raw features: potentials near exp(-200) must not underflow."""
  u = 5.0 * views[0].astype(np.float64)
  got = uniformity(u.astype(np.float32), normalize=False, t=2.0)
  expected = _np_uniformity(u, 2.0)
  assert expected < -40
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_uniformity_limits():
  same = np.tile([[0.3, -1.0, 2.0]], (6, 1)).astype(np.float32)
  assert float(uniformity(same)) == pytest.approx(0.0, abs=1e-6)
  assert float(uniformity(same, max_points=3)) == pytest.approx(0.0, abs=1e-6)
  # Two antipodal points: log exp(-2 * 4).
  assert float(uniformity(np.array([[0.0, 1.0], [0.0, -2.0]]))) == (
      pytest.approx(-8.0)
  )
  # Uniform points in high dimension: pairwise squared distances near 2.
  spread = np.random.default_rng(1).normal(size=(200, 512))
  assert float(uniformity(spread.astype(np.float32))) == pytest.approx(
      -4.0, abs=0.1
  )


def test_uniformity_subsampling():
  u = np.random.default_rng(2).normal(size=(300, 3)).astype(np.float32)
  exact = float(uniformity(u, max_points=None))
  np.testing.assert_allclose(
      exact, _np_uniformity(_normalize(u.astype(np.float64)), 2.0), rtol=1e-5
  )
  assert float(uniformity(u, max_points=300)) == pytest.approx(exact)
  estimate = float(uniformity(u, max_points=100, seed=0))
  assert estimate != exact
  assert estimate == pytest.approx(exact, abs=0.1)
  assert float(uniformity(u, max_points=100, seed=0)) == estimate
  assert float(uniformity(u, max_points=100, seed=1)) != estimate


def test_gradients_match_finite_differences(views):
  u1, u2 = (x.astype(np.float64) for x in views)
  direction = np.random.default_rng(3).normal(size=u1.shape)
  eps = 1e-4

  def numeric(f):
    return (f(u1 + eps * direction) - f(u1 - eps * direction)) / (2 * eps)

  cases = [
      (lambda u: alignment(u, u2), lambda u: _np_alignment(
          _normalize(u), _normalize(u2), 2.0)),
      (lambda u: uniformity(u, chunk_size=4),
       lambda u: _np_uniformity(_normalize(u), 2.0)),
  ]
  for ours, reference in cases:
    grad = jax.grad(ours)(jnp.asarray(u1, jnp.float32))
    assert np.all(np.isfinite(grad))
    directional = float(jnp.sum(grad * direction))
    assert directional == pytest.approx(numeric(reference), rel=1e-3, abs=1e-4)


def test_gradient_is_finite_for_coinciding_points(views):
  same = jnp.ones_like(views[0])
  assert np.all(np.isfinite(jax.grad(uniformity)(same, chunk_size=4)))
  assert np.all(np.isfinite(jax.grad(lambda u: alignment(u, u))(same)))


def test_jit_and_vmap(views):
  u1, u2 = views
  np.testing.assert_allclose(
      jax.jit(alignment)(u1, u2), alignment(u1, u2), rtol=1e-6
  )
  np.testing.assert_allclose(
      jax.jit(functools.partial(uniformity, chunk_size=5))(u1),
      uniformity(u1), rtol=1e-6,
  )
  batch = np.stack([u1, u2, u1[::-1]])
  np.testing.assert_allclose(
      jax.vmap(uniformity)(batch), [uniformity(b) for b in batch], rtol=1e-6
  )
  np.testing.assert_allclose(
      jax.vmap(alignment)(batch, batch[::-1]),
      [alignment(a, b) for a, b in zip(batch, batch[::-1])], rtol=1e-6,
  )
  sampled = jax.jit(similarity_distribution, static_argnames="num_negatives")
  np.testing.assert_allclose(
      sampled(u1, u2, num_negatives=20).negative,
      similarity_distribution(u1, u2, num_negatives=20).negative, rtol=1e-6,
  )


def test_similarity_distribution_all_negatives(views):
  u1, u2 = views
  sims = _normalize(u1.astype(np.float64)) @ _normalize(u2.astype(np.float64)).T
  result = similarity_distribution(u1, u2, num_negatives=13 * 12)
  np.testing.assert_allclose(result.positive, np.diag(sims), atol=1e-6)
  off_diagonal = [sims[i, j] for i in range(13) for j in range(13) if i != j]
  np.testing.assert_allclose(result.negative, off_diagonal, atol=1e-6)


def test_similarity_distribution_samples_only_negatives():
  # Orthogonal vectors: the positive similarity (u1 = u2) is 1, every
  # negative pair has similarity 0.
  u = np.eye(16, dtype=np.float32) * np.arange(1, 17, dtype=np.float32)[:, None]
  result = similarity_distribution(u, u, num_negatives=200, seed=4)
  np.testing.assert_allclose(result.positive, np.ones(16), atol=1e-6)
  assert result.negative.shape == (200,)
  np.testing.assert_allclose(result.negative, np.zeros(200), atol=1e-6)
  other = similarity_distribution(u, u[::-1], num_negatives=200, seed=4)
  # Rows reversed: pair (i, 15 - i) is the one negative pair with s = 1, so
  # 16 of the 240 negative pairs (1/15) have s = 1.
  fraction_equal = float(jnp.mean(other.negative > 0.5))
  assert 0.02 < fraction_equal < 0.15


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda u: alignment(u, u[:5]), "same shape"),
        (lambda u: alignment(u[0], u[0]), "rank 2"),
        (lambda u: alignment(u, u, alpha=0.0), "alpha"),
        (lambda u: uniformity(u[:1]), "N >= 2"),
        (lambda u: uniformity(u, t=-1.0), "t must be"),
        (lambda u: uniformity(u, max_points=1), "max_points"),
        (lambda u: uniformity(u[None]), "rank 2"),
        (lambda u: uniformity(np.full_like(u, np.nan)), "NaN"),
        (lambda u: similarity_distribution(u, u, num_negatives=0), ">= 1"),
        (lambda u: similarity_distribution(u[:1], u[:1]), "N >= 2"),
    ],
)
def test_errors(views, call, message):
  with pytest.raises(ValueError, match=message):
    call(views[0])
