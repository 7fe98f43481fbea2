"""Tests of contrastive.augment.sensor on IMU windows [T, C]."""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
import scipy.special

from contrastive.augment import _util
from contrastive.augment import sensor

KEY = jax.random.PRNGKey(0)


def _run(fn, *args, **params):
  return jax.jit(functools.partial(fn, **params))(*args)


def _batched(fn, x, n, seed=1, **params):
  keys = jax.random.split(jax.random.PRNGKey(seed), n)
  return np.asarray(jax.jit(jax.vmap(lambda k: fn(k, x, **params)))(keys))


def _window(length=32, channels=6, seed=0):
  return np.random.default_rng(seed).normal(
      size=(length, channels)).astype(np.float32)


def test_jitter_adds_noise_of_given_std():
  x = _window(256)
  noise = np.asarray(_run(sensor.jitter, KEY, x, sigma=0.05)) - x
  assert abs(noise.std() - 0.05) < 0.005 and abs(noise.mean()) < 0.005
  np.testing.assert_array_equal(_run(sensor.jitter, KEY, x, sigma=0.0), x)
  with pytest.raises(ValueError, match="sigma"):
    _run(sensor.jitter, KEY, x, sigma=-1.0)


def test_scaling_is_one_factor_per_channel():
  x = _window()
  outs = _batched(sensor.scaling, x, 64, sigma=0.1)
  factors = outs / x
  np.testing.assert_allclose(factors, factors[:, :1] * np.ones_like(x),
                             rtol=1e-5)
  per_channel = factors[:, 0]  # 64 x 6 draws of N(1, 0.1^2)
  # The mean of 384 draws has standard deviation 0.1 / sqrt(384) = 0.005.
  assert abs(per_channel.mean() - 1.0) < 0.02
  assert abs(per_channel.std() - 0.1) < 0.03
  assert np.ptp(per_channel[0]) > 0  # channels differ


def test_rotation_matrices_are_rotations_and_respect_max_angle():
  def both(k):
    return (sensor.random_rotation_matrix(k, None),
            sensor.random_rotation_matrix(k, np.pi / 6),
            sensor.random_rotation_matrix(k, 0.0))

  uniform, small, none = (np.asarray(m) for m in jax.jit(jax.vmap(both))(
      jax.random.split(KEY, 400)))
  for mats in (uniform, small):
    eye = np.broadcast_to(np.eye(3), mats.shape)
    np.testing.assert_allclose(mats @ mats.transpose(0, 2, 1), eye,
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-5)

  def angles(mats):
    cos = (np.trace(mats, axis1=1, axis2=2) - 1) / 2
    return np.arccos(np.clip(cos, -1, 1))

  # Haar measure: E[R] = 0, and P(angle > 90 degrees) = 1/2 + 1/pi.
  assert np.abs(uniform.mean(axis=0)).max() < 0.1
  assert abs(np.mean(angles(uniform) > np.pi / 2) - (0.5 + 1 / np.pi)) < 0.07
  assert angles(small).max() <= np.pi / 6 + 1e-4
  assert angles(small).max() > np.pi / 8
  np.testing.assert_allclose(none, np.broadcast_to(np.eye(3), none.shape),
                             atol=1e-6)


def test_rotation_uses_one_rotation_for_both_sensors_and_keeps_norms():
  x = _window(channels=7)  # channel 6 is outside every group
  out = np.asarray(_run(sensor.rotation, KEY, x))
  for group in ((0, 1, 2), (3, 4, 5)):
    g = list(group)
    np.testing.assert_allclose(np.linalg.norm(out[:, g], axis=1),
                               np.linalg.norm(x[:, g], axis=1), rtol=1e-5)
  # Recover the accelerometer's rotation and apply it to the gyroscope.
  rot_t, *_ = np.linalg.lstsq(x[:, :3], out[:, :3], rcond=None)
  np.testing.assert_allclose(x[:, 3:6] @ rot_t, out[:, 3:6], atol=1e-5)
  assert not np.allclose(rot_t, np.eye(3), atol=1e-2)
  np.testing.assert_array_equal(out[:, 6], x[:, 6])


