"""Log-mel spectrogram front end in pure JAX.

waveform -> frames (no padding) -> periodic Hann window -> `rfft` -> power
spectrum `|X|^2` -> HTK mel filterbank -> `log(x + log_offset)`.

The mel scale is HTK's, `mel(f) = 2595 * log10(1 + f / 700)`. The filterbank
has `num_mel_bins` triangular filters whose edges are equally spaced in mel
between `lower_edge_hertz` and `upper_edge_hertz`; each triangle is linear in
mel (as `tf.signal.linear_to_mel_weight_matrix`), peaks at 1 and is not
area-normalised (unlike librosa's Slaney normalisation).
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
  """HTK mel scale: `2595 * log10(1 + f / 700)`."""
  return 2595.0 * np.log10(1.0 + np.asarray(hertz, np.float64) / 700.0)


def _check_frontend_args(
    num_mel_bins: int,
    fft_length: int,
    sample_rate: int,
    lower_edge_hertz: float,
    upper_edge_hertz: float,
) -> None:
  if num_mel_bins <= 0:
    raise ValueError(f"num_mel_bins must be > 0, got {num_mel_bins}.")
  if sample_rate <= 0:
    raise ValueError(f"sample_rate must be > 0, got {sample_rate}.")
  nyquist = sample_rate / 2
  if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= nyquist:
    raise ValueError(
        "need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2 ="
        f" {nyquist}, got lower_edge_hertz={lower_edge_hertz},"
        f" upper_edge_hertz={upper_edge_hertz}."
    )
  if fft_length <= 0:
    raise ValueError(f"fft_length must be > 0, got {fft_length}.")


@functools.lru_cache(maxsize=32)
def _mel_filterbank(
    num_mel_bins: int,
    fft_length: int,
    sample_rate: int,
    lower_edge_hertz: float,
    upper_edge_hertz: float,
) -> np.ndarray:
  num_bins = fft_length // 2 + 1
  bin_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2, num_bins))
  edges = np.linspace(
      hertz_to_mel(lower_edge_hertz),
      hertz_to_mel(upper_edge_hertz),
      num_mel_bins + 2,
  )
  left, center, right = edges[:-2], edges[1:-1], edges[2:]
  rising = (bin_mel[:, None] - left) / (center - left)
  falling = (right - bin_mel[:, None]) / (right - center)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  empty = np.flatnonzero(weights.max(axis=0) == 0.0)
  if empty.size:
    raise ValueError(
        f"mel filters {empty.tolist()} contain no FFT bin: with fft_length"
        f" {fft_length} at {sample_rate} Hz the bins are"
        f" {sample_rate / fft_length:.2f} Hz apart, too coarse for"
        f" {num_mel_bins} mel bins from {lower_edge_hertz} Hz; raise"
        " fft_length or lower_edge_hertz, or lower num_mel_bins."
    )
  return weights.astype(np.float32)


def mel_filterbank(
    *,
    num_mel_bins: int,
    fft_length: int,
    sample_rate: int,
    lower_edge_hertz: float = 20.0,
    upper_edge_hertz: Optional[float] = None,
) -> np.ndarray:
  """The `[fft_length // 2 + 1, num_mel_bins]` HTK mel weight matrix.

  Args:
    num_mel_bins: number of triangular filters.
    fft_length: FFT size; its `fft_length // 2 + 1` bins span 0..nyquist.
    sample_rate: in Hz.
    lower_edge_hertz: left edge of the lowest filter.
    upper_edge_hertz: right edge of the highest; None means `sample_rate/2`.

  Returns:
    A float32 NumPy array; `power_spectrum @ weights` gives mel energies.
    Raises ValueError if a filter covers no FFT bin (it would be all zeros).

  Example:
    >>> w = mel_filterbank(num_mel_bins=64, fft_length=512, sample_rate=8000)
    >>> w.shape
    (257, 64)
  """
  upper = sample_rate / 2 if upper_edge_hertz is None else upper_edge_hertz
  _check_frontend_args(
      num_mel_bins, fft_length, sample_rate, lower_edge_hertz, upper
  )
  return _mel_filterbank(
      int(num_mel_bins), int(fft_length), int(sample_rate),
      float(lower_edge_hertz), float(upper),
  )


def resolve_fft_length(frame_length: int, fft_length: Optional[int]) -> int:
  """`fft_length`, or the next power of two >= `frame_length` when None."""
  if fft_length is None:
    return 1 << (int(frame_length) - 1).bit_length()
  if fft_length < frame_length:
    raise ValueError(
        f"fft_length ({fft_length}) must be >= frame_length ({frame_length})."
    )
  return int(fft_length)


def num_frames(num_samples: int, frame_length: int, frame_step: int) -> int:
  """Frames of `frame_length` every `frame_step` samples, without padding."""
  return 1 + (num_samples - frame_length) // frame_step


def log_mel_spectrogram(
    waveform: Array,
    *,
    sample_rate: int = 8000,
    frame_length: int = 200,
    frame_step: int = 80,
    fft_length: Optional[int] = 512,
    num_mel_bins: int = 64,
    lower_edge_hertz: float = 20.0,
    upper_edge_hertz: Optional[float] = None,
    log_offset: float = 1e-6,
) -> Array:
  """Log-mel spectrogram of `waveform [..., T]` as `[..., frames, mels]`.

  Frames start every `frame_step` samples and only whole frames are kept, so
  `frames = 1 + (T - frame_length) // frame_step`. The defaults are 25 ms
  windows every 10 ms at FSDD's 8 kHz, a 512-point FFT (15.6 Hz bins, so even
  the narrowest of the 64 filters from 20 Hz, about 40 Hz wide, spans two
  or more bins).

  Args:
    waveform: `[..., T]` float samples (any scale; int arrays are cast).
    sample_rate: in Hz.
    frame_length: samples per frame (window length).
    frame_step: hop between frame starts, in samples.
    fft_length: FFT size (frames are zero-padded to it); must be
      `>= frame_length`; None means the next power of two.
    num_mel_bins: number of mel filters.
    lower_edge_hertz: lowest filter edge.
    upper_edge_hertz: highest filter edge; None means `sample_rate / 2`.
    log_offset: added before the log so silence gives `log(log_offset)`
      rather than -inf.

  Returns:
    `[..., frames, num_mel_bins]` in float32 (float64 for a float64
    waveform in 64-bit mode, for numerical checks).

  Example:
    >>> wave = jnp.sin(2 * jnp.pi * 440 * jnp.arange(8000) / 8000)
    >>> log_mel_spectrogram(wave).shape
    (98, 64)
  """
  waveform = jnp.asarray(waveform)
  if waveform.ndim < 1:
    raise ValueError("waveform must have rank >= 1 ([..., samples]), got a"
                     " scalar.")
  if frame_length <= 0 or frame_step <= 0:
    raise ValueError(
        f"frame_length and frame_step must be > 0, got {frame_length} and"
        f" {frame_step}."
    )
  fft_length = resolve_fft_length(frame_length, fft_length)
  if log_offset <= 0:
    raise ValueError(f"log_offset must be > 0, got {log_offset}.")
  num_samples = waveform.shape[-1]
  if num_samples < frame_length:
    raise ValueError(
        f"waveform has {num_samples} samples, fewer than one frame"
        f" ({frame_length}); pad or crop clips to a fixed length first."
    )
  weights = mel_filterbank(
      num_mel_bins=num_mel_bins,
      fft_length=fft_length,
      sample_rate=sample_rate,
      lower_edge_hertz=lower_edge_hertz,
      upper_edge_hertz=upper_edge_hertz,
  )
  n = num_frames(num_samples, frame_length, frame_step)
  index = (
      np.arange(n)[:, None] * frame_step + np.arange(frame_length)[None, :]
  )
  dtype = jnp.promote_types(waveform.dtype, jnp.float32)
  frames = waveform.astype(dtype)[..., index]  # [..., n, frame_length]
  # Periodic Hann: its shifted copies at hops dividing N sum to a constant.
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length)
                              / frame_length)
  spectrum = jnp.fft.rfft(frames * window.astype(dtype), n=fft_length)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  mel = jnp.einsum("...fk,km->...fm", power, weights.astype(dtype))
  return jnp.log(mel + log_offset)
