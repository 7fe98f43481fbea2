"""ClusterNS loss against an independent NumPy implementation.

The centroids it takes are kept by `contrastive.clustering.clusterns`
(tested in tests/clustering/test_clusterns.py).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive import losses

T = 0.2


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _numpy_loss(z1, z2, c, *, mode, active=True, alpha=0.2, beta=0.5, w=0.5,
                negative_mask=None):
  """From the formulas: SimCLR anchors, the second-nearest centroid as one
  more negative, same-cluster pairs removed or given the margin loss."""
  u1, u2, c = _unit(z1), _unit(z2), _unit(c)
  n = len(u1)
  cluster = np.argmax(u1 @ c.T, axis=1)
  suspected = (cluster[:, None] == cluster[None, :]) & ~np.eye(n, dtype=bool)
  suspected &= active
  allowed = ~np.eye(n, dtype=bool)
  if negative_mask is not None:
    allowed &= negative_mask
  if mode == "remove":
    allowed &= ~suspected
  u = np.concatenate([u1, u2])
  total = 0.0
  for a in range(2 * n):
    i, partner = a % n, (a + n) % (2 * n)
    pos = np.exp(u[a] @ u[partner] / T)
    neg = sum(np.exp(u[a] @ u[b] / T) for b in range(2 * n)
              if allowed[i, b % n])
    if active:
      second = np.argsort(-(u[a] @ c.T))[1]
      neg += np.exp(u[a] @ c[second] / T)
    total += -np.log(pos / (pos + neg)) if neg > 0 else 0.0
  loss = total / (2 * n)
  if mode == "margin":
    sim = u1 @ u2.T
    delta = sim - np.diag(sim)[:, None]
    terms = np.maximum(delta + alpha, 0) + np.maximum(-delta - beta, 0)
    loss += w * (terms[suspected].mean() if suspected.any() else 0.0)
  return loss


def _inputs(n=6, d=5, k=3, seed=0):
  r = np.random.default_rng(seed)
  return (r.normal(size=(n, d)).astype(np.float32),
          r.normal(size=(n, d)).astype(np.float32),
          r.normal(size=(k, d)).astype(np.float32))


def _jax_loss(z1, z2, c, mode, **kw):
  return losses.clusterns_infonce(
      z1, z2, c, temperature=T, false_negatives=mode, margin_weight=0.5, **kw)


@pytest.mark.parametrize("mode", ["margin", "remove", "keep"])
@pytest.mark.parametrize("active", [True, False])
def test_loss_matches_numpy(mode, active):
  z1, z2, c = _inputs()
  mask = np.random.default_rng(5).random((6, 6)) > 0.2
  loss, aux = jax.jit(functools.partial(_jax_loss, mode=mode))(
      z1, z2, c, active=active, negative_mask=mask)
  want = _numpy_loss(z1, z2, c, mode=mode, active=active, negative_mask=mask)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert float(aux["clusterns_active"]) == float(active)


def test_inactive_is_ntxent():
  z1, z2, c = _inputs(seed=1)
  loss, _ = _jax_loss(z1, z2, c, "margin", active=False)
  want, _ = losses.infonce(z1, z2, temperature=T)
  np.testing.assert_allclose(float(loss), float(want), rtol=1e-6)


def test_gradient_matches_finite_differences():
  z1, z2, c = _inputs(seed=2)
  grad = jax.grad(lambda a: _jax_loss(a, z2, c, "margin")[0])(z1)
  eps, num = 1e-5, np.zeros_like(z1, dtype=np.float64)
  for idx in np.ndindex(z1.shape):
    up, down = z1.astype(np.float64), z1.astype(np.float64)
    up[idx] += eps
    down[idx] -= eps
    num[idx] = (_numpy_loss(up, z2, c, mode="margin")
                - _numpy_loss(down, z2, c, mode="margin")) / (2 * eps)
  np.testing.assert_allclose(np.asarray(grad), num, rtol=2e-3, atol=2e-5)


def test_removal_never_removes_the_positive():
  """Every sample in one cluster: 'remove' drops every in-batch negative, and
  the positive and the centroid negative remain."""
  r = np.random.default_rng(3)
  common = np.array([3.0, 0, 0, 0, 0])
  z1 = (common + r.normal(size=(5, 5))).astype(np.float32)
  z2 = (common + r.normal(size=(5, 5))).astype(np.float32)
  c = np.eye(5, dtype=np.float32)[:3]      # e0 is every sample's nearest
  u1, u2 = _unit(z1), _unit(z2)
  assert np.all(np.argmax(u1 @ _unit(c).T, 1) == 0)  # one cluster
  loss, aux = _jax_loss(z1, z2, c, "remove")
  assert float(aux["num_negatives"]) == 0.0
  assert float(aux["false_negative_pairs"]) == 1.0
  u, cu = np.concatenate([u1, u2]), _unit(c)
  pos = np.concatenate([np.sum(u1 * u2, 1)] * 2)
  second = np.argsort(-(u @ cu.T), axis=1)[:, 1]
  hard = np.sum(u * cu[second], 1)
  want = np.mean(np.log1p(np.exp((hard - pos) / T)))
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  # The positive still pulls: the loss depends on the second view.
  g = jax.grad(lambda b: _jax_loss(z1, b, c, "remove")[0])(z2)
  assert float(jnp.abs(g).sum()) > 1e-3


def test_margin_keeps_false_negatives_in_the_denominator():
  z1, z2, c = _inputs(seed=4)
  keep, _ = _jax_loss(z1, z2, c, "keep")
  margin, aux = losses.clusterns_infonce(
      z1, z2, c, temperature=T, false_negatives="margin", margin_weight=0.0)
  np.testing.assert_allclose(float(margin), float(keep), rtol=1e-6)
  assert float(aux["false_negative_pairs"]) > 0


def test_vmap_over_problems():
  zs = [_inputs(seed=s) for s in range(3)]
  z1 = np.stack([z[0] for z in zs])
  z2 = np.stack([z[1] for z in zs])
  c = zs[0][2]
  fn = lambda a, b: _jax_loss(a, b, c, "remove")[0]
  out = jax.vmap(fn)(z1, z2)
  for i in range(3):
    np.testing.assert_allclose(float(out[i]), _numpy_loss(
        z1[i], z2[i], c, mode="remove"), rtol=1e-5)


def test_errors():
  z1, z2, c = _inputs()
  with pytest.raises(ValueError, match="Unknown false_negatives 'drop'"):
    _jax_loss(z1, z2, c, "drop")
  with pytest.raises(ValueError, match="margin_beta must be >= margin_alpha"):
    losses.clusterns_infonce(z1, z2, c, temperature=T, margin_alpha=0.5,
                             margin_beta=0.1)
  with pytest.raises(ValueError, match="K >= 2"):
    _jax_loss(z1, z2, c[:1], "keep")


def test_objective_keeps_the_centroids_as_its_state():
  from contrastive.train.objectives import Projections, build_objective
  objective = build_objective(
      {"name": "clusterns", "temperature": T, "num_clusters": 3,
       "centroid_momentum": 0.5, "start_similarity": 0.9,
       "false_negatives": "remove"}, "simclr")
  assert objective.has_state and objective.uses_negative_mask
  state = objective.init_state(5, batch_size=6)
  z1, z2, _ = _inputs()
  proj = Projections(online=jnp.stack([z1, z2]))
  with pytest.raises(ValueError, match="pass state="):
    objective(proj, {})
  state = objective.update_state(state, proj)      # starts: mean cosine < 0.9
  assert bool(state.active)
  loss, _ = objective(proj, {}, state=state)
  want = _numpy_loss(z1, z2, np.asarray(state.centroids), mode="remove")
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  with pytest.raises(ValueError, match="num_clusters=3 must be <= the global"):
    objective.init_state(5, batch_size=2)
  with pytest.raises(ValueError, match="does not take.*num_clusters"):
    build_objective({"name": "clusterns", "temperature": T, "k": 3}, "simclr")