def test_rotation_errors():
  x = _window()
  with pytest.raises(ValueError, match="3 channels"):
    _run(sensor.rotation, KEY, x, groups=((0, 1),))
  with pytest.raises(ValueError, match=r"\[0, 6\)"):
    _run(sensor.rotation, KEY, x, groups=((4, 5, 6),))
  with pytest.raises(ValueError, match="rank 2"):
    _run(sensor.rotation, KEY, x[0])


@pytest.mark.parametrize("random_lengths", [True, False])
def test_segment_permutation_shuffles_contiguous_pieces(random_lengths):
  length = 32
  x = np.tile(np.arange(length, dtype=np.float32)[:, None], (1, 6))
  outs = _batched(sensor.segment_permutation, x, 10, num_segments=4,
                  random_lengths=random_lengths)
  for out in outs:
    np.testing.assert_array_equal(np.sort(out[:, 0]), x[:, 0])  # multiset
    np.testing.assert_array_equal(out, np.tile(out[:, :1], (1, 6)))
    jumps = np.sum(np.diff(out[:, 0]) != 1)  # piece boundaries
    assert jumps <= 3
  assert sum(not np.array_equal(o, x) for o in outs) >= 5
  if not random_lengths:  # equal pieces of 8 samples start at multiples of 8
    assert set(outs[:, ::8, 0].ravel()) <= {0, 8, 16, 24}
  np.testing.assert_array_equal(
      _run(sensor.segment_permutation, KEY, x, num_segments=1), x)
  with pytest.raises(ValueError, match="num_segments"):
    _run(sensor.segment_permutation, KEY, x, num_segments=33)


def test_time_warp_is_monotone_with_fixed_ends():
  ramp = np.tile(np.linspace(0, 1, 32, dtype=np.float32)[:, None], (1, 6))
  np.testing.assert_allclose(_run(sensor.time_warp, KEY, ramp, sigma=0.0),
                             ramp, atol=1e-6)
  outs = _batched(sensor.time_warp, ramp, 10, sigma=0.3)
  assert np.all(np.diff(outs, axis=1) >= -1e-6)
  np.testing.assert_allclose(outs[:, 0], 0.0, atol=1e-6)
  np.testing.assert_allclose(outs[:, -1], 1.0, atol=1e-5)
  assert np.abs(outs - ramp).max() > 0.01
  with pytest.raises(ValueError, match="num_knots"):
    _run(sensor.time_warp, KEY, ramp, num_knots=-1)


def test_time_warp_matches_numpy():
  # The same draws, pushed through the formulas in NumPy/SciPy: log-normal
  # speeds at evenly spaced knots, interpolated, integrated, rescaled to
  # [0, T-1], and the window resampled there.
  x = _window(40, 3)
  sigma, knots = 0.4, 3
  u = np.asarray(_util.uniforms(KEY, knots + 3))
  speeds = np.exp(sigma * scipy.special.ndtri(u[1:]))
  t = np.arange(40.0)
  speed = np.interp(t, np.linspace(0, 39, knots + 2), speeds)
  warped = np.cumsum(speed) - speed[0]
  warped *= 39 / warped[-1]
  expected = np.stack([np.interp(warped, t, x[:, c]) for c in range(3)], 1)
  out = _run(sensor.time_warp, KEY, x, sigma=sigma, num_knots=knots)
  np.testing.assert_allclose(out, expected, atol=1e-4)


def test_channel_mask_zeroes_exactly_one_group():
  x = _window() + 10.0  # no zeros of its own
  groups = ((0, 1, 2), (3, 4, 5))
  seen = set()
  for out in _batched(sensor.channel_mask, x, 16, groups=groups):
    zero = np.all(out == 0, axis=0)
    assert tuple(np.flatnonzero(zero)) in groups
    np.testing.assert_array_equal(out[:, ~zero], x[:, ~zero])
    seen.add(tuple(np.flatnonzero(zero)))
  assert len(seen) == 2
  np.testing.assert_array_equal(
      _run(sensor.channel_mask, KEY, x, prob=0.0), x)
  with pytest.raises(ValueError, match="distinct"):
    _run(sensor.channel_mask, KEY, x, groups=((0, 1), (1, 2)))
