"""Tests of contrastive.augment.color against colorsys and NumPy formulas."""
from __future__ import annotations

import colorsys
import functools

import jax
import numpy as np
import pytest

from contrastive.augment import color

KEY = jax.random.PRNGKey(0)
LUMA = np.array([0.299, 0.587, 0.114])


def _run(fn, *args, **params):
  return jax.jit(functools.partial(fn, **params))(*args)


def _rgb(shape=(6, 5, 3), seed=0):
  return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_hsv_conversions_match_colorsys():
  pixels = np.concatenate([
      _rgb((40, 3)),
      np.array([[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0],
                [0, 0, 1], [1, 1, 0], [0.2, 0.2, 0.9]], np.float32),
  ])
  expected = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
  hsv = np.asarray(_run(color.rgb_to_hsv, pixels))
  np.testing.assert_allclose(hsv, expected, atol=1e-5)
  back = np.array([colorsys.hsv_to_rgb(*p) for p in expected])
  np.testing.assert_allclose(_run(color.hsv_to_rgb, expected.astype(
      np.float32)), back, atol=1e-5)
  np.testing.assert_allclose(_run(color.hsv_to_rgb, hsv), pixels, atol=1e-5)


def test_adjustments_match_torchvision_formulas():
  x = _rgb()
  gray = (x @ LUMA)[..., None]
  np.testing.assert_allclose(_run(color.adjust_brightness, x, 1.3),
                             np.clip(1.3 * x, 0, 1), atol=1e-6)
  np.testing.assert_allclose(
      _run(color.adjust_contrast, x, 0.6),
      np.clip(0.6 * x + 0.4 * gray.mean(), 0, 1), atol=1e-6)
  np.testing.assert_allclose(
      _run(color.adjust_saturation, x, 1.5),
      np.clip(1.5 * x + (1 - 1.5) * gray, 0, 1), atol=1e-6)
  shifted = np.array([
      colorsys.hsv_to_rgb((h + 0.3) % 1.0, s, v)
      for h, s, v in (colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3))
  ]).reshape(x.shape)
  np.testing.assert_allclose(_run(color.adjust_hue, x, 0.3), shifted,
                             atol=1e-5)


def test_color_jitter_zero_strength_is_identity():
  x = _rgb()
  out = _run(color.color_jitter, KEY, x, brightness=0.0, contrast=0.0,
             saturation=0.0, hue=0.0)
  np.testing.assert_allclose(out, x, atol=1e-5)


def test_color_jitter_brightness_only_scales_by_factor_in_range():
  x = 0.5 * _rgb()  # no clipping for factors up to 2
  fn = jax.jit(jax.vmap(lambda k: color.color_jitter(
      k, x, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0)))
  out = np.asarray(fn(jax.random.split(KEY, 16)))
  factors = out / x
  np.testing.assert_allclose(factors, factors[:, :1, :1, :1] * np.ones_like(
      factors), rtol=1e-4)
  assert np.all((factors >= 0.6 - 1e-5) & (factors <= 1.4 + 1e-5))
  assert np.ptp(factors[:, 0, 0, 0]) > 0.1


def test_color_jitter_range_randomness_and_probability():
  x = _rgb()
  fn = jax.jit(jax.vmap(lambda k: color.color_jitter(k, x, prob=0.5)))
  out = np.asarray(fn(jax.random.split(KEY, 64)))
  assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
  unchanged = np.all(np.isclose(out, x), axis=(1, 2, 3))
  assert 0.25 < unchanged.mean() < 0.75
  assert not np.allclose(out[~unchanged][0], out[~unchanged][1])


def test_color_jitter_gray_images_skip_saturation_and_hue():
  x = _rgb((5, 5, 1))
  out = _run(color.color_jitter, KEY, x, brightness=0.0, contrast=0.0,
             saturation=0.9, hue=0.5)
  np.testing.assert_allclose(out, x, atol=1e-6)
  out = _run(color.color_jitter, KEY, x)
  assert out.shape == (5, 5, 1) and not np.allclose(out, x)


def test_color_jitter_errors():
  with pytest.raises(ValueError, match="hue"):
    _run(color.color_jitter, KEY, _rgb(), hue=0.6)
  with pytest.raises(ValueError, match="brightness"):
    _run(color.color_jitter, KEY, _rgb(), brightness=-0.1)
  with pytest.raises(ValueError, match="C = 1"):
    _run(color.color_jitter, KEY, _rgb((4, 4, 2)))


def test_grayscale_makes_channels_equal_to_luma():
  x = _rgb()
  out = np.asarray(_run(color.grayscale, KEY, x, prob=1.0))
  np.testing.assert_allclose(out, np.repeat((x @ LUMA)[..., None], 3, -1),
                             atol=1e-6)
  np.testing.assert_allclose(_run(color.grayscale, KEY, x, prob=0.0), x)
  gray = _rgb((4, 4, 1))
  np.testing.assert_allclose(_run(color.grayscale, KEY, gray), gray)
  with pytest.raises(ValueError, match="C = 1"):
    _run(color.grayscale, KEY, _rgb((4, 4, 4)))
