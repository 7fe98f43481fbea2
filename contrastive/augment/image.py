"""Per-example geometric and pixel image augmentations.

Images are `[H, W, C]`. Every function here converts its input with
`to_float` (uint8 -> divide by 255; floats are taken to be in [0, 1]) and
returns float32 in [0, 1], so the ops chain in any order. Colour ops are in
`color.py`. The recipes that chain them are in `presets.py`.

Each random op has the signature `fn(rng, image, *, params..., prob)` and is
pure, so it can be jitted and vmapped over a batch with one key per example.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from contrastive.augment import _util

Array = jax.Array


def to_float(image: Array) -> Array:
  """Converts uint8 `[..., C]` to float32 in [0, 1]; floats pass through.

  Float input is assumed to be in [0, 1] already (it is clipped to it), since
  the scale of a float array cannot be inferred under `jit`.

  Example:
    >>> to_float(jnp.full((2, 2, 1), 255, jnp.uint8))  # all 1.0
  """
  dtype = jnp.asarray(image).dtype
  if dtype == jnp.uint8:
    return jnp.asarray(image, jnp.float32) / 255.0
  if jnp.issubdtype(dtype, jnp.floating):
    return jnp.clip(jnp.asarray(image, jnp.float32), 0.0, 1.0)
  raise ValueError(
      f"images must be uint8 (0..255) or floating point (0..1), got {dtype}."
  )


def normalize(
    image: Array, mean: Sequence[float], std: Sequence[float]
) -> Array:
  """`(image - mean) / std` per channel, for `[..., C]` float images.

  Example:
    >>> normalize(x, mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261))
  """
  channels = jnp.shape(image)[-1]
  # NumPy, not jnp: the params are static and must be checked while tracing.
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  if mean.shape != (channels,) or std.shape != (channels,):
    raise ValueError(
        f"mean and std must have one entry per channel ({channels}), got"
        f" {tuple(mean.shape)} and {tuple(std.shape)}."
    )
  if not np.all(std > 0):
    raise ValueError(f"std must be > 0, got {std.tolist()}.")
  return (jnp.asarray(image, jnp.float32) - mean) / std


def sample_crop_box(
    rng: Array,
    height: int,
    width: int,
    *,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> Array:
  """Samples a crop box `[top, left, h, w]` (int32 `[4]`) as torchvision.

  Draws `attempts` candidate boxes with area fraction ~ U(scale) and aspect
  ratio w/h ~ logU(ratio), keeps the first that fits in the image, and falls
  back to the largest central crop whose ratio is clamped into `ratio`.

  Example:
    >>> top, left, h, w = sample_crop_box(rng, 32, 32, scale=(0.08, 1.0))
  """
  _util.check_range("scale", scale, low=0.0, high=1.0)
  if scale[1] <= 0:
    raise ValueError(f"scale must include values > 0, got {scale!r}.")
  r_lo, r_hi = _util.check_range("ratio", ratio, low=0.0)
  if r_lo <= 0:
    raise ValueError(f"ratio must be > 0, got {ratio!r}.")
  _util.check_int("attempts", attempts, 1)
  u = _util.uniforms(rng, 2 * attempts + 2)
  area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:attempts])
  log_lo, log_hi = math.log(r_lo), math.log(r_hi)
  aspect = jnp.exp(log_lo + (log_hi - log_lo) * u[attempts:2 * attempts])
  w = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  h = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
  first = jnp.argmax(fits)  # the first fitting attempt (0 if none fits)
  # Fallback: the whole image, narrowed to the nearest allowed aspect ratio.
  in_ratio = width / height
  if in_ratio < r_lo:
    fb_w, fb_h = width, int(round(width / r_lo))
  elif in_ratio > r_hi:
    fb_w, fb_h = int(round(height * r_hi)), height
  else:
    fb_w, fb_h = width, height
  any_fits = jnp.any(fits)
  h = jnp.where(any_fits, h[first], fb_h)
  w = jnp.where(any_fits, w[first], fb_w)
  # Uniform over the placements that fit.
  top = _util.to_int(u[-2], 0, height - h + 1)
  left = _util.to_int(u[-1], 0, width - w + 1)
  # The fallback box is centred, as in torchvision.
  top = jnp.where(any_fits, top, (height - h) // 2)
  left = jnp.where(any_fits, left, (width - w) // 2)
  return jnp.stack([top, left, h, w]).astype(jnp.int32)


def crop_and_resize(
    image: Array, box: Array, size: tuple[int, int], antialias: bool = True
) -> Array:
  """Resamples the box `[top, left, h, w]` of `[H, W, C]` to `[*size, C]`.

  Bilinear (antialiased when shrinking), float32 in [0, 1]. The box may be
  traced. Sampling reads the whole image, so the outermost
  output pixels blend the crop with its neighbours (as tf.image's
  crop_and_resize does); a box of exactly `size` returns the crop unchanged.

  Example:
    >>> crop_and_resize(x, jnp.array([0, 0, 16, 16]), (32, 32))  # 2x zoom
  """
  image = to_float(image)
  box = jnp.asarray(box, jnp.float32)
  top, left, h, w = box[0], box[1], box[2], box[3]
  out_h, out_w = size
  scale = jnp.stack([out_h / h, out_w / w])
  translation = -jnp.stack([top, left]) * scale
  out = jax.image.scale_and_translate(
      image,
      (out_h, out_w, image.shape[-1]),
      spatial_dims=(0, 1),
      scale=scale,
      translation=translation,
      method="linear",
      antialias=antialias,
  )
  return jnp.clip(out, 0.0, 1.0)


def _image_size(image: Array, size: int | Sequence[int] | None):
  if size is None:
    return tuple(image.shape[:2])
  if isinstance(size, int):
    size = (size, size)
  size = tuple(size)
  if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
    raise ValueError(f"size must be a positive int or (h, w), got {size!r}.")
  return size


def random_resized_crop(
    rng: Array,
    image: Array,
    *,
    size: int | Sequence[int] | None = None,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> Array:
  """Random crop of random area and aspect ratio, resized to `size`.

  Inception-style cropping as used by SimCLR (Chen et al., 2020), MoCo v2 and
  BYOL. `size` defaults to the input's `(H, W)`.

  Args:
    rng: PRNG key.
    image: `[H, W, C]` uint8 or float in [0, 1].
    size: output `(h, w)` or an int for a square; None keeps `(H, W)`.
    scale: range of the crop's area as a fraction of the image's.
    ratio: range of the crop's aspect ratio w / h (sampled log-uniformly).
    attempts: boxes tried before the central fallback (torchvision: 10).

  Returns:
    `[h, w, C]` float32 in [0, 1].

  Example:
    >>> view = random_resized_crop(rng, x, size=32, scale=(0.08, 1.0))
  """
  _util.check_example_rank("image", image, 3, "[H, W, C]")
  out_size = _image_size(image, size)
  height, width = image.shape[:2]
  box = sample_crop_box(
      rng, height, width, scale=scale, ratio=ratio, attempts=attempts
  )
  return crop_and_resize(image, box, out_size)


def horizontal_flip(rng: Array, image: Array, *, prob: float = 0.5) -> Array:
  """Mirrors `[H, W, C]` left-right (reverses columns) with probability `prob`.

  Example:
    >>> horizontal_flip(rng, x, prob=0.5)
  """
  _util.check_example_rank("image", image, 3, "[H, W, C]")
  return _util.random_apply(_util.uniforms(rng, 1)[0],
                            lambda v: v[:, ::-1, :], to_float(image), prob)


def default_blur_kernel_size(height: int, width: int) -> int:
  """SimCLR's kernel: 10% of the image side, rounded to an odd size >= 3."""
  return max(3, int(round(0.1 * min(height, width))) // 2 * 2 + 1)


def _blur_axis(image: Array, weights: Array, axis: int) -> Array:
  radius = weights.shape[0] // 2
  pad = [(0, 0)] * image.ndim
  pad[axis] = (radius, radius)
  padded = jnp.pad(image, pad, mode="reflect")
  n = image.shape[axis]
  return sum(
      weights[k] * jax.lax.slice_in_dim(padded, k, k + n, axis=axis)
      for k in range(weights.shape[0])
  )


def gaussian_blur(
    rng: Array,
    image: Array,
    *,
    sigma: Sequence[float] = (0.1, 2.0),
    kernel_size: int | None = None,
    prob: float = 1.0,
) -> Array:
  """Separable Gaussian blur with sigma ~ U(sigma), applied with `prob`.

  As in SimCLR/MoCo v2/BYOL: the kernel spans 10% of the image side by
  default, and edges are reflected (as torchvision does).

  Args:
    rng: PRNG key.
    image: `[H, W, C]` uint8 or float in [0, 1].
    sigma: `(min, max)` standard deviation in pixels, > 0.
    kernel_size: odd kernel width; None uses `default_blur_kernel_size`.
    prob: probability of blurring.

  Returns:
    `[H, W, C]` float32 in [0, 1].

  Example:
    >>> gaussian_blur(rng, x, sigma=(0.1, 2.0), prob=0.5)
  """
  _util.check_example_rank("image", image, 3, "[H, W, C]")
  lo, _ = _util.check_range("sigma", sigma)
  if lo <= 0:
    raise ValueError(f"sigma must be > 0, got {sigma!r}.")
  height, width = image.shape[:2]
  if kernel_size is None:
    kernel_size = default_blur_kernel_size(height, width)
  _util.check_int("kernel_size", kernel_size, 1)
  if kernel_size % 2 == 0 or kernel_size // 2 >= min(height, width):
    raise ValueError(
        f"kernel_size must be odd and its radius smaller than the image side"
        f" {min(height, width)}, got {kernel_size}."
    )
  u = _util.uniforms(rng, 2)
  s = sigma[0] + (sigma[1] - sigma[0]) * u[1]
  offsets = jnp.arange(kernel_size, dtype=jnp.float32) - kernel_size // 2
  weights = jnp.exp(-0.5 * jnp.square(offsets / s))
  weights = weights / jnp.sum(weights)

  def blur(v):
    return _blur_axis(_blur_axis(v, weights, 0), weights, 1)

  return _util.random_apply(u[0], blur, to_float(image), prob)


def solarize(
    rng: Array, image: Array, *, threshold: float = 0.5, prob: float = 1.0
) -> Array:
  """Inverts pixels `>= threshold` (`x -> 1 - x`) with probability `prob`.

  BYOL (Grill et al., 2020) applies it to the second view with p = 0.2.

  Example:
    >>> solarize(rng, x, threshold=0.5, prob=0.2)
  """
  _util.check_example_rank("image", image, 3, "[H, W, C]")
  if not 0.0 <= float(threshold) <= 1.0:
    raise ValueError(f"threshold must lie in [0, 1], got {threshold}.")
  def invert_bright(v):
    return jnp.where(v >= threshold, 1.0 - v, v)

  return _util.random_apply(_util.uniforms(rng, 1)[0], invert_bright,
                            to_float(image), prob)
