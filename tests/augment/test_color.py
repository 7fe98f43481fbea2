"""Tests of contrastive.augment.color against colorsys and NumPy formulas."""
from __future__ import annotations

import colorsys
import functools

import jax
import numpy as np
import pytest

from contrastive.augment import _util
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


def _jitter_one(x, keys, **strengths):
  """color_jitter of `x` with one key per row of `keys`, only `strengths`."""
  params = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
  params.update(strengths)
  return np.asarray(jax.jit(jax.vmap(
      lambda k: color.color_jitter(k, x, **params)))(keys)).astype(np.float64)


def _blend_factor(out, x, anchor):
  """The f of out = f * x + (1 - f) * anchor, by least squares."""
  d = (x - anchor).ravel()
  return np.dot((out - anchor).ravel(), d) / np.dot(d, d)


def test_color_jitter_contrast_saturation_hue_factors_in_range():
  x = (0.4 + 0.2 * _rgb()).astype(np.float32)  # no clipping at factor 1.4
  keys = jax.random.split(KEY, 16)
  gray = (x @ LUMA)[..., None]
  for name, anchor in (("contrast", gray.mean()), ("saturation", gray)):
    outs = _jitter_one(x, keys, **{name: 0.4})
    factors = np.array([_blend_factor(o, x, anchor) for o in outs])
    for out, f in zip(outs, factors):
      np.testing.assert_allclose(out, f * x + (1 - f) * anchor, atol=1e-5,
                                 err_msg=name)
    assert np.all((factors >= 0.6 - 1e-5) & (factors <= 1.4 + 1e-5)), name
    assert np.ptp(factors) > 0.3, name
  # Hue: every pixel's hue turns by one shift in [-0.1, 0.1]; S, V are kept.
  hsv_in = np.array([colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3)])
  shifts = []
  for out in _jitter_one(x, keys, hue=0.1):
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in out.reshape(-1, 3)])
    np.testing.assert_allclose(hsv[:, 1:], hsv_in[:, 1:], atol=1e-5)
    turn = (hsv[:, 0] - hsv_in[:, 0] + 0.5) % 1.0 - 0.5
    np.testing.assert_allclose(turn, turn[0], atol=1e-4)
    shifts.append(turn[0])
  assert np.all(np.abs(shifts) <= 0.1 + 1e-4) and np.ptp(shifts) > 0.1


def _np_jitter(x, u, strengths):
  """NumPy color_jitter from its 9 uniforms: coin, 4 factors, 4 order keys."""
  b, c, s = (max(0.0, 1 - v) + (1 + v - max(0.0, 1 - v)) * u[i + 1]
             for i, v in enumerate(strengths[:3]))
  h = strengths[3] * (2 * u[4] - 1)

  def hue(v):
    return np.array([colorsys.hsv_to_rgb((hh + h) % 1.0, ss, vv) for hh, ss, vv
                     in (colorsys.rgb_to_hsv(*p) for p in v.reshape(-1, 3))
                     ]).reshape(v.shape)

  ops = (lambda v: b * v,
         lambda v: c * v + (1 - c) * (v @ LUMA).mean(),
         lambda v: s * v + (1 - s) * (v @ LUMA)[..., None], hue)
  for op in np.argsort(u[5:]):
    x = np.clip(ops[op](x), 0, 1)
  return x


def test_color_jitter_order_is_random_and_matches_numpy():
  # The same draws as color_jitter (one uniforms(rng, 9) call), pushed
  # through the torchvision formulas in NumPy, in the order they give.
  # Full-range pixels clip, so the order changes the result.
  x = _rgb((3, 4, 3))
  strengths = (0.8, 0.8, 0.8, 0.2)
  keys = jax.random.split(KEY, 48)
  outs = _jitter_one(x, keys, brightness=0.8, contrast=0.8, saturation=0.8,
                     hue=0.2)
  orders = set()
  for key, out in zip(keys, outs):
    u = np.asarray(_util.uniforms(key, 9), np.float64)
    np.testing.assert_allclose(out, _np_jitter(x, u, strengths), atol=1e-5)
    orders.add(tuple(np.argsort(u[5:])))
  # 48 uniform permutations of 4 show ~21 of the 24 orders.
  assert len(orders) >= 15


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
