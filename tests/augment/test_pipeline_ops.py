"""Each op of the image, audio and sensor pipelines alone: every op off is
the identity, and one op at probability 1 does what it says (NumPy formulas,
invariants, ranges over many draws)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from contrastive.augment import build_augment

KEY = jax.random.PRNGKey(0)


def _images(shape=(3, 8, 8, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# Every op of each modality's pipeline switched off; the tests below turn one
# on at a time, at probability 1, and check that it does what it says.
_OFF = {
    "simclr": dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                   flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0,
                   blur_prob=0.0, solarize_prob=0.0),
    "audio_default": dict(shift_prob=0.0, gain_prob=0.0, noise_prob=0.0),
    "sensor_default": dict(rotation_prob=0.0, scaling_prob=0.0,
                           time_warp_prob=0.0, permutation_prob=0.0,
                           jitter_prob=0.0, channel_mask_prob=0.0),
}
_INPUTS = {
    "simclr": _images(),
    "audio_default": np.random.default_rng(0).normal(
        size=(2, 400)).astype(np.float32),
    "sensor_default": np.random.default_rng(0).normal(
        size=(2, 32, 6)).astype(np.float32),
}
LUMA = np.array([0.299, 0.587, 0.114])


def _one_op(name, x=None, draws=2, **on):
  """`[draws, B, ...]`: `x` by preset `name`, every op off but those in `on`.

  The pipeline is jitted per example (unbatched image crops compile ~3x
  faster than vmapped ones) and called with a key per example and draw.
  """
  x = _INPUTS[name] if x is None else x
  augment = build_augment({"name": name, **_OFF[name], **on})
  fn = jax.jit(lambda k, v: augment(k, v))
  keys = jax.random.split(KEY, (draws, len(x)))
  return np.stack([[np.asarray(fn(keys[d, b], x[b])) for b in range(len(x))]
                   for d in range(draws)])


@pytest.mark.parametrize("name", list(_OFF))
def test_every_op_off_is_the_identity(name):
  x = _INPUTS[name]
  expected = x / 255.0 if x.dtype == np.uint8 else x
  np.testing.assert_allclose(_one_op(name), np.stack([expected] * 2),
                             atol=1e-6)


def _blur_rows_and_columns(x):
  """Gaussian blur, sigma 1, kernel 3, reflected edges, of [B, H, W, C]."""
  w = np.exp(-0.5 * np.array([1.0, 0.0, 1.0]))
  w /= w.sum()
  for axis in (1, 2):
    p = np.pad(x, [(1, 1) if a == axis else (0, 0) for a in range(4)],
               mode="reflect")
    n = x.shape[axis]
    x = sum(w[k] * np.take(p, np.arange(k, k + n), axis=axis)
            for k in range(3))
  return x


# op -> (its fields, what it makes of the batch as floats in [0, 1]).
_IMAGE_OPS = {
    "flip": (dict(flip_prob=1.0), lambda f: f[:, :, ::-1]),
    "grayscale": (dict(grayscale_prob=1.0),
                  lambda f: np.repeat(f @ LUMA[:, None], 3, axis=-1)),
    "solarize": (dict(solarize_prob=1.0, solarize_threshold=0.5),
                 lambda f: np.where(f >= 0.5, 1.0 - f, f)),
    "blur": (dict(blur_prob=1.0, blur_sigma=(1.0, 1.0), blur_kernel_size=3),
             _blur_rows_and_columns),
}


@pytest.mark.parametrize("op", list(_IMAGE_OPS))
def test_image_op_alone(op):
  fields, expected = _IMAGE_OPS[op]
  views = _one_op("simclr", **fields)
  target = expected(_INPUTS["simclr"] / 255.0)
  np.testing.assert_allclose(views, np.stack([target] * 2), atol=1e-5)
  assert not np.allclose(target, _INPUTS["simclr"] / 255.0)


def test_image_brightness_jitter_and_crop_alone():
  dark = _images() // 2 + 1  # 1..128: brightness factors <= 1.4 do not clip
  views = _one_op("simclr", dark, draws=10, jitter_prob=1.0, brightness=0.4,
                  contrast=0.0, saturation=0.0, hue=0.0)
  ratio = views / (dark / 255.0)
  factors = ratio[..., :1, :1, :1]
  np.testing.assert_allclose(ratio, np.broadcast_to(factors, ratio.shape),
                             rtol=1e-4)
  assert np.all((factors > 0.6 - 1e-5) & (factors < 1.4 + 1e-5))
  assert len(np.unique(factors.round(5))) == 30  # one per example and draw
  # A crop of a quarter of the area at size 4 is a 4 x 4 window, unscaled.
  crops = _one_op("simclr", crop_scale=(0.25, 0.25), image_size=4)
  f = _INPUTS["simclr"] / 255.0
  corners = set()
  for v, b in np.ndindex(2, 3):
    found = [(t, l) for t in range(5) for l in range(5)
             if np.allclose(crops[v, b], f[b, t:t + 4, l:l + 4], atol=1e-6)]
    assert len(found) == 1, (v, b)
    corners.add(found[0])
  assert len(corners) > 1


def test_audio_op_alone():
  x = _INPUTS["audio_default"]
  ratio = _one_op("audio_default", draws=20, gain_prob=1.0,
                  gain_db=(-6.0, 6.0)) / x
  np.testing.assert_allclose(ratio, ratio[..., :1] * np.ones_like(ratio),
                             rtol=1e-5)
  gains_db = 20 * np.log10(ratio[..., 0])  # 40 draws of U(-6, 6) dB
  assert np.all(np.abs(gains_db) <= 6.0 + 1e-4) and np.ptp(gains_db) > 9.0
  shifted = _one_op("audio_default", shift_prob=1.0, max_shift=100)
  shifts = []
  for v, b in np.ndindex(2, 2):
    found = [s for s in range(-100, 101)
             if np.array_equal(shifted[v, b], np.roll(x[b], s))]
    assert len(found) == 1, (v, b)
    shifts += found
  assert len(set(shifts)) > 1
  # 200 SNRs ~ U(10, 40) dB, each measured within ~0.2 dB (4000 samples).
  long = np.random.default_rng(1).normal(size=(2, 4000)).astype(np.float32)
  noisy = _one_op("audio_default", long, draws=100, noise_prob=1.0,
                  snr_db=(10.0, 40.0))
  snr = 10 * np.log10(np.mean(long ** 2, -1) / np.mean((noisy - long) ** 2,
                                                         -1))
  assert 9.5 < snr.min() < 11.0 and 39.0 < snr.max() < 40.5


def test_sensor_op_alone():
  x = _INPUTS["sensor_default"]
  rotated = _one_op("sensor_default", rotation_prob=1.0)
  for v, b in np.ndindex(2, 2):
    out = rotated[v, b]
    for g in ((0, 1, 2), (3, 4, 5)):
      np.testing.assert_allclose(np.linalg.norm(out[:, g], axis=1),
                                 np.linalg.norm(x[b][:, g], axis=1),
                                 rtol=1e-5)
    rot_t, *_ = np.linalg.lstsq(x[b][:, :3], out[:, :3], rcond=None)
    np.testing.assert_allclose(x[b][:, 3:] @ rot_t, out[:, 3:], atol=1e-4)
    angle = np.arccos(np.clip((np.trace(rot_t) - 1) / 2, -1, 1))
    assert 1e-3 < angle <= np.pi / 6 + 1e-4  # rotation_max_angle
  scaled = _one_op("sensor_default", scaling_prob=1.0, scaling_sigma=0.1)
  factors = scaled / x
  np.testing.assert_allclose(factors, factors[:, :, :1] * np.ones_like(x),
                             rtol=1e-4)
  assert np.all(np.abs(factors - 1) < 0.5) and np.ptp(factors) > 0.05
  noise = _one_op("sensor_default", jitter_prob=1.0, jitter_sigma=0.05) - x
  assert abs(noise.std() - 0.05) < 0.006 and abs(noise.mean()) < 0.006
  masked = _one_op("sensor_default", channel_mask_prob=1.0)
  for out in masked.reshape(4, 32, 6):
    zero = np.flatnonzero(np.all(out == 0, axis=0))
    assert tuple(zero) in ((0, 1, 2), (3, 4, 5))
  np.testing.assert_array_equal(masked[masked != 0],
                                np.broadcast_to(x, masked.shape)[masked != 0])
  # On ramps, a time warp is monotone, keeps both ends and warps every
  # channel alike; a permutation keeps every row, in at most 4 pieces.
  ramps = np.arange(32, dtype=np.float32)[None, :, None] * np.arange(
      1, 7, dtype=np.float32) * np.ones((2, 1, 1), np.float32)
  warped = _one_op("sensor_default", ramps, time_warp_prob=1.0,
                   time_warp_sigma=0.2)
  ends = np.broadcast_to(ramps, warped.shape)[..., (0, -1), :]
  np.testing.assert_allclose(warped[..., (0, -1), :], ends, atol=1e-5)
  assert np.all(np.diff(warped, axis=2) >= 0)
  np.testing.assert_allclose(warped / np.arange(1, 7), np.broadcast_to(
      warped[..., :1], warped.shape), rtol=1e-5, atol=1e-5)
  assert np.abs(warped - ramps).max() > 0.1
  permuted = _one_op("sensor_default", ramps, permutation_prob=1.0)
  np.testing.assert_array_equal(np.sort(permuted, axis=2),
                                np.broadcast_to(ramps, permuted.shape))
  steps = np.diff(permuted[..., 0], axis=-1)
  assert np.all(np.sum(steps != 1, axis=-1) <= 3) and np.any(steps != 1)
