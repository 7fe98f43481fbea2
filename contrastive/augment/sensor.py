"""Per-example augmentations of inertial (IMU) windows `[T, C]`.

The default layout is C = 6: accelerometer xyz (g), then gyroscope xyz
(rad/s); `groups` names the tri-axial channel groups, default
`((0, 1, 2), (3, 4, 5))`. The transforms are those of Um et al. (2017),
"Data augmentation of wearable sensor data for Parkinson's disease
monitoring" (jitter, scaling, rotation, permutation, time warping), which
Saeed et al. (2019) and Tang et al. (2021, "SelfHAR") use as pretext
transformations; channel masking zeroes a whole sensor, as if it dropped out.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from contrastive.augment import _util

Array = jax.Array
Groups = Sequence[Sequence[int]]

DEFAULT_GROUPS = ((0, 1, 2), (3, 4, 5))


def _check_window(x: Array) -> None:
  _util.check_example_rank("x", x, 2, "[T, C] samples x channels")


def _check_groups(groups: Groups, channels: int, size: int | None = None):
  groups = tuple(tuple(int(c) for c in g) for g in groups)
  flat = [c for g in groups for c in g]
  if not groups or not all(groups):
    raise ValueError(f"groups must be non-empty channel lists, got {groups}.")
  if any(not 0 <= c < channels for c in flat) or len(set(flat)) != len(flat):
    raise ValueError(
        f"groups must hold distinct channels in [0, {channels}), got {groups}."
    )
  if size is not None and any(len(g) != size for g in groups):
    raise ValueError(f"each group must have {size} channels, got {groups}.")
  return groups


def jitter(rng: Array, x: Array, *, sigma: float = 0.05,
           prob: float = 1.0) -> Array:
  """Adds Gaussian noise N(0, sigma^2) to every sample of `[T, C]`.

  Example:
    >>> jitter(rng, x, sigma=0.05)
  """
  _check_window(x)
  _util.check_non_negative("sigma", sigma)
  x = jnp.asarray(x, jnp.float32)
  u = _util.uniforms(rng, x.size + 1)
  noise = sigma * _util.to_normal(u[1:]).reshape(x.shape)
  return _util.random_apply(u[0], lambda v: v + noise, x, prob)


def scaling(rng: Array, x: Array, *, sigma: float = 0.1,
            prob: float = 1.0) -> Array:
  """Multiplies each channel of `[T, C]` by its own factor ~ N(1, sigma^2).

  Example:
    >>> scaling(rng, x, sigma=0.1)
  """
  _check_window(x)
  _util.check_non_negative("sigma", sigma)
  x = jnp.asarray(x, jnp.float32)
  u = _util.uniforms(rng, x.shape[1] + 1)
  factor = 1.0 + sigma * _util.to_normal(u[1:])
  return _util.random_apply(u[0], lambda v: v * factor, x, prob)


def random_rotation_matrix(rng: Array, max_angle: float | None = None) -> Array:
  """A random `[3, 3]` rotation matrix.

  With `max_angle=None` it is uniform over SO(3) (a normalised Gaussian
  quaternion). Otherwise it turns by an angle ~ U[-max_angle, max_angle]
  (radians) about a uniformly random axis (Rodrigues' formula).

  Example:
    >>> r = random_rotation_matrix(rng, max_angle=jnp.pi / 6)
  """
  return _rotation_from_uniforms(_util.uniforms(rng, 4), max_angle)


def _rotation_from_uniforms(u: Array, max_angle: float | None) -> Array:
  """The rotation of `random_rotation_matrix` from 4 uniforms `u`."""
  if max_angle is None:
    q = _util.to_normal(u)
    w, i, j, k = q / jnp.linalg.norm(q)
    return jnp.array([
        [1 - 2 * (j * j + k * k), 2 * (i * j - k * w), 2 * (i * k + j * w)],
        [2 * (i * j + k * w), 1 - 2 * (i * i + k * k), 2 * (j * k - i * w)],
        [2 * (i * k - j * w), 2 * (j * k + i * w), 1 - 2 * (i * i + j * j)],
    ])
  _util.check_non_negative("max_angle", max_angle)
  axis = _util.to_normal(u[:3])
  ax, ay, az = axis / jnp.linalg.norm(axis)
  angle = max_angle * (2.0 * u[3] - 1.0)
  cross = jnp.array([[0.0, -az, ay], [az, 0.0, -ax], [-ay, ax, 0.0]])
  return (jnp.eye(3) + jnp.sin(angle) * cross
          + (1.0 - jnp.cos(angle)) * cross @ cross)


def rotation(
    rng: Array,
    x: Array,
    *,
    groups: Groups = DEFAULT_GROUPS,
    max_angle: float | None = None,
    prob: float = 1.0,
) -> Array:
  """Rotates every tri-axial group of `[T, C]` by ONE random rotation.

  The accelerometer and the gyroscope are rigidly attached to the same
  device, so a change of the device's orientation rotates both of their
  frames identically; using one rotation keeps the two sensors consistent.
  Channels outside `groups` are untouched. See `random_rotation_matrix`
  for `max_angle` (None: uniform over SO(3), Um et al. 2017). Rotate raw
  physical readings (g, rad/s): after per-channel standardisation the
  channel offsets and scales differ, and a rotation no longer models a
  change of device orientation.

  Example:
    >>> rotation(rng, x, max_angle=jnp.pi / 6)
  """
  _check_window(x)
  groups = _check_groups(groups, x.shape[1], size=3)
  x = jnp.asarray(x, jnp.float32)
  u = _util.uniforms(rng, 5)
  matrix = _rotation_from_uniforms(u[1:], max_angle)

  def rotate(v):
    for g in groups:
      idx = np.asarray(g)
      v = v.at[:, idx].set(v[:, idx] @ matrix.T)
    return v

  return _util.random_apply(u[0], rotate, x, prob)


def segment_permutation(
    rng: Array,
    x: Array,
    *,
    num_segments: int = 4,
    random_lengths: bool = True,
    prob: float = 1.0,
) -> Array:
  """Cuts `[T, C]` into `num_segments` pieces along time and shuffles them.

  With `random_lengths` the cut points are distinct uniform draws from
  1..T-1 (Um et al. 2017); otherwise the pieces have (nearly) equal length.
  Shapes stay static: the output is gathered through an index map, so every
  sample of the input appears exactly once in the output.

  Example:
    >>> segment_permutation(rng, x, num_segments=4)
  """
  _check_window(x)
  length = x.shape[0]
  _util.check_int("num_segments", num_segments, 1, length)
  x = jnp.asarray(x, jnp.float32)
  # u[0]: coin; u[1:m+1]: order (argsort = uniform permutation); the rest:
  # the cut points, the first m-1 of a uniform permutation of 1..T-1.
  u = _util.uniforms(rng, 1 + num_segments + (length - 1) * random_lengths)
  if random_lengths:
    cuts = jnp.sort(1 + jnp.argsort(u[num_segments + 1:])[:num_segments - 1])
  else:
    cuts = jnp.asarray(
        np.round(np.linspace(0, length, num_segments + 1))[1:-1], jnp.int32)
  bounds = jnp.concatenate([jnp.array([0]), cuts, jnp.array([length])])
  starts, lengths = bounds[:-1], jnp.diff(bounds)
  order = jnp.argsort(u[1:num_segments + 1])
  out_ends = jnp.cumsum(lengths[order])
  t = jnp.arange(length)
  # Which output piece holds sample t: the number of piece ends <= t (a
  # comparison table, cheaper to compile than searchsorted for small m).
  piece = jnp.sum(t[:, None] >= out_ends[None, :], axis=1)
  source = starts[order][piece] + t - (out_ends - lengths[order])[piece]
  return _util.random_apply(u[0], lambda v: v[source], x, prob)


def time_warp(
    rng: Array,
    x: Array,
    *,
    sigma: float = 0.2,
    num_knots: int = 4,
    prob: float = 1.0,
) -> Array:
  """Smoothly speeds up and slows down `[T, C]` along time.

  Local playback speeds `exp(sigma * N(0, 1))` are drawn at `num_knots + 2`
  evenly spaced knots and interpolated linearly to every sample; their
  cumulative sum, rescaled to span `[0, T - 1]`, is the warped time at which
  each channel is resampled by linear interpolation. Um et al. (2017) draw
  speeds ~ N(1, sigma^2) through a cubic spline; the log-normal keeps them
  positive (a monotone warp) and sigma = 0 is exactly the identity.

  Example:
    >>> time_warp(rng, x, sigma=0.2, num_knots=4)
  """
  _check_window(x)
  _util.check_non_negative("sigma", sigma)
  _util.check_int("num_knots", num_knots, 0)
  x = jnp.asarray(x, jnp.float32)
  length = x.shape[0]
  if length < 2:
    return x
  u = _util.uniforms(rng, num_knots + 3)
  speeds = jnp.exp(sigma * _util.to_normal(u[1:]))
  # Knots and samples are on fixed grids, so interpolating the speeds is a
  # constant [T, knots] matrix.
  knots = np.linspace(0.0, length - 1.0, num_knots + 2)
  eye = np.eye(num_knots + 2)
  weights = np.stack([np.interp(np.arange(length), knots, row) for row in eye],
                     axis=1).astype(np.float32)
  speed = jnp.asarray(weights) @ speeds
  warped = jnp.cumsum(speed) - speed[0]
  warped = warped * (length - 1.0) / jnp.maximum(warped[-1], 1e-12)
  # Linear interpolation of x at the warped times (which lie in [0, T-1]).
  left = jnp.clip(jnp.floor(warped), 0, length - 2).astype(jnp.int32)
  frac = (warped - left)[:, None]

  def warp(v):
    return v[left] * (1.0 - frac) + v[left + 1] * frac

  return _util.random_apply(u[0], warp, x, prob)


def channel_mask(
    rng: Array,
    x: Array,
    *,
    groups: Groups = DEFAULT_GROUPS,
    prob: float = 1.0,
) -> Array:
  """Zeroes one channel group of `[T, C]`, chosen uniformly, with `prob`.

  With the default groups it drops the whole accelerometer or the whole
  gyroscope; pass one-channel groups to drop single axes.

  Example:
    >>> channel_mask(rng, x, prob=0.2)
  """
  _check_window(x)
  groups = _check_groups(groups, x.shape[1])
  x = jnp.asarray(x, jnp.float32)
  table = np.zeros((len(groups), x.shape[1]), bool)
  for row, g in enumerate(groups):
    table[row, list(g)] = True
  u = _util.uniforms(rng, 2)
  dropped = jnp.asarray(table)[_util.to_int(u[1], 0, len(groups))]
  return _util.random_apply(
      u[0], lambda v: jnp.where(dropped, 0.0, v), x, prob)
