"""ClusterNS's online centroids against an independent NumPy implementation.

The loss that uses them is tested in tests/losses/test_clusterns.py.
"""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from contrastive.clustering import clusterns


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _numpy_farthest(u, k):
  chosen, nearest = [0], u @ u[0]
  for _ in range(1, k):
    pick = int(np.argmin(nearest))
    chosen.append(pick)
    nearest = np.maximum(nearest, u @ u[pick])
  return u[chosen]


def test_centroids_start_below_the_threshold_then_move_with_momentum():
  r = np.random.default_rng(6)
  state = clusterns.init_centroid_state(4, 8)
  same = r.normal(size=(1, 8)).astype(np.float32).repeat(10, 0)
  state = clusterns.update_centroids(state, same, same)   # mean cosine 1
  assert not bool(state.active)
  z1 = r.normal(size=(10, 8)).astype(np.float32)
  z2 = r.normal(size=(10, 8)).astype(np.float32)
  update = jax.jit(functools.partial(clusterns.update_centroids,
                                     momentum=0.7))
  state = update(state, z1, z2)                            # mean cosine ~0
  assert bool(state.active)
  seeds = _numpy_farthest(_unit(z1), 4)
  np.testing.assert_allclose(np.asarray(state.centroids), seeds, atol=1e-6)
  z3 = r.normal(size=(10, 8)).astype(np.float32)
  moved = update(state, z3, z3)
  u3 = _unit(z3)
  members = np.argmax(u3 @ seeds.T, axis=1)
  for j in range(4):
    if np.any(members == j):
      want = _unit(0.7 * seeds[j] + 0.3 * u3[members == j].mean(0))
    else:
      want = seeds[j]
    np.testing.assert_allclose(np.asarray(moved.centroids[j]), want,
                               atol=1e-5)


def test_errors():
  r = np.random.default_rng(0)
  z1 = r.normal(size=(6, 5)).astype(np.float32)
  z2 = r.normal(size=(6, 5)).astype(np.float32)
  with pytest.raises(ValueError, match="num_clusters <= the global batch"):
    clusterns.farthest_point_centroids(z1, 7)
  with pytest.raises(ValueError, match="momentum must lie in"):
    clusterns.update_centroids(clusterns.init_centroid_state(2, 5), z1, z2,
                               momentum=1.0)
  with pytest.raises(ValueError, match="num_clusters >= 2"):
    clusterns.init_centroid_state(1, 5)
