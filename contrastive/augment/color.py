"""Per-example colour augmentations: colour jitter and random grayscale.

Semantics follow torchvision's `ColorJitter`/`RandomGrayscale`, which the
SimCLR (Chen et al., 2020), MoCo v2 (Chen et al., 2020) and BYOL (Grill et
al., 2020) recipes use: each jitter factor is drawn uniformly, the four
adjustments run in a random order, and results are clipped to [0, 1].
Single-channel images (C = 1, e.g. Fashion-MNIST) skip saturation and hue,
which have no meaning without colour. Images are `[H, W, C]` with C in {1, 3}.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from contrastive.augment import _util
from contrastive.augment.image import to_float

Array = jax.Array

# ITU-R 601-2 luma weights, as in PIL and torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _check_image(image: Array) -> None:
  _util.check_example_rank("image", image, 3, "[H, W, C]")
  if image.shape[-1] not in (1, 3):
    raise ValueError(
        f"colour ops need C = 1 (gray) or 3 (RGB) channels, got {image.shape}."
    )


def luma(image: Array) -> Array:
  """`[..., C]` -> `[..., 1]` grayscale (the channel itself when C = 1)."""
  if image.shape[-1] == 1:
    return image
  weights = jnp.asarray(_LUMA, image.dtype)
  return jnp.sum(image * weights, axis=-1, keepdims=True)


def rgb_to_hsv(rgb: Array) -> Array:
  """`[..., 3]` RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of a turn)."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  maxc = jnp.max(rgb, axis=-1)
  minc = jnp.min(rgb, axis=-1)
  delta = maxc - minc
  grey = delta == 0
  # Dividing by a safe denominator avoids NaN on grey pixels, whose hue and
  # (for black) saturation are defined as 0.
  safe_delta = jnp.where(grey, 1.0, delta)
  s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  rc = (maxc - r) / safe_delta
  gc = (maxc - g) / safe_delta
  bc = (maxc - b) / safe_delta
  h = jnp.where(
      r == maxc, bc - gc, jnp.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc)
  )
  h = jnp.where(grey, 0.0, jnp.mod(h / 6.0, 1.0))
  return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(hsv: Array) -> Array:
  """`[..., 3]` HSV in [0, 1] -> RGB in [0, 1]; inverse of `rgb_to_hsv`.

  Uses the closed form `c_n = v - v s clip(min(k, 4 - k), 0, 1)` with
  `k = (n + 6 h) mod 6` for n = 5, 3, 1 (r, g, b): elementwise, so it
  compiles small, and equal to the six-sector table.
  """
  h, s, v = hsv[..., :1], hsv[..., 1:2], hsv[..., 2:]
  n = jnp.asarray([5.0, 3.0, 1.0], hsv.dtype)
  k = jnp.mod(n + 6.0 * h, 6.0)
  return v - v * s * jnp.clip(jnp.minimum(k, 4.0 - k), 0.0, 1.0)


def _blend(a: Array, b: Array, factor: Array) -> Array:
  return jnp.clip(factor * a + (1.0 - factor) * b, 0.0, 1.0)


def adjust_brightness(image: Array, factor: Array) -> Array:
  """Scales intensities by `factor` (0 gives black)."""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: Array, factor: Array) -> Array:
  """Blends with the mean gray level (0 gives a flat gray image)."""
  return _blend(image, jnp.mean(luma(image)), factor)


def adjust_saturation(image: Array, factor: Array) -> Array:
  """Blends with the grayscale image (0 gives gray); identity for C = 1."""
  if image.shape[-1] == 1:
    return image
  return _blend(image, luma(image), factor)


def adjust_hue(image: Array, shift: Array) -> Array:
  """Rotates hue by `shift` turns, in [-0.5, 0.5]; identity for C = 1."""
  if image.shape[-1] == 1:
    return image
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + shift, 1.0))
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def color_jitter(
    rng: Array,
    image: Array,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    prob: float = 1.0,
) -> Array:
  """Random brightness, contrast, saturation and hue, in random order.

  Factors are drawn from `U[max(0, 1 - s), 1 + s]` for the first three and
  the hue shift from `U[-hue, hue]` (torchvision's `ColorJitter`). SimCLR's
  strength `s` maps to `(0.8 s, 0.8 s, 0.8 s, 0.2 s)`; the defaults are its
  CIFAR strength 0.5. A zero strength disables that adjustment.

  Args:
    rng: PRNG key.
    image: `[H, W, C]`, C in {1, 3}, uint8 or float in [0, 1].
    brightness, contrast, saturation: jitter strengths, >= 0.
    hue: hue jitter strength in [0, 0.5] (fraction of a turn).
    prob: probability of jittering at all (SimCLR: 0.8).

  Returns:
    `[H, W, C]` float32 in [0, 1].

  Example:
    >>> color_jitter(rng, x, brightness=0.4, contrast=0.4, saturation=0.4,
    ...              hue=0.1, prob=0.8)
  """
  _check_image(image)
  for name, value in (("brightness", brightness), ("contrast", contrast),
                      ("saturation", saturation)):
    _util.check_non_negative(name, value)
  if not 0.0 <= float(hue) <= 0.5:
    raise ValueError(f"hue must lie in [0, 0.5], got {hue}.")
  # u[0] is the coin, u[1:5] the factors, and the argsort of u[5:] a
  # uniformly random order of the four adjustments.
  u = _util.uniforms(rng, 9)
  strengths = (brightness, contrast, saturation)
  b, c, s = (max(0.0, 1.0 - v) + (1.0 + v - max(0.0, 1.0 - v)) * u[i + 1]
             for i, v in enumerate(strengths))
  h = hue * (2.0 * u[4] - 1.0)
  ops = (
      lambda v: adjust_brightness(v, b),
      lambda v: adjust_contrast(v, c),
      lambda v: adjust_saturation(v, s),
      lambda v: adjust_hue(v, h),
  )
  order = jnp.argsort(u[5:])

  def jitter(v):
    # A loop, not four unrolled switches: under vmap every switch computes
    # all its branches, and one loop body keeps the compiled program small.
    return jax.lax.fori_loop(
        0, len(ops), lambda step, w: jax.lax.switch(order[step], ops, w), v)

  return _util.random_apply(u[0], jitter, to_float(image), prob)


def grayscale(rng: Array, image: Array, *, prob: float = 1.0) -> Array:
  """Replaces every channel by the luma with probability `prob`.

  Keeps C channels (torchvision's `RandomGrayscale`); identity for C = 1.
  SimCLR, MoCo v2 and BYOL use p = 0.2.

  Example:
    >>> grayscale(rng, x, prob=0.2)
  """
  _check_image(image)
  image = to_float(image)
  return _util.random_apply(
      _util.uniforms(rng, 1)[0], lambda v: jnp.broadcast_to(luma(v), v.shape),
      image, prob)
