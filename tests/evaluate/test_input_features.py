"""Input representations against NumPy written from their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft

from contrastive.data import base
from contrastive.evaluate import input_features as inp
from contrastive.evaluate import protocol
from contrastive.models import audio_frontend


def _dataset(x, modality, split, length=None):
  n = len(x)
  arrays = {"x": x, "label": (np.arange(n) % 3).astype(np.int32)}
  metadata = ()
  if length is not None:
    arrays["length"] = length.astype(np.int32)
    metadata = ("length",)
  info = base.DatasetInfo(
      name="toy", split=split, modality=modality, num_classes=3,
      class_names=("a", "b", "c"), input_shape=x.shape[1:],
      input_dtype=str(x.dtype), metadata_names=metadata)
  return base.ArrayDataset(arrays, info)


def _standardize(train, test):
  mean, std = train.mean(0), train.std(0)
  std = np.where(std < 1e-6, 1.0, std)
  return (train - mean) / std, (test - mean) / std


def test_pixels_are_the_flattened_image_in_unit_range():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (7, 5, 4, 1), dtype=np.uint8)
  b = rng.integers(0, 256, (3, 5, 4, 1), dtype=np.uint8)
  train, test = inp.input_features(
      "pixels", _dataset(a, "image", "train"), _dataset(b, "image", "test"),
      batch_size=4)   # several batches, the last one partial
  np.testing.assert_allclose(train, a.reshape(7, -1) / 255.0, rtol=1e-6)
  np.testing.assert_allclose(test, b.reshape(3, -1) / 255.0, rtol=1e-6)


def test_windows_are_standardised_per_channel_with_training_statistics():
  rng = np.random.default_rng(1)
  scale = np.array([1.0, 5.0, 0.1])
  a = (rng.normal(2.0, 1.0, (9, 16, 3)) * scale).astype(np.float32)
  b = (rng.normal(0.0, 1.0, (4, 16, 3)) * scale).astype(np.float32)
  train, test = inp.input_features(
      "windows", _dataset(a, "sensor", "train"), _dataset(b, "sensor", "test"))
  mean = a.reshape(-1, 3).mean(0)
  std = a.reshape(-1, 3).std(0)
  np.testing.assert_allclose(train, ((a - mean) / std).reshape(9, -1),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(test, ((b - mean) / std).reshape(4, -1),
                             rtol=1e-4, atol=1e-5)
  # Test statistics are not used: the test windows are not zero-mean.
  assert abs(test.mean()) > 0.5


def test_summary_stats_match_numpy():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(11, 32, 6)).astype(np.float32) ** 3
  b = rng.normal(size=(5, 32, 6)).astype(np.float32)

  def stats(x):
    q = np.percentile(x, [10, 25, 50, 75, 90], axis=1)
    return np.concatenate([x.mean(1), x.std(1), x.min(1), x.max(1), *q], 1)

  train, test = inp.input_features(
      "summary_stats", _dataset(a, "sensor", "train"),
      _dataset(b, "sensor", "test"))
  assert train.shape == (11, 54)
  want_train, want_test = _standardize(stats(a), stats(b))
  np.testing.assert_allclose(train, want_train, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(test, want_test, rtol=1e-4, atol=1e-4)


def _audio(seed, n, samples=2000):
  rng = np.random.default_rng(seed)
  t = np.arange(samples) / 8000
  freq = rng.uniform(200, 1500, (n, 1))
  x = (np.sin(2 * np.pi * freq * t) * rng.uniform(0.1, 1, (n, 1))
       + 0.01 * rng.normal(size=(n, samples))).astype(np.float32)
  length = rng.integers(400, samples + 1, n)
  x[np.arange(samples)[None, :] >= length[:, None]] = 0.0
  return x, length


def test_logmel_is_the_front_end_flattened_and_standardised():
  (a, la), (b, lb) = _audio(3, 6), _audio(4, 3)
  frontend = dict(num_mel_bins=16, frame_length=200, frame_step=100)
  train, test = inp.input_features(
      "logmel", _dataset(a, "audio", "train", la),
      _dataset(b, "audio", "test", lb), frontend=frontend)
  spec = lambda x: np.asarray(audio_frontend.log_mel_spectrogram(
      x, **frontend)).reshape(len(x), -1)
  want_train, want_test = _standardize(spec(a), spec(b))
  np.testing.assert_allclose(train, want_train, rtol=1e-3, atol=1e-3)
  np.testing.assert_allclose(test, want_test, rtol=1e-3, atol=1e-3)


def test_mfcc_stats_use_only_the_frames_inside_each_clip():
  (a, la), (b, lb) = _audio(5, 6), _audio(6, 3)
  frontend = dict(num_mel_bins=32, frame_length=200, frame_step=80)

  def stats(x, length):
    logmel = np.asarray(audio_frontend.log_mel_spectrogram(x, **frontend),
                        np.float64)
    mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=-1)[..., :20]
    out = []
    for m, n in zip(mfcc, length):
      keep = m[np.arange(len(m)) * 80 + 200 <= n]
      out.append(np.concatenate([keep.mean(0), keep.std(0)]))
    return np.array(out)

  train, test = inp.input_features(
      "mfcc_stats", _dataset(a, "audio", "train", la),
      _dataset(b, "audio", "test", lb), frontend=frontend)
  assert train.shape == (6, 40)
  want_train, want_test = _standardize(stats(a, la), stats(b, lb))
  np.testing.assert_allclose(train, want_train, rtol=1e-3, atol=2e-3)
  np.testing.assert_allclose(test, want_test, rtol=1e-3, atol=2e-3)
  # The padding changes the statistics: all frames would give other values.
  unmasked, _ = inp.input_features(
      "mfcc_stats", _dataset(a, "audio", "train"),
      _dataset(b, "audio", "test"), frontend=frontend)
  assert np.abs(unmasked - train).max() > 0.1


def test_names_by_modality():
  assert inp.names_for("audio") == ("logmel", "mfcc_stats")
  assert inp.names_for("image") == ("pixels",)
  assert inp.names_for("sensor") == ("windows", "summary_stats")


def test_bad_names_say_what_is_valid():
  ds = _dataset(np.zeros((2, 4, 4, 1), np.uint8), "image", "train")
  with pytest.raises(ValueError, match="valid names: pixels, windows"):
    inp.input_features("pixel", ds, ds)
  with pytest.raises(ValueError, match="for image use one of: pixels"):
    inp.input_features("logmel", ds, ds)


def test_protocol_scores_a_separable_representation_perfectly():
  rng = np.random.default_rng(0)
  labels = np.arange(60) % 3
  speaker = np.arange(60) % 2
  features = np.eye(3)[labels] * 3 + 0.1 * rng.normal(size=(60, 3))
  split = {"features": features, "label": labels, "speaker": speaker}
  scores = protocol.score_representation(
      split, split, num_classes=3, knn_k=5, nuisances=("speaker",))
  assert scores["knn_accuracy"] == 1.0
  assert scores["linear_probe_accuracy"] == 1.0
  # Speaker is independent of the features: the probe is near chance.
  assert scores["speaker_probe_accuracy"] < 0.8
  assert set(scores) == {"knn_accuracy", "linear_probe_accuracy",
                         "linear_probe_train_accuracy",
                         "speaker_probe_accuracy", "speaker_chance_accuracy"}
