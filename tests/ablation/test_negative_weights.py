"""Per-negative weights of the loss explorer against NumPy derivations from
the formulas (docs/losses.md), and the assembled losses against the library's
losses."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from contrastive import losses
from contrastive.ablation import negative_weights as nw

N, D = 7, 5


def _views(seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(N, D))
  return (z + 0.4 * rng.normal(size=(N, D))).astype(np.float32), (
      z + 0.4 * rng.normal(size=(N, D))).astype(np.float32)


def _unit(z):
  return z / np.linalg.norm(z, axis=1, keepdims=True)


def _np_sims(z1, z2):
  u1, u2 = _unit(z1.astype(np.float64)), _unit(z2.astype(np.float64))
  return u1, u2, u1 @ u2.T


OFF = ~np.eye(N, dtype=bool)


def np_dcl(z1, z2, t, tau, beta=None):
  """dL_i/d(s_ij/t), derived by hand from
  L = -log(pos / (pos + Ng)), Ng = (R - tau N pos) / (1 - tau),
  R = sum_j neg_j (DCL) or N sum_j e^((b+1)x_j) / sum_j e^(b x_j) (HCL)."""
  _, _, s = _np_sims(z1, z2)
  x, n_neg = s / t, N - 1
  out = np.zeros((N, N))
  for i in range(N):
    xs = x[i, OFF[i]]
    pos = np.exp(x[i, i])
    if beta is None:
      r, dr = np.exp(xs).sum(), np.exp(xs)
    else:
      a, b = np.exp((beta + 1) * xs).sum(), np.exp(beta * xs).sum()
      r = n_neg * a / b
      dr = n_neg * ((beta + 1) * np.exp((beta + 1) * xs) / b
                    - beta * np.exp(beta * xs) * a / b**2)
    ng = (r - tau * n_neg * pos) / (1 - tau)
    if ng > n_neg * np.exp(-1 / t):
      out[i, OFF[i]] = dr / ((1 - tau) * (pos + ng))
  return out


def np_cclk(z1, z2, t, scale, lam):
  """(n - 1) W_ji e^(S_ij) / D_i with W = (K + lam I)^-1 K of an RBF kernel
  on u1, W_ii = 0, entries < 1e-6 zeroed."""
  u1, _, s = _np_sims(z1, z2)
  sq = ((u1[:, None] - u1[None]) ** 2).sum(-1)
  k = np.exp(-sq / scale)
  w = np.linalg.solve(k + lam * np.eye(N), k)
  np.fill_diagonal(w, 0.0)
  w[w < 1e-6] = 0.0
  cross, same = np.exp(s / t), np.exp(u1 @ u1.T / t)
  np.fill_diagonal(same, 0.0)
  out = np.zeros((N, N))
  for i in range(N):
    denom = cross[i, i] + (N - 1) * (cross[i] @ w[:, i] + same[i] @ w[:, i])
    out[i] = (N - 1) * w[:, i] * cross[i] / denom
  np.fill_diagonal(out, 0.0)
  return out


def test_infonce_weights_are_the_softmax_share():
  z1, z2 = _views()
  _, _, s = _np_sims(z1, z2)
  e = np.exp(s / 0.5)
  expected = np.where(OFF, e / e.sum(axis=1, keepdims=True), 0.0)
  w = nw.infonce_weights(z1, z2, temperature=0.5)
  np.testing.assert_allclose(w.weight, expected, atol=1e-6)
  np.testing.assert_allclose(w.similarity, s, atol=1e-6)
  np.testing.assert_array_equal(w.mask, OFF)


@pytest.mark.parametrize("tau", [0.0, 0.1, 0.3])
def test_dcl_weights(tau):
  z1, z2 = _views(1)
  w = nw.dcl_weights(z1, z2, temperature=0.5, tau_plus=tau)
  np.testing.assert_allclose(w.weight, np_dcl(z1, z2, 0.5, tau), atol=1e-6)


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_hcl_weights(beta):
  z1, z2 = _views(2)
  w = nw.hcl_weights(z1, z2, temperature=0.5, tau_plus=0.1, beta=beta)
  np.testing.assert_allclose(w.weight, np_dcl(z1, z2, 0.5, 0.1, beta),
                             atol=1e-6)


def test_dcl_weights_vanish_where_the_clamp_is_active():
  z = np.eye(N, D, dtype=np.float32) + 0.01
  w = nw.dcl_weights(z, z, temperature=0.5, tau_plus=0.9)
  assert np.all(np.asarray(w.weight) == 0.0)


def test_cclk_weights():
  z1, z2 = _views(3)
  w = nw.cclk_weights(z1, z2, temperature=0.5, kernel_scale=1.0, lam=1.0)
  np.testing.assert_allclose(w.weight, np_cclk(z1, z2, 0.5, 1.0, 1.0),
                             rtol=1e-4, atol=1e-7)


def test_simans_weights():
  z1, z2 = _views(4)
  _, _, s = _np_sims(z1, z2)
  logit = -2.0 * (s - np.diag(s)[:, None] - 0.1) ** 2
  p = np.where(OFF, np.exp(logit), 0.0)
  w = nw.simans_weights(z1, z2, a=2.0, b=0.1)
  np.testing.assert_allclose(w.weight, p / p.sum(1, keepdims=True), atol=1e-6)


def test_limits():
  z1, z2 = _views(5)
  infonce = nw.infonce_weights(z1, z2).weight
  np.testing.assert_allclose(nw.dcl_weights(z1, z2, tau_plus=0.0).weight,
                             infonce, atol=1e-6)
  np.testing.assert_allclose(
      nw.hcl_weights(z1, z2, tau_plus=0.1, beta=0.0).weight,
      nw.dcl_weights(z1, z2, tau_plus=0.1).weight, atol=1e-6)
  np.testing.assert_allclose(nw.simans_weights(z1, z2, a=0.0).weight,
                             np.where(OFF, 1 / (N - 1), 0.0), atol=1e-6)


def test_assembled_losses_equal_the_librarys():
  """The explorer's losses are the library's in the queue convention
  (the batch's second views as the queue, the diagonal masked)."""
  z1, z2 = _views(6)
  _, _, s = _np_sims(z1, z2)
  s = np.asarray(s, np.float32)
  kw = dict(negatives=z2, negative_mask=OFF)
  pairs = [
      (nw.infonce_family_losses(s, temperature=0.5),
       losses.infonce(z1, z2, temperature=0.5, **kw)[0]),
      (nw.infonce_family_losses(s, temperature=0.5, tau_plus=0.1),
       losses.debiased_infonce(z1, z2, temperature=0.5, tau_plus=0.1,
                               **kw)[0]),
      (nw.infonce_family_losses(s, temperature=0.5, tau_plus=0.1, beta=1.0),
       losses.hard_negative_infonce(z1, z2, temperature=0.5, tau_plus=0.1,
                                    beta=1.0, **kw)[0]),
  ]
  for per_anchor, library in pairs:
    np.testing.assert_allclose(np.mean(per_anchor), library, rtol=1e-5)
  u1, u2 = _unit(z1), _unit(z2)

  def weights(u):
    gram = losses.condition_kernel(u, kernel="rbf", kernel_scale=1.0)
    return losses.conditional_weights(gram, lam=1.0)

  l_x = nw.cclk_direction_losses(u1 @ u2.T, u1 @ u1.T, weights(u1),
                                 temperature=0.5)
  l_y = nw.cclk_direction_losses(u2 @ u1.T, u2 @ u2.T, weights(u2),
                                 temperature=0.5)
  library, _ = losses.kernel_conditional_infonce(
      z1, z2, temperature=0.5, kernel="rbf", kernel_scale=1.0, lam=1.0)
  np.testing.assert_allclose((np.mean(l_x) + np.mean(l_y)) / 2, library,
                             rtol=1e-5)


def test_jit_and_vmap():
  z1, z2 = _views(7)
  eager = nw.hcl_weights(z1, z2).weight
  jitted = jax.jit(lambda a, b: nw.hcl_weights(a, b).weight)(z1, z2)
  np.testing.assert_allclose(jitted, eager, atol=1e-6)
  stacked = jax.vmap(lambda a, b: nw.negative_weights(a, b, "simans").weight)(
      np.stack([z1, z2]), np.stack([z2, z1]))
  np.testing.assert_allclose(stacked[0], nw.simans_weights(z1, z2).weight,
                             atol=1e-6)


def test_bad_inputs_raise():
  z1, z2 = _views()
  with pytest.raises(ValueError, match="unknown method 'nce'.*infonce, dcl"):
    nw.negative_weights(z1, z2, "nce")
  with pytest.raises(ValueError, match="same shape"):
    nw.infonce_weights(z1, z2[:-1])
  with pytest.raises(ValueError, match="n >= 2"):
    nw.dcl_weights(z1[:1], z2[:1])
  with pytest.raises(ValueError, match="temperature must be > 0"):
    nw.cclk_weights(z1, z2, temperature=0.0)
