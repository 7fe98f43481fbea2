"""Simple features of the raw input: the baselines a learned encoder must beat.

A self-supervised representation is worth its training only if a kNN or a
linear probe does better on it than on the input itself, or on a few
hand-made statistics of the input. This module computes those input
representations, by name, for each modality; they are then scored by the
same kNN and linear probe as a trained encoder's features
(`contrastive.evaluate.protocol`).

Names (`INPUT_FEATURES`, by modality):

* image

  - `pixels`: the image flattened, in [0, 1] (uint8 / 255).

* sensor (`[T, C]` windows)

  - `windows`: each channel standardised with the training split's mean and
    standard deviation over every sample, then flattened (`T * C` numbers).
  - `summary_stats`: per channel, the mean, standard deviation, minimum,
    maximum and the 10th, 25th, 50th, 75th and 90th percentiles over the
    window (`9 * C` numbers: 54 for UCI HAPT's six channels), each
    standardised with the training split's mean and standard deviation.

* audio (`[T]` waveforms)

  - `logmel`: the log-mel spectrogram of the clip (the audio encoder's front
    end, `contrastive.models.audio_frontend`, with its defaults unless
    `frontend` says otherwise: 64 mels every 10 ms), flattened and
    standardised per entry.
  - `mfcc_stats`: 20 MFCCs per frame (the orthonormal DCT-II of the
    log-mels), their mean and standard deviation over the frames that lie
    inside the recording (`length`, when the dataset gives it: FSDD's clips
    are zero-padded), standardised per entry (40 numbers).

Every feature is computed in JAX, in batches, from the examples' `x` (and
`length` for audio); standardisation statistics always come from the
training split and are applied unchanged to the test split.

Example:
  train_f, test_f = input_features("summary_stats", train_ds, test_ds)
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from contrastive.models import audio_frontend

Array = jax.Array

# Percentiles of `summary_stats`.
PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0)
# MFCCs per frame in `mfcc_stats`.
NUM_MFCC = 20
# Entries whose training standard deviation is below this are only centred.
_STD_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class _Spec:
  """How one input representation is made.

  Attributes:
    modality: the modality of the data it applies to.
    fn: `(x [b, ...], length [b] or None, frontend kwargs) -> [b, ...]` raw
      features of a batch (JAX).
    standardize: 'none', 'channel' (the last axis of `fn`'s output, over
      every other axis of the training split, before flattening) or
      'feature' (every entry of the flattened output).
  """

  modality: str
  fn: Callable[..., Array]
  standardize: str


def _pixels(x, length, frontend):
  del length, frontend
  return jnp.asarray(x, jnp.float32) / (255.0 if x.dtype == jnp.uint8 else 1.0)


def _windows(x, length, frontend):
  del length, frontend
  return jnp.asarray(x, jnp.float32)


def _summary_stats(x, length, frontend):
  del length, frontend
  x = jnp.asarray(x, jnp.float32)                       # [b, T, C]
  quantiles = jnp.percentile(x, jnp.asarray(PERCENTILES), axis=1)  # [q, b, C]
  parts = [x.mean(1), x.std(1), x.min(1), x.max(1), *quantiles]
  return jnp.concatenate(parts, axis=-1)                # [b, 9 C]


def _logmel(x, length, frontend):
  del length
  return audio_frontend.log_mel_spectrogram(x, **frontend)


def _frame_mask(num_frames: int, length: Array | None,
                frontend: Mapping[str, Any]) -> Array:
  """`[b, frames]` 1.0 for frames wholly inside each clip's `length`."""
  if length is None:
    return jnp.ones((1, num_frames), jnp.float32)
  sig = inspect.signature(audio_frontend.log_mel_spectrogram).parameters
  frame_length = frontend.get("frame_length", sig["frame_length"].default)
  frame_step = frontend.get("frame_step", sig["frame_step"].default)
  ends = jnp.arange(num_frames) * frame_step + frame_length
  # A clip shorter than one frame keeps its first frame, so that its
  # statistics exist (they then include some padding).
  inside = ends[None, :] <= jnp.maximum(length[:, None], frame_length)
  return inside.astype(jnp.float32)


