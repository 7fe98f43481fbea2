"""Per-example audio augmentations: waveform ops and SpecAugment masks.

Waveforms are float32 `[T]` buffers of fixed length (short clips are
zero-padded by the data pipeline). Spectrograms are log-mel `[frames, mels]`
arrays, as produced by the audio encoder's front end, which applies
`spec_augment` after it through a `spec_transform(rng, spec)` callable
(`make_spec_transform` builds one).

References: SpecAugment (Park et al., 2019) for the masks; COLA (Saeed et al.,
2021), which makes positives from random crops of one clip; CLAR (Al-Tahan &
Mohsenzadeh, 2021), which combines time- and frequency-domain augmentations.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from contrastive.augment import _util

Array = jax.Array

SHIFT_MODES = ("circular", "zeros")


def _check_wave(wave: Array) -> None:
  _util.check_example_rank("wave", wave, 1, "[T] samples")


def random_time_shift(
    rng: Array,
    wave: Array,
    *,
    max_shift: int,
    mode: str = "circular",
    prob: float = 1.0,
) -> Array:
  """Shifts `[T]` by an integer ~ U{-max_shift, ..., max_shift} samples.

  `mode="circular"` rolls the buffer, so nothing is lost: for a zero-padded
  clip the padding wraps around and the utterance moves (possibly across the
  buffer's end). `mode="zeros"` fills the vacated samples with zeros and
  drops what is pushed out.

  Example:
    >>> random_time_shift(rng, wave, max_shift=2000, mode="circular")
  """
  _check_wave(wave)
  _util.check_int("max_shift", max_shift, 0, wave.shape[0])
  if mode not in SHIFT_MODES:
    raise ValueError(f"Unknown mode {mode!r}; valid modes are {SHIFT_MODES}.")
  u = _util.uniforms(rng, 2)
  shift = _util.to_int(u[1], -max_shift, max_shift + 1)
  length = wave.shape[0]

  def shifted(w):
    source = jnp.arange(length) - shift
    if mode == "circular":
      return w[jnp.mod(source, length)]
    valid = (source >= 0) & (source < length)
    return jnp.where(valid, w[jnp.clip(source, 0, length - 1)], 0.0)

  return _util.random_apply(u[0], shifted, jnp.asarray(wave, jnp.float32),
                            prob)


def random_crop(rng: Array, wave: Array, *, length: int) -> Array:
  """A random window of `length` consecutive samples of `[T]` (COLA-style).

  The output is `[length]`: the crop length is static, its start is uniform
  over `0 .. T - length`.

  Example:
    >>> random_crop(rng, wave, length=4000)  # half a second at 8 kHz
  """
  _check_wave(wave)
  _util.check_int("length", length, 1, wave.shape[0])
  start = _util.to_int(_util.uniforms(rng, 1)[0], 0,
                       wave.shape[0] - length + 1)
  return jax.lax.dynamic_slice(jnp.asarray(wave, jnp.float32), (start,),
                               (length,))


def random_gain(
    rng: Array,
    wave: Array,
    *,
    gain_db: Sequence[float] = (-6.0, 6.0),
    prob: float = 1.0,
) -> Array:
  """Multiplies `[T]` by `10 ** (g / 20)` with g ~ U(gain_db) decibels.

  Example:
    >>> random_gain(rng, wave, gain_db=(-6.0, 6.0))
  """
  _check_wave(wave)
  lo, hi = _util.check_range("gain_db", gain_db)
  u = _util.uniforms(rng, 2)
  gain = lo + (hi - lo) * u[1]
  return _util.random_apply(
      u[0], lambda w: w * 10.0 ** (gain / 20.0),
      jnp.asarray(wave, jnp.float32), prob,
  )


def add_noise(
    rng: Array,
    wave: Array,
    *,
    snr_db: Sequence[float] = (10.0, 40.0),
    prob: float = 1.0,
) -> Array:
  """Adds white Gaussian noise at a signal-to-noise ratio ~ U(snr_db) dB.

  The signal power is the mean square over the non-zero samples, so that the
  zero padding of a short clip does not lower it: the noise (added to every
  sample, padding included) then has power `P_signal / 10 ** (snr / 10)`.
  An all-zero buffer gets no noise.

  Example:
    >>> add_noise(rng, wave, snr_db=(10.0, 40.0), prob=0.5)
  """
  _check_wave(wave)
  lo, hi = _util.check_range("snr_db", snr_db)
  wave = jnp.asarray(wave, jnp.float32)
  u = _util.uniforms(rng, wave.shape[0] + 2)
  snr = lo + (hi - lo) * u[1]
  active = jnp.maximum(jnp.sum(wave != 0), 1)
  power = jnp.sum(jnp.square(wave)) / active
  std = jnp.sqrt(power / 10.0 ** (snr / 10.0))
  noise = std * _util.to_normal(u[2:])
  return _util.random_apply(u[0], lambda w: w + noise, wave, prob)


def _band_mask(u: Array, size: int, max_width: int, name: str) -> Array:
  """`[size]` bool: the union of `len(u)` random bands of <= max_width.

  `u` is `[num_masks, 2]` uniforms: each row draws a width, then a start.
  """
  num_masks = u.shape[0]
  _util.check_int(f"{name}_max_width", max_width, 0, size)
  index = jnp.arange(size)
  masked = jnp.zeros((size,), bool)
  for i in range(num_masks):
    width = _util.to_int(u[i, 0], 0, max_width + 1)
    start = _util.to_int(u[i, 1], 0, size - width + 1)
    masked = masked | ((index >= start) & (index < start + width))
  return masked


def _per_spectrogram(
    fn: Callable[[Array, Array], Array], rng: Array, spec: Array
) -> Array:
  """Applies `fn(rng, [frames, mels])` to `[..., frames, mels]`.

  Leading (batch) dimensions get independent keys, hence independent masks,
  so the encoder may pass its whole batch of spectrograms at once.
  """
  if jnp.ndim(spec) < 2:
    raise ValueError(
        "spec must be a log-mel array [..., frames, mels] of rank >= 2, got"
        f" shape {jnp.shape(spec)}."
    )
  spec = jnp.asarray(spec, jnp.float32)
  if spec.ndim == 2:
    return fn(rng, spec)
  flat = spec.reshape((-1,) + spec.shape[-2:])
  out = jax.vmap(fn)(jax.random.split(rng, flat.shape[0]), flat)
  return out.reshape(spec.shape)


def _fill(spec: Array, masked: Array) -> Array:
  # SpecAugment fills with zero after mean normalisation; on raw log-mels the
  # equivalent is the spectrogram's own mean, taken before any masking.
  return jnp.where(masked, jnp.mean(spec), spec)


def time_mask(
    rng: Array, spec: Array, *, max_width: int, num_masks: int = 1
) -> Array:
  """SpecAugment time masking of a log-mel `[frames, mels]` array.

  Leading batch dimensions `[..., frames, mels]` are allowed and get
  independent masks (and each spectrogram its own mean).

  Each of `num_masks` masks sets frames `[t0, t0 + t)` to the spectrogram's
  mean, with `t ~ U{0, ..., max_width}` and `t0 ~ U{0, ..., frames - t}`
  (Park et al., 2019). Masks may overlap.

  Example:
    >>> time_mask(rng, spec, max_width=10, num_masks=2)
  """
  _util.check_int("time_masks", num_masks, 0)

  def one(key, s):
    u = _util.uniforms(key, 2 * num_masks).reshape(num_masks, 2)
    return _fill(s, _band_mask(u, s.shape[0], max_width, "time")[:, None])

  return _per_spectrogram(one, rng, spec)


def freq_mask(
    rng: Array, spec: Array, *, max_width: int, num_masks: int = 1
) -> Array:
  """SpecAugment frequency masking of a log-mel `[frames, mels]` array.

  Leading batch dimensions are handled as in `time_mask`.

  Each of `num_masks` masks sets mel bins `[f0, f0 + f)` to the spectrogram's
  mean, with `f ~ U{0, ..., max_width}` and `f0 ~ U{0, ..., mels - f}`.

  Example:
    >>> freq_mask(rng, spec, max_width=8, num_masks=2)
  """
  _util.check_int("freq_masks", num_masks, 0)

  def one(key, s):
    u = _util.uniforms(key, 2 * num_masks).reshape(num_masks, 2)
    return _fill(s, _band_mask(u, s.shape[1], max_width, "freq")[None, :])

  return _per_spectrogram(one, rng, spec)


def spec_augment(
    rng: Array,
    spec: Array,
    *,
    time_max_width: int,
    time_masks: int,
    freq_max_width: int,
    freq_masks: int,
) -> Array:
  """Frequency and time masks of `[..., frames, mels]`, filled with the mean.

  The fill is the mean of the unmasked input, for both kinds of mask.
  Leading batch dimensions are handled as in `time_mask`.

  Time warping, the third SpecAugment op, is left out: Park et al. found it
  the least useful and the most expensive.

  Example:
    >>> spec_augment(rng, spec, time_max_width=10, time_masks=2,
    ...              freq_max_width=8, freq_masks=2)
  """
  _util.check_int("time_masks", time_masks, 0)
  _util.check_int("freq_masks", freq_masks, 0)

  def one(key, s):
    u = _util.uniforms(key, 2 * (freq_masks + time_masks))
    u = u.reshape(freq_masks + time_masks, 2)
    bins = _band_mask(u[:freq_masks], s.shape[1], freq_max_width, "freq")
    frames = _band_mask(u[freq_masks:], s.shape[0], time_max_width, "time")
    return _fill(s, frames[:, None] | bins[None, :])

  return _per_spectrogram(one, rng, spec)


def make_spec_transform(
    *,
    time_max_width: int,
    time_masks: int,
    freq_max_width: int,
    freq_masks: int,
) -> Callable[[Array, Array], Array]:
  """`spec_transform(rng, spec)` for the audio encoder, with fixed params.

  Example:
    >>> t = make_spec_transform(time_max_width=10, time_masks=2,
    ...                         freq_max_width=8, freq_masks=2)
    >>> t(rng, spec).shape == spec.shape
  """
  for name, value in (("time_max_width", time_max_width),
                      ("time_masks", time_masks),
                      ("freq_max_width", freq_max_width),
                      ("freq_masks", freq_masks)):
    _util.check_int(name, value, 0)
  return functools.partial(
      spec_augment, time_max_width=time_max_width, time_masks=time_masks,
      freq_max_width=freq_max_width, freq_masks=freq_masks,
  )
