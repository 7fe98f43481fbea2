"""k-means vs a plain-NumPy Lloyd implementation written from the algorithm."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.negatives import kmeans as km


def _unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _blobs(seed, n=240, d=3, k=5, spread=4.0, std=1.0):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, d)) * spread
  labels = rng.integers(0, k, n)
  x = centers[labels] + std * rng.normal(size=(n, d))
  return x.astype(np.float32), labels


def _np_lloyd(x, init, num_iters, spherical, tol=0.0):
  """Lloyd's algorithm in float64; empty clusters take the farthest points."""
  x = x.astype(np.float64)
  c = init.astype(np.float64)
  if spherical:
    x, c = _unit(x), _unit(c)
  k = len(c)
  tol_abs = tol * np.mean(np.var(x, axis=0))
  it, shift = 0, np.inf
  while it < num_iters and shift > tol_abs:
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    a, dist = d2.argmin(1), d2.min(1)
    new = np.empty_like(c)
    empty = []
    for j in range(k):
      members = x[a == j]
      if len(members):
        new[j] = members.mean(0)
        if spherical:
          new[j] /= np.linalg.norm(new[j])
      else:
        empty.append(j)
    farthest = np.argsort(-dist, kind="stable")
    for r, j in enumerate(empty):
      new[j] = x[farthest[r]]
    shift = ((new - c) ** 2).sum()
    c, it = new, it + 1
  d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
  return c, d2.argmin(1), d2.min(1).sum(), it


@pytest.mark.parametrize("spherical", [False, True])
def test_matches_numpy_lloyd_from_same_init(spherical):
  x, _ = _blobs(0)
  init = x[:5] + 0.1
  for num_iters, tol in ((1, 0.0), (4, 0.0), (50, 0.0), (50, 1e-2)):
    got = km.kmeans(None, x, 5, init=init, num_iters=num_iters, tol=tol,
                    spherical=spherical, chunk_size=64)
    c, a, inertia, iters = _np_lloyd(x, init, num_iters, spherical, tol)
    np.testing.assert_array_equal(got.assignments, a)
    np.testing.assert_allclose(got.centroids, c, atol=1e-5)
    np.testing.assert_allclose(got.inertia, inertia, rtol=1e-5)
    assert int(got.num_iters) == iters
  assert iters < 50  # the tolerance stopped the loop early in both


def test_empty_cluster_reseeded_at_farthest_point():
  x, _ = _blobs(1, n=60, k=3)
  init = np.concatenate([x[:3], np.full((2, 3), 100.0, np.float32)])
  got = km.kmeans(None, x, 5, init=init, num_iters=1, spherical=False)
  c, a, _, _ = _np_lloyd(x, init, 1, False)
  np.testing.assert_allclose(got.centroids, c, atol=1e-5)
  np.testing.assert_array_equal(got.assignments, a)
  # Both far centroids moved onto data points, distinct ones.
  moved = np.asarray(got.centroids[3:])
  assert all(np.any(np.all(np.isclose(x, m), axis=1)) for m in moved)
  assert not np.allclose(moved[0], moved[1])
  full = km.kmeans(None, x, 5, init=init, num_iters=20, spherical=False)
  assert np.bincount(np.asarray(full.assignments), minlength=5).min() > 0
  assert np.isfinite(np.asarray(full.centroids)).all()


def _same_partition(a, b):
  pairs = set(zip(a.tolist(), b.tolist()))
  return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("spherical", [False, True])
def test_recovers_planted_clusters(spherical):
  x, labels = _blobs(2, n=300, d=4, k=4, spread=10.0, std=0.3)
  got = km.kmeans(jax.random.key(0), x, 4, num_iters=20, spherical=spherical)
  assert _same_partition(np.asarray(got.assignments), labels)


def test_kmeans_plus_plus_beats_random_init_on_average():
  x, _ = _blobs(3, n=400, d=2, k=10, spread=10.0, std=0.3)
  inertia = {"kmeans++": [], "random": []}
  for init, seed in itertools.product(inertia, range(8)):
    r = km.kmeans(jax.random.key(seed), x, 10, init=init, num_iters=0,
                  spherical=False)
    inertia[init].append(float(r.inertia))
  assert np.mean(inertia["kmeans++"]) < 0.5 * np.mean(inertia["random"])


def test_d2_sampling_distribution():
  # k = 2, one trial: P(first = f, second = s) = 1/N * D2_f(s) / sum D2_f.
  x = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
  reps = 8000
  keys = jax.random.split(jax.random.key(0), reps)
  seeds = jax.vmap(lambda r: km.kmeans_plus_plus(r, x, 2, spherical=False,
                                                 num_local_trials=1))(keys)
  first = np.rint(np.asarray(seeds[:, 0, 0])).astype(int)
  second = np.rint(np.asarray(seeds[:, 1, 0])).astype(int)
  pts = x[:, 0].astype(int).tolist()
  counts = np.zeros((4, 4))
  for f, s in zip(first, second):
    counts[pts.index(f), pts.index(s)] += 1
  expected = np.zeros((4, 4))
  for f in range(4):
    d2 = (x[:, 0] - x[f, 0]) ** 2
    expected[f] = 0.25 * d2 / d2.sum()
  freq = counts / reps
  bound = 5 * np.sqrt(expected * (1 - expected) / reps) + 1e-3
  assert np.all(np.abs(freq - expected) <= bound), (freq, expected)


