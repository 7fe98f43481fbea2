"""`crop_on='host'`: the device takes the host's views and skips the crop."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.augment import build_augment
from contrastive.augment import make_views


def _views(seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (3, 2, 8, 8, 3), dtype=np.uint8)  # [B, V, ...]


def test_host_views_pass_through_untouched_when_nothing_else_is_random():
  augment = build_augment({
      "name": "simclr", "image_size": 8, "crop_on": "host", "flip_prob": 0.0,
      "jitter_prob": 0.0, "grayscale_prob": 0.0})
  batch = _views()
  out = make_views(jax.random.key(0), batch, augment, num_views=2)
  assert out.shape == (2, 3, 8, 8, 3)
  np.testing.assert_allclose(
      out, np.moveaxis(batch, 1, 0).astype(np.float32) / 255, atol=1e-6)


def test_the_rest_of_the_recipe_runs_per_view():
  augment = build_augment({"name": "byol", "image_size": 8,
                           "crop_on": "host", "blur_kernel_size": 3})
  batch = _views(1)
  out = jax.jit(make_views, static_argnums=(2, 3))(
      jax.random.key(1), jnp.asarray(batch), augment, 2)
  assert out.shape == (2, 3, 8, 8, 3)
  assert np.all(np.isfinite(out)) and 0 <= out.min() and out.max() <= 1
  # The same keys with on-device crops give other views (the crop ran).
  device = build_augment({"name": "byol", "image_size": 8,
                          "blur_kernel_size": 3})
  other = make_views(jax.random.key(1), batch[:, 0], device, 2)
  assert not np.allclose(out[0], other[0])


def test_host_crop_checks():
  with pytest.raises(ValueError, match="crop_on must be one of"):
    build_augment({"name": "simclr", "image_size": 8, "crop_on": "gpu"})
  with pytest.raises(ValueError, match="needs image_size"):
    build_augment({"name": "simclr", "crop_on": "host"})
  augment = build_augment({"name": "simclr", "image_size": 8,
                           "crop_on": "host"})
  assert augment.host_crop_params() == {
      "size": 8, "scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3)}
  with pytest.raises(ValueError, match="fewer than num_views"):
    make_views(jax.random.key(0), _views()[:, :1], augment, num_views=2)
  with pytest.raises(ValueError, match="image_size"):
    make_views(jax.random.key(0), np.zeros((2, 2, 6, 6, 3), np.uint8),
               augment, num_views=2)
