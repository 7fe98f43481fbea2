"""One augmented view of one example, per modality: the ops chained in order.

Each pipeline is `fn(rng, x, *, params) -> x` like the ops it chains, with
one sub-key per op; a zero probability skips an op entirely. `presets.py`
fixes the params of a named recipe and `views.py` vmaps the result.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from contrastive.augment import audio
from contrastive.augment import color
from contrastive.augment import image as image_ops
from contrastive.augment import sensor

Array = jax.Array


def identity_pipeline(
    rng: Array,
    x: Array,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Array:
  """No augmentation: uint8 -> float32 / 255, floats only cast to float32.

  Unlike `image.to_float`, floats are not clipped, so audio and IMU data pass
  through unchanged. `mean`/`std` (both or neither) normalise the last axis.

  Example:
    >>> identity_pipeline(rng, images_uint8)  # float32 in [0, 1]
  """
  del rng  # Deterministic; the argument keeps the common signature.
  x = jnp.asarray(x)
  x = x / 255.0 if x.dtype == jnp.uint8 else x
  x = jnp.asarray(x, jnp.float32)
  if (mean is None) != (std is None):
    raise ValueError("give both mean and std, or neither.")
  return x if mean is None else image_ops.normalize(x, mean, std)


def image_pipeline(
    rng: Array,
    x: Array,
    *,
    image_size: int | Sequence[int] | None,
    crop_scale: Sequence[float],
    crop_ratio: Sequence[float],
    flip_prob: float,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    jitter_prob: float,
    grayscale_prob: float,
    blur_prob: float,
    blur_sigma: Sequence[float],
    blur_kernel_size: int | None,
    solarize_prob: float,
    solarize_threshold: float,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    crop_on: str = "device",
) -> Array:
  """Crop, flip, colour jitter, grayscale, blur, solarize, then normalise.

  The order of SimCLR, MoCo v2 and BYOL. `[H, W, C]` uint8 or float in
  [0, 1] -> `[h, w, C]` float32, in [0, 1] unless `mean`/`std` are given.
  `crop_on='host'`: `x` is a view already cropped from the whole image and
  resized on the host (`contrastive.data.host_crops`, with this recipe's
  scale and ratio), so the crop is skipped; `image_size` must be its size.

  Example:
    >>> image_pipeline(rng, x, **presets.PRESETS["simclr"].defaults)
  """
  keys = jax.random.split(rng, 6)
  if crop_on == "host":
    expected = ((image_size, image_size) if isinstance(image_size, int)
                else image_size)
    if expected is not None and tuple(x.shape[:2]) != tuple(expected):
      raise ValueError(
          f"crop_on='host' takes views of image_size {tuple(expected)},"
          f" cropped on the host; got an image of {tuple(x.shape[:2])}.")
    x = image_ops.to_float(x)
  else:
    x = image_ops.random_resized_crop(
        keys[0], x, size=image_size, scale=crop_scale, ratio=crop_ratio)
  x = image_ops.horizontal_flip(keys[1], x, prob=flip_prob)
  x = color.color_jitter(
      keys[2], x, brightness=brightness, contrast=contrast,
      saturation=saturation, hue=hue, prob=jitter_prob)
  x = color.grayscale(keys[3], x, prob=grayscale_prob)
  if blur_prob > 0:
    x = image_ops.gaussian_blur(
        keys[4], x, sigma=blur_sigma, kernel_size=blur_kernel_size,
        prob=blur_prob)
  x = image_ops.solarize(
      keys[5], x, threshold=solarize_threshold, prob=solarize_prob)
  return identity_pipeline(None, x, mean=mean, std=std)


def audio_pipeline(
    rng: Array,
    x: Array,
    *,
    crop_length: int | None,
    max_shift: int,
    shift_mode: str,
    shift_prob: float,
    gain_db: Sequence[float],
    gain_prob: float,
    snr_db: Sequence[float],
    noise_prob: float,
) -> Array:
  """Random crop (optional), time shift, gain, then additive noise.

  `[T]` float32 -> `[crop_length or T]` float32. SpecAugment runs later,
  on the encoder's log-mels (see `audio.make_spec_transform`).

  Example:
    >>> audio_pipeline(rng, wave, **presets.PRESETS["audio_default"].defaults)
  """
  keys = jax.random.split(rng, 4)
  x = jnp.asarray(x, jnp.float32)
  if crop_length is not None:
    x = audio.random_crop(keys[0], x, length=crop_length)
  if shift_prob > 0:
    x = audio.random_time_shift(
        keys[1], x, max_shift=max_shift, mode=shift_mode, prob=shift_prob)
  x = audio.random_gain(keys[2], x, gain_db=gain_db, prob=gain_prob)
  return audio.add_noise(keys[3], x, snr_db=snr_db, prob=noise_prob)


def sensor_pipeline(
    rng: Array,
    x: Array,
    *,
    channel_groups: Sequence[Sequence[int]],
    rotation_prob: float,
    rotation_max_angle: float | None,
    scaling_sigma: float,
    scaling_prob: float,
    time_warp_sigma: float,
    time_warp_knots: int,
    time_warp_prob: float,
    permutation_segments: int,
    permutation_prob: float,
    jitter_sigma: float,
    jitter_prob: float,
    channel_mask_prob: float,
) -> Array:
  """Rotation, scaling, time warp, permutation, jitter, then channel mask.

  Geometric changes of the device come first, then changes of timing, then
  sensor noise; masking is last so a dropped sensor reads exactly zero.
  `[T, C]` -> `[T, C]` float32.

  Example:
    >>> sensor_pipeline(rng, x, **presets.PRESETS["sensor_default"].defaults)
  """
  keys = jax.random.split(rng, 6)
  x = jnp.asarray(x, jnp.float32)
  if rotation_prob > 0:
    x = sensor.rotation(keys[0], x, groups=channel_groups,
                        max_angle=rotation_max_angle, prob=rotation_prob)
  x = sensor.scaling(keys[1], x, sigma=scaling_sigma, prob=scaling_prob)
  x = sensor.time_warp(keys[2], x, sigma=time_warp_sigma,
                       num_knots=time_warp_knots, prob=time_warp_prob)
  x = sensor.segment_permutation(
      keys[3], x, num_segments=permutation_segments, prob=permutation_prob)
  x = sensor.jitter(keys[4], x, sigma=jitter_sigma, prob=jitter_prob)
  if channel_mask_prob > 0:
    x = sensor.channel_mask(keys[5], x, groups=channel_groups,
                            prob=channel_mask_prob)
  return x
