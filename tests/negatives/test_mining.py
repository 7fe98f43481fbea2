"""Hard-negative mining vs NumPy argsort on cosine similarities."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.negatives import mining


def _data(seed, n=5, k=37, d=6):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(n, d)).astype(np.float32)
  cand = rng.normal(size=(k, d)).astype(np.float32) * 2.0
  return q, cand


def _np_cos(q, c):
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  c = c / np.linalg.norm(c, axis=1, keepdims=True)
  return q.astype(np.float64) @ c.T.astype(np.float64)


def _np_topk(q, c, top_k, mask):
  sim = np.where(mask, _np_cos(q, c), -np.inf)
  idx = np.argsort(-sim, axis=1, kind="stable")[:, :top_k]
  return idx, np.take_along_axis(sim, idx, 1)


@pytest.mark.parametrize("chunk_size", [5, 8, 37, 100])
def test_topk_matches_argsort(chunk_size):
  q, cand = _data(0)
  mask = np.random.default_rng(1).random((5, 37)) > 0.3
  idx, sim = _np_topk(q, cand, 7, mask)
  got = mining.topk_hard_negatives(q, cand, 7, mask=mask, chunk_size=chunk_size)
  np.testing.assert_array_equal(got.indices, idx)
  np.testing.assert_allclose(got.similarities, sim, atol=1e-5)
  assert bool(got.valid.all())
  assert got.indices.dtype == jnp.int32


def test_chunked_equals_unchunked_with_row_mask_and_jit():
  q, cand = _data(2, n=4, k=50)
  valid = np.random.default_rng(3).random(50) > 0.5
  fn = jax.jit(mining.topk_hard_negatives, static_argnums=2,
               static_argnames="chunk_size")
  full = fn(q, cand, 10, mask=valid, chunk_size=50)
  chunked = fn(q, cand, 10, mask=valid, chunk_size=7)
  np.testing.assert_array_equal(full.indices, chunked.indices)
  np.testing.assert_array_equal(full.similarities, chunked.similarities)
  assert valid[np.asarray(full.indices)].all()  # masked rows never selected


def test_ties_go_to_lower_index_in_every_chunking():
  q = np.array([[1.0, 0.0]], np.float32)
  cand = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 3, np.float32)
  for chunk_size in (1, 2, 4, 9):
    got = mining.topk_hard_negatives(q, cand, 4, chunk_size=chunk_size)
    np.testing.assert_array_equal(got.indices, [[0, 1, 2, 3]])


def test_fewer_allowed_than_top_k():
  q, cand = _data(4, n=3, k=10)
  mask = np.zeros((3, 10), bool)
  mask[0, [2, 5]] = True
  mask[1, :] = True
  got = mining.topk_hard_negatives(q, cand, 4, mask=mask, chunk_size=3)
  np.testing.assert_array_equal(got.valid[0], [True, True, False, False])
  assert set(np.asarray(got.indices[0, :2])) == {2, 5}
  np.testing.assert_array_equal(got.indices[0, 2:], -1)
  assert bool(got.valid[1].all())
  np.testing.assert_array_equal(got.valid[2], False)
  np.testing.assert_array_equal(got.indices[2], -1)
  assert np.all(np.isneginf(got.similarities[2]))
  assert not np.isnan(got.similarities).any()


def test_topk_mask_and_threshold_mask():
  q, cand = _data(5)
  mask = np.random.default_rng(6).random((5, 37)) > 0.3
  idx, _ = _np_topk(q, cand, 6, mask)
  expected = np.zeros((5, 37), bool)
  np.put_along_axis(expected, idx, True, axis=1)
  np.testing.assert_array_equal(
      mining.topk_mask(q, cand, 6, mask=mask, chunk_size=10), expected
  )
  # A row with fewer allowed than top_k must not light up column k-1.
  sparse = np.zeros((5, 37), bool)
  sparse[:, 0] = True
  got = mining.topk_mask(q, cand, 3, mask=sparse)
  np.testing.assert_array_equal(got, sparse)

  sim = _np_cos(q, cand)
  np.testing.assert_array_equal(
      mining.threshold_mask(q, cand, 0.2, mask=mask), (sim >= 0.2) & mask
  )
  np.testing.assert_array_equal(
      mining.threshold_mask(q, cand, -1.0), sim >= -1.0
  )


def test_vmap_and_no_gradient():
  q, cand = _data(7, n=6, k=12)
  qs, cs = q.reshape(2, 3, 6), cand.reshape(2, 6, 6)
  got = jax.vmap(
      lambda a, b: mining.topk_hard_negatives(a, b, 2, chunk_size=4)
  )(qs, cs)
  for t in range(2):
    idx, _ = _np_topk(qs[t], cs[t], 2, np.ones((3, 6), bool))
    np.testing.assert_array_equal(got.indices[t], idx)
  grad = jax.grad(
      lambda x: jnp.sum(mining.topk_hard_negatives(x, cand, 3).similarities)
  )(q)
  np.testing.assert_array_equal(grad, 0.0)


def test_large_queue_is_chunked():
  # k = 65,536 candidates scored 8,192 at a time (the memory-bounded path).
  rng = np.random.default_rng(8)
  q = rng.normal(size=(4, 8)).astype(np.float32)
  cand = rng.normal(size=(65536, 8)).astype(np.float32)
  got = mining.topk_hard_negatives(q, cand, 5, chunk_size=8192)
  idx, _ = _np_topk(q, cand, 5, np.ones((4, 65536), bool))
  np.testing.assert_array_equal(got.indices, idx)


def test_errors():
  q, cand = _data(9)
  with pytest.raises(ValueError, match="top_k"):
    mining.topk_hard_negatives(q, cand, 0)
  with pytest.raises(ValueError, match="top_k"):
    mining.topk_hard_negatives(q, cand, 38)
  with pytest.raises(ValueError, match="share d"):
    mining.topk_hard_negatives(q, cand[:, :3], 2)
  with pytest.raises(ValueError, match="rank 2"):
    mining.topk_hard_negatives(q[0], cand, 2)
  with pytest.raises(ValueError, match="mask"):
    mining.topk_hard_negatives(q, cand, 2, mask=np.ones((5, 36), bool))
  with pytest.raises(ValueError, match="mask"):
    mining.threshold_mask(q, cand, 0.1, mask=np.ones((5, 37)))
  with pytest.raises(ValueError, match="chunk_size"):
    mining.topk_hard_negatives(q, cand, 2, chunk_size=0)
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    mining.threshold_mask(q, cand, 1.5)
