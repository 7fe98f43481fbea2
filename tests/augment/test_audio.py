"""Tests of contrastive.augment.audio: waveform ops and SpecAugment masks."""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from contrastive.augment import audio

KEY = jax.random.PRNGKey(0)


def _run(fn, *args, **params):
  return jax.jit(functools.partial(fn, **params))(*args)


def _batched(fn, x, n, seed=1, **params):
  keys = jax.random.split(jax.random.PRNGKey(seed), n)
  return np.asarray(jax.jit(jax.vmap(
      lambda k: fn(k, x, **params)))(keys))


def _wave(length=64, seed=0):
  return np.random.default_rng(seed).normal(size=length).astype(np.float32)


@pytest.mark.parametrize("mode", ["circular", "zeros"])
def test_time_shift_is_a_shift_within_range(mode):
  x = _wave()
  outs = _batched(audio.random_time_shift, x, 20, max_shift=5, mode=mode)
  seen = set()
  for out in outs:
    matches = []
    for s in range(-5, 6):
      ref = np.roll(x, s)
      if mode == "zeros" and s > 0:
        ref[:s] = 0
      elif mode == "zeros" and s < 0:
        ref[s:] = 0
      if np.array_equal(out, ref):
        matches.append(s)
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) > 3
  np.testing.assert_array_equal(
      _run(audio.random_time_shift, KEY, x, max_shift=0), x)


def test_time_shift_errors():
  with pytest.raises(ValueError, match="max_shift"):
    _run(audio.random_time_shift, KEY, _wave(), max_shift=65)
  with pytest.raises(ValueError, match="valid modes"):
    _run(audio.random_time_shift, KEY, _wave(), max_shift=3, mode="reflect")
  with pytest.raises(ValueError, match="rank 1"):
    _run(audio.random_time_shift, KEY, _wave()[None], max_shift=3)


def test_random_crop_is_a_window():
  x = _wave()
  for out in _batched(audio.random_crop, x, 8, length=20):
    starts = [s for s in range(45) if np.array_equal(out, x[s:s + 20])]
    assert len(starts) == 1
  with pytest.raises(ValueError, match="length"):
    _run(audio.random_crop, KEY, x, length=65)


def test_random_gain_scales_by_decibels_in_range():
  x = _wave()
  outs = _batched(audio.random_gain, x, 16, gain_db=(-6.0, 6.0))
  gains = outs / x
  np.testing.assert_allclose(gains, gains[:, :1] * np.ones_like(gains),
                             rtol=1e-5)
  db = 20 * np.log10(gains[:, 0])
  assert np.all((db >= -6 - 1e-4) & (db <= 6 + 1e-4)) and np.ptp(db) > 1
  with pytest.raises(ValueError, match="gain_db"):
    _run(audio.random_gain, KEY, x, gain_db=(6.0, -6.0))


def test_noise_matches_requested_snr():
  x = _wave(8000)
  out = np.asarray(_run(audio.add_noise, KEY, x, snr_db=(10.0, 10.0)))
  noise = out - x
  snr = 10 * np.log10(np.mean(x**2) / np.mean(noise**2))
  assert abs(snr - 10.0) < 0.2
  quiet = np.asarray(_run(audio.add_noise, KEY, x, snr_db=(60.0, 60.0)))
  assert np.linalg.norm(quiet - x) / np.linalg.norm(x) < 2e-3


def test_noise_power_ignores_zero_padding_and_silence_stays_finite():
  x = np.concatenate([_wave(4000), np.zeros(4000, np.float32)])
  noise = np.asarray(_run(audio.add_noise, KEY, x, snr_db=(20.0, 20.0))) - x
  expected = np.mean(x[:4000] ** 2) / 100.0
  np.testing.assert_allclose(np.mean(noise**2), expected, rtol=0.1)
  silent = _run(audio.add_noise, KEY, np.zeros(100, np.float32))
  np.testing.assert_array_equal(silent, np.zeros(100))


def _spec(frames=20, mels=12, seed=0):
  return np.random.default_rng(seed).normal(size=(frames, mels)).astype(
      np.float32)


def _bands(changed):
  """Lengths of the runs of True in a 1-D bool array."""
  padded = np.concatenate([[0], changed.astype(int), [0]])
  starts = np.flatnonzero(np.diff(padded) == 1)
  ends = np.flatnonzero(np.diff(padded) == -1)
  return ends - starts


@pytest.mark.parametrize("axis", [0, 1])
def test_single_mask_sets_one_band_to_the_mean(axis):
  spec = _spec()
  fn = audio.time_mask if axis == 0 else audio.freq_mask
  widths = []
  for out in _batched(fn, spec, 40, max_width=5):
    changed = out != spec
    other = 1 - axis
    rows = changed.any(axis=other)
    # Whole frames (or whole mel bins) are masked, with the input's mean.
    np.testing.assert_array_equal(changed.all(axis=other), rows)
    np.testing.assert_allclose(out[changed], spec.mean(), atol=1e-6)
    bands = _bands(rows)
    assert len(bands) <= 1 and all(b <= 5 for b in bands)
    widths.append(bands.sum())
  assert max(widths) >= 3


def test_multiple_masks_and_spec_augment_use_the_original_mean():
  spec = _spec()
  outs = _batched(audio.spec_augment, spec, 20, time_max_width=4,
                  time_masks=2, freq_max_width=3, freq_masks=2)
  for out in outs:
    changed = out != spec
    np.testing.assert_allclose(out[changed], spec.mean(), atol=1e-6)
    assert _bands(changed.all(axis=1)).sum() <= 8
    assert _bands(changed.all(axis=0)).sum() <= 6
  assert any((o != spec).any() for o in outs)
  assert not np.allclose(outs[0], outs[1])


def test_batched_spectrograms_get_independent_masks():
  specs = np.stack([_spec(seed=s) for s in range(4)])
  out = np.asarray(_run(audio.time_mask, KEY, specs, max_width=10))
  assert out.shape == specs.shape
  rows = [(o != s).any(axis=1) for o, s in zip(out, specs)]
  assert len({r.tobytes() for r in rows}) > 1
  for o, s in zip(out, specs):  # each example's own mean
    np.testing.assert_allclose(o[o != s], s.mean(), atol=1e-6)


def test_make_spec_transform_and_mask_errors():
  spec = _spec()
  transform = audio.make_spec_transform(
      time_max_width=4, time_masks=1, freq_max_width=3, freq_masks=1)
  np.testing.assert_array_equal(
      jax.jit(transform)(KEY, spec),
      _run(audio.spec_augment, KEY, spec, time_max_width=4, time_masks=1,
           freq_max_width=3, freq_masks=1))
  np.testing.assert_array_equal(
      _run(audio.time_mask, KEY, spec, max_width=5, num_masks=0), spec)
  with pytest.raises(ValueError, match="time_max_width"):
    _run(audio.time_mask, KEY, spec, max_width=21)
  with pytest.raises(ValueError, match="freq_max_width"):
    _run(audio.freq_mask, KEY, spec, max_width=-1)
  with pytest.raises(ValueError, match="rank >= 2"):
    _run(audio.freq_mask, KEY, spec[0], max_width=2)
  with pytest.raises(ValueError, match="freq_masks"):
    audio.make_spec_transform(time_max_width=4, time_masks=1,
                              freq_max_width=3, freq_masks=-1)
