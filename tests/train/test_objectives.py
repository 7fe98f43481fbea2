"""The training adapters hand the queue's validity mask to their losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.losses.moco_filtered import dual_view_moco
from contrastive.train.objectives import Projections
from contrastive.train.objectives import build_objective


@pytest.mark.parametrize("loss", [
    dict(name="moco_filtered", temperature=0.2, top_k=4),
    dict(name="moco_filtered", temperature=0.2, threshold=0.0),
    dict(name="infonce", temperature=0.2),
])
def test_unfilled_queue_slots_are_not_negatives(loss):
  """Early in training the queue is partly empty (zero rows, `valid` False):
  the objective must score exactly as if only the filled rows existed."""
  keys = jax.random.split(jax.random.key(0), 3)
  online = jax.random.normal(keys[0], (2, 5, 8))
  momentum = jax.random.normal(keys[1], (2, 5, 8))
  filled = jax.random.normal(keys[2], (6, 8))
  queue = jnp.concatenate([filled, jnp.zeros((10, 8))])
  valid = jnp.broadcast_to(jnp.arange(16) < 6, (5, 16))
  objective = build_objective(loss, "moco")
  proj = Projections(online=online, momentum=momentum)
  got, _ = objective(proj, {}, negatives=queue, negative_mask=valid)
  want, _ = objective(proj, {}, negatives=filled,
                      negative_mask=jnp.ones((5, 6), bool))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # Without the mask the zero rows would count: the test can tell.
  unmasked, _ = objective(proj, {}, negatives=queue,
                          negative_mask=jnp.ones((5, 16), bool))
  assert abs(float(unmasked) - float(want)) > 1e-3


def test_moco_filtered_adapter_is_dual_view_moco():
  keys = jax.random.split(jax.random.key(1), 3)
  online = jax.random.normal(keys[0], (2, 4, 8))
  momentum = jax.random.normal(keys[1], (2, 4, 8))
  queue = jax.random.normal(keys[2], (12, 8))
  mask = jnp.arange(12)[None, :] < jnp.array([[12], [9], [7], [12]])
  objective = build_objective(
      dict(name="moco_filtered", temperature=0.2, top_k=5), "moco")
  got, _ = objective(Projections(online=online, momentum=momentum), {},
                     negatives=queue, negative_mask=mask)
  want, _ = dual_view_moco(online[0], momentum[0], online[1], momentum[1],
                           queue, temperature=0.2, top_k=5,
                           negative_mask=mask)
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("loss", [
    dict(name="infonce", temperature=0.0),
    dict(name="dcl", temperature=-0.1, tau_plus=0.1),
    dict(name="moco_filtered", temperature=0, top_k=4),
])
def test_non_positive_temperature_fails_when_built(loss):
  """At start-up, not when the first step is traced (~70 s into a run)."""
  method = "moco" if loss["name"] == "moco_filtered" else "simclr"
  with pytest.raises(ValueError, match="config.loss.temperature must be > 0"):
    build_objective(loss, method)