def _mfcc_stats(x, length, frontend):
  logmel = audio_frontend.log_mel_spectrogram(x, **frontend)  # [b, f, m]
  num_mels = logmel.shape[-1]
  # Orthonormal DCT-II along the mel axis, as a matrix (no SciPy in jit).
  n = np.arange(num_mels)
  k = np.arange(NUM_MFCC)[:, None]
  dct = np.sqrt(2.0 / num_mels) * np.cos(np.pi * k * (2 * n + 1)
                                         / (2 * num_mels))
  dct[0] /= np.sqrt(2.0)
  mfcc = logmel @ jnp.asarray(dct.T, logmel.dtype)             # [b, f, 20]
  mask = _frame_mask(mfcc.shape[1], length, frontend)[..., None]
  mask = jnp.broadcast_to(mask, mfcc.shape[:2] + (1,))
  count = jnp.sum(mask, axis=1)
  mean = jnp.sum(mfcc * mask, axis=1) / count
  var = jnp.sum((mfcc - mean[:, None]) ** 2 * mask, axis=1) / count
  return jnp.concatenate([mean, jnp.sqrt(var)], axis=-1)       # [b, 40]


INPUT_FEATURES: Mapping[str, _Spec] = {
    "pixels": _Spec("image", _pixels, "none"),
    "windows": _Spec("sensor", _windows, "channel"),
    "summary_stats": _Spec("sensor", _summary_stats, "feature"),
    "logmel": _Spec("audio", _logmel, "feature"),
    "mfcc_stats": _Spec("audio", _mfcc_stats, "feature"),
}


def names_for(modality: str) -> tuple[str, ...]:
  """The input representations defined for `modality`, in table order."""
  return tuple(n for n, s in INPUT_FEATURES.items() if s.modality == modality)


@functools.partial(jax.jit, static_argnames=("name", "frontend_items"))
def _raw_batch(x, length, *, name: str, frontend_items: tuple) -> Array:
  return INPUT_FEATURES[name].fn(x, length, dict(frontend_items))


def raw_features(name: str, dataset, *, frontend: Mapping[str, Any] | None = None,
                 batch_size: int = 1024) -> np.ndarray:
  """Input representation `name` of every example of `dataset`, before
  standardisation: `[N, ...]` float32 (not flattened)."""
  _spec(name, dataset.info.modality)
  items = tuple(sorted(dict(frontend or {}).items()))
  parts = []
  for start in range(0, len(dataset), batch_size):
    batch = dataset.get_batch(np.arange(start, min(start + batch_size,
                                                   len(dataset))))
    length = batch.get("length")
    length = None if length is None else jnp.asarray(length, jnp.int32)
    parts.append(np.asarray(_raw_batch(jnp.asarray(batch["x"]), length,
                                       name=name, frontend_items=items)))
  return np.concatenate(parts)


def _spec(name: str, modality: str) -> _Spec:
  if name not in INPUT_FEATURES:
    raise ValueError(
        f"Unknown input representation {name!r}; valid names:"
        f" {', '.join(INPUT_FEATURES)}.")
  spec = INPUT_FEATURES[name]
  if spec.modality != modality:
    raise ValueError(
        f"input representation {name!r} applies to {spec.modality} data, not"
        f" {modality}; for {modality} use one of:"
        f" {', '.join(names_for(modality)) or '(none)'}.")
  return spec


def _standardize(train: np.ndarray, test: np.ndarray, axes: tuple[int, ...]
                 ) -> tuple[np.ndarray, np.ndarray]:
  mean = train.mean(axis=axes, keepdims=True, dtype=np.float64)
  std = train.std(axis=axes, keepdims=True, dtype=np.float64)
  std = np.where(std < _STD_FLOOR, 1.0, std)
  return (((train - mean) / std).astype(np.float32),
          ((test - mean) / std).astype(np.float32))


def input_features(name: str, train, test, *,
                   frontend: Mapping[str, Any] | None = None,
                   batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """`[N_train, F]` and `[N_test, F]` features of input representation `name`.

  Args:
    name: a key of `INPUT_FEATURES` for the datasets' modality.
    train: the training split (a `contrastive.data` dataset); its statistics
      standardise both splits.
    test: the test split.
    frontend: log-mel front-end arguments for the audio representations
      (`audio_frontend.log_mel_spectrogram`'s); its defaults otherwise.
    batch_size: examples per compiled batch.

  Returns:
    Train and test features, float32, flattened to rank 2.

  Raises:
    ValueError: an unknown name, or one for another modality (the message
      lists the names for this one).

  Example:
    >>> train_f, test_f = input_features("pixels", train_ds, test_ds)
    >>> train_f.shape
    (60000, 784)
  """
  spec = _spec(name, train.info.modality)
  _spec(name, test.info.modality)
  a = raw_features(name, train, frontend=frontend, batch_size=batch_size)
  b = raw_features(name, test, frontend=frontend, batch_size=batch_size)
  if spec.standardize == "channel":
    a, b = _standardize(a, b, tuple(range(a.ndim - 1)))
  a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
  if spec.standardize == "feature":
    a, b = _standardize(a, b, (0,))
  return a, b