def test_greedy_trials_pick_the_lowest_potential():
  # With 200 trials on 6 points every point is a candidate: the second seed is
  # the point that minimises the potential sum_i min(D2_first(i), D2_s(i)).
  x = np.array([[0.0], [1.0], [3.0], [10.0], [11.0], [13.0]], np.float32)
  for seed in range(3):
    seeds = np.asarray(km.kmeans_plus_plus(
        jax.random.key(seed), x, 2, spherical=False, num_local_trials=200))
    d2_first = (x[:, 0] - seeds[0, 0]) ** 2
    def potential(s):
      return np.sum(np.minimum(d2_first, (x[:, 0] - s) ** 2))

    assert potential(seeds[1, 0]) == min(potential(s) for s in x[:, 0])


def test_seeding_ignores_chunk_padding():
  # N = 30 in chunks of 7 leaves 5 zero padding rows; the data sit far from
  # the origin, so a padding row among the seeds would show.
  x, _ = _blobs(8, n=30, d=3, k=4)
  x = x + 50.0
  for seed in range(3):
    padded = km.kmeans_plus_plus(jax.random.key(seed), x, 6, spherical=False,
                                 chunk_size=7)
    whole = km.kmeans_plus_plus(jax.random.key(seed), x, 6, spherical=False,
                                chunk_size=30)
    np.testing.assert_allclose(padded, whole, atol=1e-5)
    for c in np.asarray(padded):
      assert np.any(np.all(np.isclose(x, c), axis=1))
    assert len({tuple(c) for c in np.asarray(padded).round(4)}) == 6


def test_spherical_mode():
  x, _ = _blobs(4, n=200, d=5, k=4, spread=5.0, std=0.5)
  r = km.kmeans(jax.random.key(1), x, 4, num_iters=10, spherical=True)
  norms = np.linalg.norm(r.centroids, axis=1)
  np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
  cos = _unit(x) @ np.asarray(r.centroids).T
  np.testing.assert_array_equal(r.assignments, cos.argmax(1))
  np.testing.assert_allclose(r.inertia, np.sum(2 - 2 * cos.max(1)), rtol=1e-4)
  # Invariant to rescaling each point.
  scale = np.random.default_rng(5).uniform(0.1, 10.0, (200, 1))
  scale = scale.astype(np.float32)
  r2 = km.kmeans(jax.random.key(1), x * scale, 4, num_iters=10, spherical=True)
  np.testing.assert_array_equal(r.assignments, r2.assignments)


def test_assign_chunked_and_jit():
  x, _ = _blobs(6, n=101, d=3, k=6)
  c = x[:6]
  d2 = ((x[:, None] - c[None]) ** 2).sum(-1)
  for chunk_size in (7, 101):
    np.testing.assert_array_equal(
        km.assign(x, c, spherical=False, chunk_size=chunk_size), d2.argmin(1)
    )
  np.testing.assert_array_equal(
      km.assign(x, c, spherical=True), (_unit(x) @ _unit(c).T).argmax(1)
  )
  fit = jax.jit(lambda r, x: km.kmeans(r, x, 6, num_iters=5, chunk_size=16))
  a = fit(jax.random.key(0), x)
  b = km.kmeans(jax.random.key(0), x, 6, num_iters=5, chunk_size=16)
  np.testing.assert_array_equal(a.assignments, b.assignments)
  assert a.assignments.dtype == jnp.int32


def test_errors():
  x, _ = _blobs(7, n=20)
  with pytest.raises(ValueError, match="Unknown init 'pp'; valid values are"):
    km.kmeans(None, x, 3, init="pp")
  with pytest.raises(ValueError, match="num_clusters"):
    km.kmeans(jax.random.key(0), x, 21)
  with pytest.raises(ValueError, match="PRNG key"):
    km.kmeans(None, x, 3)
  with pytest.raises(ValueError, match="init centroids must have shape"):
    km.kmeans(None, x, 3, init=x[:2])
  with pytest.raises(ValueError, match="rank 2"):
    km.kmeans(None, x[0], 3)
  with pytest.raises(ValueError, match="num_iters"):
    km.kmeans(None, x, 3, num_iters=-1)
  with pytest.raises(ValueError, match="tol"):
    km.kmeans(None, x, 3, tol=-1.0)
  with pytest.raises(ValueError, match="chunk_size"):
    km.assign(x, x[:3], chunk_size=0)
  with pytest.raises(ValueError, match="centroids"):
    km.assign(x, x[:3, :2])
  with pytest.raises(ValueError, match="num_local_trials"):
    km.kmeans_plus_plus(jax.random.key(0), x, 3, num_local_trials=0)
