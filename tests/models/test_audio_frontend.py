"""Tests of the log-mel front end against a loop-based NumPy implementation."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrastive.models import audio_frontend

SR = 8000


def _mel(f):
  # 1127 * ln(1 + f/700) is the same HTK scale as 2595 * log10(1 + f/700).
  return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)


def _mel_to_hz(m):
  return 700.0 * (np.exp(np.asarray(m) / 1127.0) - 1.0)


def _np_filterbank(num_mels, fft_length, sr, lo, hi):
  """Triangles linear in mel, peak 1, written with explicit loops."""
  num_bins = fft_length // 2 + 1
  step = (_mel(hi) - _mel(lo)) / (num_mels + 1)
  weights = np.zeros((num_bins, num_mels))
  for m in range(num_mels):
    left = _mel(lo) + m * step
    center, right = left + step, left + 2 * step
    for k in range(num_bins):
      mk = _mel(k * sr / fft_length)
      if left < mk <= center:
        weights[k, m] = (mk - left) / (center - left)
      elif center < mk < right:
        weights[k, m] = (right - mk) / (right - center)
  return weights


def _np_log_mel(wave, frame_length, frame_step, fft_length, num_mels, lo, hi,
                offset):
  n = 1 + (len(wave) - frame_length) // frame_step
  # Periodic Hann written as sin^2, equal to 0.5 - 0.5 cos(2 pi n / N).
  window = np.sin(np.pi * np.arange(frame_length) / frame_length) ** 2
  weights = _np_filterbank(num_mels, fft_length, SR, lo, hi)
  out = np.zeros((n, num_mels))
  for i in range(n):
    frame = wave[i * frame_step: i * frame_step + frame_length] * window
    power = np.abs(np.fft.rfft(frame, n=fft_length)) ** 2
    out[i] = np.log(power @ weights + offset)
  return out


def _sine(freq, num_samples=2000, amplitude=0.5):
  return amplitude * np.sin(2 * np.pi * freq * np.arange(num_samples) / SR)


def test_filterbank_matches_numpy():
  got = audio_frontend.mel_filterbank(
      num_mel_bins=40, fft_length=512, sample_rate=SR,
      lower_edge_hertz=20.0, upper_edge_hertz=3800.0,
  )
  np.testing.assert_allclose(got, _np_filterbank(40, 512, SR, 20.0, 3800.0),
                             atol=1e-6)


@pytest.mark.parametrize("fft_length", [256, 512])
def test_log_mel_matches_numpy(fft_length):
  rng = np.random.default_rng(0)
  wave = _sine(440.0) + 0.1 * rng.standard_normal(2000)
  got = audio_frontend.log_mel_spectrogram(
      jnp.asarray(wave, jnp.float32), sample_rate=SR, frame_length=200,
      frame_step=80, fft_length=fft_length, num_mel_bins=32,
      lower_edge_hertz=50.0, upper_edge_hertz=4000.0, log_offset=1e-6,
  )
  want = _np_log_mel(wave, 200, 80, fft_length, 32, 50.0, 4000.0, 1e-6)
  assert got.shape == want.shape == (1 + (2000 - 200) // 80, 32)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_float64_waveform_computes_in_float64():
  """In 64-bit mode a float64 waveform stays float64 (for exact reference
  runs); the filterbank's float32 rounding is the only float32 left, so the
  result is closer to the NumPy float64 loop than the float32 path is."""
  rng = np.random.default_rng(1)
  wave = _sine(440.0) + 0.1 * rng.standard_normal(2000)
  kwargs = dict(sample_rate=SR, frame_length=200, frame_step=80,
                fft_length=256, num_mel_bins=32, lower_edge_hertz=50.0,
                upper_edge_hertz=4000.0, log_offset=1e-6)
  want = _np_log_mel(wave, 200, 80, 256, 32, 50.0, 4000.0, 1e-6)
  with jax.enable_x64(True):
    got64 = audio_frontend.log_mel_spectrogram(
        jnp.asarray(wave, jnp.float64), **kwargs)
    assert got64.dtype == jnp.float64
  got32 = audio_frontend.log_mel_spectrogram(
      jnp.asarray(wave, jnp.float32), **kwargs)
  err64 = np.max(np.abs(np.asarray(got64) - want))
  err32 = np.max(np.abs(np.asarray(got32, np.float64) - want))
  assert err64 < 1e-4 and err64 < err32 / 10


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_peak_mel_bin_is_at_the_sine_frequency(freq):
  num_mels, lo, hi = 64, 20.0, SR / 2
  spec = audio_frontend.log_mel_spectrogram(
      _sine(freq), sample_rate=SR, num_mel_bins=num_mels,
      lower_edge_hertz=lo, upper_edge_hertz=hi,
  )
  peak = np.argmax(np.asarray(spec), axis=-1)
  centers = _mel_to_hz(
      np.linspace(_mel(lo), _mel(hi), num_mels + 2)[1:-1]
  )
  nearest = np.argmin(np.abs(centers - freq))
  np.testing.assert_array_equal(peak, nearest)
  spacing = centers[nearest + 1] - centers[nearest]
  assert abs(centers[peak[0]] - freq) < spacing


def test_silence_gives_log_offset():
  spec = audio_frontend.log_mel_spectrogram(jnp.zeros(400), log_offset=1e-3)
  np.testing.assert_allclose(spec, math.log(1e-3), rtol=1e-6)


def test_batch_dims_jit_and_vmap_agree():
  rng = np.random.default_rng(1)
  waves = jnp.asarray(rng.standard_normal((2, 3, 720)), jnp.float32)
  fn = functools.partial(audio_frontend.log_mel_spectrogram, num_mel_bins=16,
                         fft_length=None)
  batched = fn(waves)
  assert batched.shape == (2, 3, 7, 16)
  np.testing.assert_allclose(jax.jit(fn)(waves), batched, rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(jax.vmap(jax.vmap(fn))(waves), batched,
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(fn(waves[1, 2]), batched[1, 2], rtol=1e-5,
                             atol=1e-5)


def test_fft_length_none_is_next_power_of_two():
  assert audio_frontend.resolve_fft_length(200, None) == 256
  assert audio_frontend.resolve_fft_length(256, None) == 256
  assert audio_frontend.num_frames(8000, 200, 80) == 98


def test_bad_arguments_raise():
  f = audio_frontend.log_mel_spectrogram
  with pytest.raises(ValueError, match="fewer than one frame"):
    f(jnp.zeros(100))
  with pytest.raises(ValueError, match="fft_length"):
    f(jnp.zeros(400), fft_length=128)
  with pytest.raises(ValueError, match="upper_edge_hertz"):
    f(jnp.zeros(400), upper_edge_hertz=5000.0)
  with pytest.raises(ValueError, match="lower_edge_hertz"):
    f(jnp.zeros(400), lower_edge_hertz=4000.0)
  with pytest.raises(ValueError, match="log_offset"):
    f(jnp.zeros(400), log_offset=0.0)
  with pytest.raises(ValueError, match="frame_step"):
    f(jnp.zeros(400), frame_step=0)
  with pytest.raises(ValueError, match="rank"):
    f(jnp.zeros(()))
  with pytest.raises(ValueError, match="contain no FFT bin"):
    f(jnp.zeros(400), fft_length=256, num_mel_bins=128)
