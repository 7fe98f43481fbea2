"""SupCon against a float64 NumPy reference written from docs/losses.md."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.supcon import supervised_infonce
from tests.losses.numeric import numeric_grad


# ----------------------------------------------------------------------------
# Independent reference: explicit loops, float64.


def ref_supcon(z, labels, t):
  """Mean over anchors with a positive of L_out; 0 if there is none."""
  u = np.asarray(z, np.float64)
  u = u / np.linalg.norm(u, axis=1, keepdims=True)
  m = len(u)
  losses = []
  for i in range(m):
    positives = [p for p in range(m) if p != i and labels[p] == labels[i]]
    if not positives:
      continue
    denominator = sum(math.exp(u[i] @ u[a] / t) for a in range(m) if a != i)
    losses.append(-np.mean([math.log(math.exp(u[i] @ u[p] / t) / denominator)
                            for p in positives]))
  return float(np.mean(losses)) if losses else 0.0


_run = jax.jit(jax.value_and_grad(
    lambda z, labels, t: supervised_infonce(z, labels, temperature=t),
    has_aux=True))


# Labels 2 and 3 appear once: those anchors have no positive, left out.
_LABELS = np.array([0, 1, 0, 2, 1, 3])


def _z(seed=0, shape=(6, 4)):
  return np.random.default_rng(seed).normal(size=shape)


def test_hand_computed():
  z = jnp.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
  (loss, aux), _ = _run(z, jnp.array([0, 0, 1]), 1.0)
  # Anchors 0 and 1: positive cosine 1, other candidate cosine 0; anchor 2
  # has no positive.
  np.testing.assert_allclose(loss, math.log(1 + 1 / math.e), rtol=1e-6)
  np.testing.assert_allclose(aux["num_anchors"], 2.0)
  np.testing.assert_allclose(aux["top1"], 1.0)
  np.testing.assert_allclose(aux["pos_sim"], 1.0)
  np.testing.assert_allclose(aux["neg_sim"], 0.0, atol=1e-7)


@pytest.mark.parametrize("t", [0.5, 0.01])
def test_value_and_gradient_match_reference(t):
  z = _z()
  (loss, aux), grad = _run(jnp.asarray(z, jnp.float32), _LABELS, t)
  np.testing.assert_allclose(loss, ref_supcon(z, _LABELS, t), rtol=1e-5)
  np.testing.assert_allclose(
      grad, numeric_grad(lambda x: ref_supcon(x, _LABELS, t), z),
      atol=2e-5 / t, rtol=1e-4)
  np.testing.assert_allclose(aux["num_anchors"], 4.0)
  assert float(aux["no_positive_pairs"]) == 0.0


def test_views_axis_is_flattened():
  z = _z(shape=(3, 2, 4))  # 3 samples, 2 views
  labels = np.array([0, 1, 0])
  (loss, aux), grad = _run(jnp.asarray(z, jnp.float32), labels, 0.3)
  flat_labels = np.repeat(labels, 2)
  np.testing.assert_allclose(
      loss, ref_supcon(z.reshape(6, 4), flat_labels, 0.3), rtol=1e-5)
  (flat_loss, _), flat_grad = _run(
      jnp.asarray(z.reshape(6, 4), jnp.float32), flat_labels, 0.3)
  np.testing.assert_allclose(loss, flat_loss, rtol=1e-6)
  np.testing.assert_allclose(grad.reshape(6, 4), flat_grad, atol=1e-6)


def test_top1_is_nearest_neighbour_label_agreement():
  z = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
  labels = np.array([0, 1, 0, 1])
  # Nearest neighbours: 0<->1 and 2<->3, each with the other label.
  (_, aux), _ = _run(jnp.asarray(z, jnp.float32), labels, 0.1)
  assert float(aux["top1"]) == 0.0
  (_, aux), _ = _run(jnp.asarray(z, jnp.float32), np.array([0, 0, 1, 1]), 0.1)
  assert float(aux["top1"]) == 1.0


def test_no_positive_pairs_gives_zero_loss_and_flag():
  z = jnp.asarray(_z(), jnp.float32)
  (loss, aux), grad = _run(z, np.arange(6), 0.1)
  assert float(loss) == 0.0
  np.testing.assert_array_equal(grad, 0.0)
  assert float(aux["no_positive_pairs"]) == 1.0
  assert float(aux["num_anchors"]) == 0.0


def test_single_label_has_no_negatives_but_is_finite():
  z = jnp.asarray(_z(), jnp.float32)
  (loss, aux), grad = _run(z, np.zeros(6, int), 0.1)
  np.testing.assert_allclose(loss, ref_supcon(np.asarray(z), np.zeros(6), 0.1),
                             rtol=1e-5)
  assert np.all(np.isfinite(grad)) and float(aux["neg_sim"]) == 0.0


def test_bfloat16_and_small_temperature_are_finite():
  z = _z()
  zb = jnp.asarray(z, jnp.bfloat16)
  (loss, _), grad = _run(zb, _LABELS, 0.01)
  assert loss.dtype == jnp.float32 and np.isfinite(loss)
  assert np.all(np.isfinite(grad.astype(jnp.float32)))
  as64 = np.asarray(zb.astype(jnp.float32), np.float64)
  np.testing.assert_allclose(loss, ref_supcon(as64, _LABELS, 0.01), rtol=1e-4)


def test_vmap_over_problems():
  z = np.stack([_z(seed=s) for s in range(3)])
  losses = jax.jit(jax.vmap(
      lambda x: supervised_infonce(x, _LABELS, temperature=0.2)[0]))(
          jnp.asarray(z, jnp.float32))
  for i in range(3):
    np.testing.assert_allclose(losses[i], ref_supcon(z[i], _LABELS, 0.2),
                               rtol=1e-5)


@pytest.mark.parametrize(
    "z, labels, t, match",
    [
        (jnp.ones((6,)), _LABELS, 0.1, "z must have rank 2"),
        (jnp.ones((2, 3, 4, 5)), _LABELS[:2], 0.1, "z must have rank 2"),
        (jnp.ones((6, 4)), _LABELS[:5], 0.1, "one entry per row"),
        (jnp.ones((6, 4)), _LABELS[:, None], 0.1, "labels must have rank 1"),
        (jnp.ones((6, 4)), _LABELS.astype(float), 0.1, "integers"),
        (jnp.ones((6, 4)), _LABELS, 0.0, "temperature must be > 0"),
    ],
)
def test_errors(z, labels, t, match):
  with pytest.raises(ValueError, match=match):
    supervised_infonce(z, labels, temperature=t)
