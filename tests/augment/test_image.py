"""Tests of contrastive.augment.image against plain-NumPy references."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.augment import image

KEY = jax.random.PRNGKey(0)


def _run(fn, *args, **params):
  """`fn(*args, **params)` under jit: one compilation instead of many ops."""
  return jax.jit(functools.partial(fn, **params))(*args)


def _uint8_image(shape=(8, 8, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _keys(n, seed=1):
  return jax.random.split(jax.random.PRNGKey(seed), n)


def test_to_float_scales_uint8_and_clips_floats():
  x = np.array([[[0], [128], [255]]], np.uint8)
  np.testing.assert_allclose(_run(image.to_float, x)[..., 0],
                             [[0, 128 / 255, 1]])
  y = np.array([-0.5, 0.25, 2.0], np.float32)
  np.testing.assert_allclose(_run(image.to_float, y), [0.0, 0.25, 1.0])
  assert _run(image.to_float, y).dtype == jnp.float32
  with pytest.raises(ValueError, match="uint8"):
    _run(image.to_float, np.zeros((2, 2, 1), np.int32))


def test_normalize_matches_numpy_and_checks_lengths():
  x = np.random.default_rng(0).random((4, 4, 3)).astype(np.float32)
  mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
  expected = (x - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(_run(image.normalize, x, mean=mean, std=std),
                             expected,
                             atol=1e-6)
  with pytest.raises(ValueError, match="one entry per channel"):
    _run(image.normalize, x, mean=(0.5,), std=(0.5,))
  with pytest.raises(ValueError, match="std must be > 0"):
    _run(image.normalize, x, mean=mean, std=(1.0, 0.0, 1.0))


def test_crop_boxes_fit_and_respect_scale_and_ratio():
  scale, ratio = (0.2, 0.6), (0.5, 2.0)
  boxes = np.asarray(jax.jit(jax.vmap(
      lambda k: image.sample_crop_box(k, 28, 28, scale=scale, ratio=ratio)
  ))(_keys(300)))
  top, left, h, w = boxes.T
  assert np.all((h > 0) & (w > 0) & (top >= 0) & (left >= 0))
  assert np.all((top + h <= 28) & (left + w <= 28))
  area = h * w / 28**2
  # Rounding h and w to integers moves the area by at most about one row and
  # one column of pixels.
  slack = (h + w + 1) / 28**2
  assert np.all(area >= scale[0] - slack) and np.all(area <= scale[1] + slack)
  aspect = w / h
  assert np.all(aspect >= ratio[0] * (1 - 1 / h) - 1 / h)
  assert np.all(aspect <= ratio[1] * (1 + 1 / h) + 1 / h)
  assert len({tuple(b) for b in boxes}) > 50  # actually random


def test_crop_box_fallback_is_centred_with_clamped_ratio():
  # No 8x8 box has area 64 and w / h = 2, so every attempt fails.
  box = _run(image.sample_crop_box, KEY, height=8, width=8, scale=(1.0, 1.0),
              ratio=(2.0, 2.0))
  np.testing.assert_array_equal(box, [2, 0, 4, 8])


def test_crop_and_resize_exact_slice_without_resampling():
  x = _uint8_image((8, 8, 3))
  out = _run(image.crop_and_resize, x, jnp.array([1, 2, 5, 4]), size=(5, 4))
  np.testing.assert_allclose(out, x[1:6, 2:6] / 255.0, atol=1e-6)


def test_crop_and_resize_upsampling_is_bilinear():
  # A linear ramp is reproduced exactly by bilinear interpolation: output
  # row o of a 2x zoom of rows 2..5 samples input row 2 + (o + 0.5) / 2 - 0.5.
  ramp = np.tile((np.arange(8) / 10.0)[:, None, None], (1, 8, 1))
  out = _run(image.crop_and_resize, ramp.astype(np.float32),
             jnp.array([2, 0, 4, 8]), size=(8, 8))
  expected = (1.75 + np.arange(8) / 2) / 10.0
  np.testing.assert_allclose(out[:, 3, 0], expected, atol=1e-6)


def _numpy_bilinear_zoom(x, box, size):
  """Upsamples box [top, left, h, w] of x with half-pixel centres; samples
  beyond the outermost pixel centres take the edge value."""
  top, left, h, w = box
  out = x
  for axis, (start, extent, n) in enumerate(((top, h, size[0]),
                                             (left, w, size[1]))):
    pos = start + (np.arange(n) + 0.5) * extent / n - 0.5
    pos = np.clip(pos, 0, x.shape[axis] - 1)
    lo = np.minimum(np.floor(pos).astype(int), x.shape[axis] - 2)
    frac = (pos - lo).reshape([-1 if a == axis else 1 for a in range(3)])
    out = (np.take(out, lo, axis=axis) * (1 - frac)
           + np.take(out, lo + 1, axis=axis) * frac)
  return out


def test_crop_and_resize_matches_numpy_bilinear_upsampling():
  x = _uint8_image((8, 8, 3), seed=3)
  box = (1, 2, 5, 3)
  out = _run(image.crop_and_resize, x, jnp.array(box), size=(8, 7))
  np.testing.assert_allclose(
      out, _numpy_bilinear_zoom(x / 255.0, box, (8, 7)), atol=1e-5)


def test_random_resized_crop_full_box_is_identity():
  x = _uint8_image((8, 8, 3))
  out = _run(image.random_resized_crop, KEY, x, scale=(1.0, 1.0),
             ratio=(1.0, 1.0))
  np.testing.assert_allclose(out, x / 255.0, atol=1e-5)


def test_random_resized_crop_shape_range_and_randomness():
  x = _uint8_image((8, 8, 1))
  fn = jax.jit(jax.vmap(
      lambda k: image.random_resized_crop(k, x, size=(6, 5))))
  out = np.asarray(fn(_keys(8)))
  assert out.shape == (8, 6, 5, 1) and out.dtype == np.float32
  assert out.min() >= 0.0 and out.max() <= 1.0
  np.testing.assert_array_equal(out, fn(_keys(8)))  # same keys, same crops
  assert not np.allclose(out, fn(_keys(8, seed=2)))
  assert not np.allclose(out[0], out[1])


def test_random_resized_crop_errors():
  x = _uint8_image()
  with pytest.raises(ValueError, match="rank 3"):
    _run(image.random_resized_crop, KEY, x[0])
  with pytest.raises(ValueError, match="scale"):
    _run(image.random_resized_crop, KEY, x, scale=(0.5, 0.1))
  with pytest.raises(ValueError, match="ratio"):
    _run(image.random_resized_crop, KEY, x, ratio=(0.0, 1.0))
  with pytest.raises(ValueError, match="size"):
    _run(image.random_resized_crop, KEY, x, size=(4, 0))


def test_horizontal_flip_reverses_columns():
  x = _uint8_image((4, 5, 3))
  np.testing.assert_allclose(_run(image.horizontal_flip, KEY, x, prob=1.0),
                             x[:, ::-1] / 255.0)
  np.testing.assert_allclose(_run(image.horizontal_flip, KEY, x, prob=0.0),
                             x / 255.0)
  flipped = jax.jit(jax.vmap(
      lambda k: image.horizontal_flip(k, x, prob=0.5)))(_keys(400))
  rate = np.mean(np.all(np.isclose(flipped, x[:, ::-1] / 255.0),
                        axis=(1, 2, 3)))
  assert 0.4 < rate < 0.6
  with pytest.raises(ValueError, match="probability"):
    _run(image.horizontal_flip, KEY, x, prob=1.5)


def test_default_blur_kernel_size_is_ten_percent_and_odd():
  assert image.default_blur_kernel_size(224, 224) == 23  # SimCLR ImageNet
  assert image.default_blur_kernel_size(32, 32) == 3
  assert image.default_blur_kernel_size(28, 28) == 3
  assert image.default_blur_kernel_size(96, 128) == 11


def _numpy_blur(x, sigma, size):
  offsets = np.arange(size) - size // 2
  w = np.exp(-0.5 * (offsets / sigma) ** 2)
  w /= w.sum()
  r = size // 2
  for axis in (0, 1):
    pad = [(0, 0)] * 3
    pad[axis] = (r, r)
    p = np.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    x = sum(w[k] * np.take(p, np.arange(k, k + n), axis=axis)
            for k in range(size))
  return x


@pytest.mark.parametrize("size", [3, 5])
def test_gaussian_blur_matches_numpy(size):
  x = _uint8_image((8, 7, 3))
  out = _run(image.gaussian_blur, KEY, x, sigma=(1.3, 1.3),
             kernel_size=size)
  np.testing.assert_allclose(out, _numpy_blur(x / 255.0, 1.3, size),
                             atol=1e-6)


def test_gaussian_blur_limits_and_errors():
  flat = np.full((8, 8, 3), 0.3, np.float32)
  np.testing.assert_allclose(_run(image.gaussian_blur, KEY, flat), flat,
                             atol=1e-6)
  x = _uint8_image()
  tiny = _run(image.gaussian_blur, KEY, x, sigma=(1e-3, 1e-3))
  np.testing.assert_allclose(tiny, x / 255.0, atol=1e-6)
  assert not np.allclose(_run(image.gaussian_blur, KEY, x, sigma=(2.0, 2.0)),
                         x / 255.0)
  with pytest.raises(ValueError, match="odd"):
    _run(image.gaussian_blur, KEY, x, kernel_size=4)
  with pytest.raises(ValueError, match="odd"):
    _run(image.gaussian_blur, KEY, x, kernel_size=17)
  with pytest.raises(ValueError, match="sigma"):
    _run(image.gaussian_blur, KEY, x, sigma=(0.0, 1.0))


def test_solarize_inverts_above_threshold():
  x = np.linspace(0, 1, 12, dtype=np.float32).reshape(2, 2, 3)
  out = _run(image.solarize, KEY, x, threshold=0.5, prob=1.0)
  np.testing.assert_allclose(out, np.where(x >= 0.5, 1 - x, x))
  np.testing.assert_allclose(_run(image.solarize, KEY, x, prob=0.0), x)
  with pytest.raises(ValueError, match="threshold"):
    _run(image.solarize, KEY, x, threshold=2.0)
