"""Masks of allowed negatives vs loop-built NumPy references."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.negatives import masks


def _ids(seed, n, k, stages=None, high=3):
  rng = np.random.default_rng(seed)
  shape_a = (n,) if stages is None else (n, stages)
  shape_c = (k,) if stages is None else (k, stages)
  # -1 (unknown) appears among the ids on purpose.
  return (
      rng.integers(-1, high, shape_a).astype(np.int32),
      rng.integers(-1, high, shape_c).astype(np.int32),
  )


def _np_same(a, c):
  a = a.reshape(len(a), -1)
  c = c.reshape(len(c), -1)
  out = np.zeros((len(a), len(c)), bool)
  for i in range(len(a)):
    for j in range(len(c)):
      out[i, j] = all(
          a[i, s] == c[j, s] and a[i, s] >= 0 for s in range(a.shape[1])
      )
  return out


@pytest.mark.parametrize("stages", [None, 1, 3])
def test_label_and_cluster_rules(stages):
  a, c = _ids(stages or 0, 7, 11, stages, high=2)
  same = _np_same(a, c)
  np.testing.assert_array_equal(masks.same_id(a, c), same)
  np.testing.assert_array_equal(masks.exclude_same_cluster(a, c), ~same)
  np.testing.assert_array_equal(masks.restrict_to_same_cluster(a, c), same)
  if stages is None:
    np.testing.assert_array_equal(masks.exclude_same_label(a, c), ~same)


def test_unknown_never_matches():
  a = jnp.array([-1, 0])
  c = jnp.array([-1, 0, 1])
  np.testing.assert_array_equal(
      masks.restrict_to_same_cluster(a, c), [[0, 0, 0], [0, 1, 0]]
  )
  np.testing.assert_array_equal(
      masks.exclude_same_label(a, c), [[1, 1, 1], [1, 0, 1]]
  )


def test_all_stages_must_match():
  a = jnp.array([[0, 1], [0, 2]])
  c = jnp.array([[0, 1], [0, 2], [1, 1]])
  np.testing.assert_array_equal(
      masks.restrict_to_same_cluster(a, c), [[1, 0, 0], [0, 1, 0]]
  )


def test_in_batch_mask():
  rng = np.random.default_rng(0)
  n = 9
  labels = rng.integers(0, 3, n).astype(np.int32)
  clusters = rng.integers(0, 2, (n, 2)).astype(np.int32)
  expected = np.ones((n, n), bool)
  for i in range(n):
    for j in range(n):
      same_cluster = all(clusters[i] == clusters[j])
      expected[i, j] = i != j and labels[i] != labels[j] and same_cluster
  got = masks.in_batch_mask(n, labels=labels, restrict_clusters=clusters)
  np.testing.assert_array_equal(got, expected)
  np.testing.assert_array_equal(masks.in_batch_mask(n), ~np.eye(n, dtype=bool))
  excl = masks.in_batch_mask(n, exclude_clusters=clusters)
  np.testing.assert_array_equal(excl, ~_np_same(clusters, clusters))
  jitted = jax.jit(masks.in_batch_mask, static_argnums=0)(n, labels=labels)
  np.testing.assert_array_equal(jitted, masks.in_batch_mask(n, labels=labels))


def test_combine_masks_broadcasts_valid_rows():
  rng = np.random.default_rng(1)
  m1 = rng.random((4, 6)) > 0.3
  m2 = rng.random((4, 6)) > 0.3
  valid = rng.random(6) > 0.5
  got = masks.combine_masks(m1, None, m2, valid)
  np.testing.assert_array_equal(got, m1 & m2 & valid[None, :])
  with pytest.raises(ValueError, match="bool"):
    masks.combine_masks(m1, np.ones((4, 6)))
  with pytest.raises(ValueError, match="broadcast"):
    masks.combine_masks(m1, np.ones((5,), bool))
  with pytest.raises(ValueError, match="at least one"):
    masks.combine_masks(None)


def test_ensure_min_negatives():
  rng = np.random.default_rng(2)
  mask = rng.random((6, 8)) > 0.7
  fallback = rng.random((6, 8)) > 0.2
  expected = mask.copy()
  for i in range(6):
    if mask[i].sum() < 3:
      expected[i] = fallback[i]
  got = jax.jit(masks.ensure_min_negatives, static_argnums=1)(mask, 3, fallback)
  np.testing.assert_array_equal(got, expected)
  assert (mask.sum(1) < 3).any() and (mask.sum(1) >= 3).any()  # both branches
  row_fallback = fallback[0]
  got = masks.ensure_min_negatives(mask, 3, row_fallback)
  for i in range(6):
    want = row_fallback if mask[i].sum() < 3 else mask[i]
    np.testing.assert_array_equal(got[i], want)
  np.testing.assert_array_equal(
      masks.ensure_min_negatives(mask, 0, fallback), mask
  )
  with pytest.raises(ValueError, match="min_count"):
    masks.ensure_min_negatives(mask, -1, fallback)
  with pytest.raises(ValueError, match="fallback_mask"):
    masks.ensure_min_negatives(mask, 1, fallback[:, :4])


def test_false_negative_rate():
  rng = np.random.default_rng(3)
  a = rng.integers(-1, 3, 10).astype(np.int32)
  c = rng.integers(-1, 3, 15).astype(np.int32)
  mask = rng.random((10, 15)) > 0.4
  num = den = 0
  for i in range(10):
    for j in range(15):
      if mask[i, j] and a[i] >= 0 and c[j] >= 0:
        den += 1
        num += a[i] == c[j]
  got = masks.false_negative_rate(a, c, mask)
  np.testing.assert_allclose(got, num / den, rtol=1e-6)
  # A supervised mask leaves no false negatives; no allowed pair gives 0.
  supervised = masks.exclude_same_label(a, c)
  assert float(masks.false_negative_rate(a, c, supervised)) == 0.0
  assert float(masks.false_negative_rate(a, c, np.zeros((10, 15), bool))) == 0.0
  with pytest.raises(ValueError, match="rank 1"):
    masks.false_negative_rate(a[:, None], c[:, None], mask)


def test_vmap_over_batches_and_errors():
  a, c = _ids(4, 3 * 5, 3 * 4)
  a, c = a.reshape(3, 5), c.reshape(3, 4)
  got = jax.vmap(masks.exclude_same_label)(a, c)
  for t in range(3):
    np.testing.assert_array_equal(got[t], ~_np_same(a[t], c[t]))
  with pytest.raises(ValueError, match="integer"):
    masks.same_id(np.zeros(3), np.zeros(3))
  with pytest.raises(ValueError, match="rank 1"):
    masks.same_id(np.zeros((2, 2, 2), np.int32), np.zeros(3, np.int32))
  with pytest.raises(ValueError, match="stages"):
    masks.same_id(np.zeros((2, 2), np.int32), np.zeros((3, 3), np.int32))
  with pytest.raises(ValueError, match="rows"):
    masks.in_batch_mask(4, labels=np.zeros(3, np.int32))
