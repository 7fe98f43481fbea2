"""UCI HAPT windows: real files (parsed once), a synthetic release, errors."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from contrastive.data import hapt_files
from contrastive.data import uci_hapt

ACTIVITY_LINES = "\n".join(
    f"{i} ACT{i}" for i in range(1, 13)) + "\n"


@pytest.fixture(scope="module")
def real(shared_data_dir, tmp_path_factory):
  """Both splits, standardised, parsed once (cache in a temporary folder),
  and the recordings that parse gave (the in-process memo's copy: the cache
  folder is new, so the first load parsed the raw files)."""
  cache = tmp_path_factory.mktemp("hapt_cache")
  folder = shared_data_dir / "uci_hapt"
  splits = {s: uci_hapt.load_uci_hapt(s, data_dir=folder, cache_dir=cache,
                                      standardize=True)
            for s in ("train", "test")}
  parsed = hapt_files.load_recordings(folder, cache_dir=cache)
  return splits, folder, cache, parsed


def _all(ds):
  return ds.get_batch(np.arange(len(ds)))


def test_real_subject_disjoint_split(real):
  splits, *_ = real
  train, test = _all(splits["train"]), _all(splits["test"])
  assert set(np.unique(train["subject"])) == set(range(1, 22))
  assert set(np.unique(test["subject"])) == set(range(22, 31))
  assert train["x"].shape[1:] == (128, 6) and test["x"].shape[1:] == (128, 6)
  assert train["x"].dtype == np.float32
  for batch in (train, test):
    assert batch["label"].min() == 0 and batch["label"].max() == 5
    assert len(np.unique(batch["label"])) == 6
  # About 10k windows of 2.56 s in the ~6.3 labelled hours of basic activity.
  assert 9_000 < len(train["x"]) + len(test["x"]) < 12_000
  info = splits["train"].info
  assert info.modality == "sensor" and info.num_classes == 6
  assert info.class_names[0] == "WALKING" and info.metadata_names == (
      "subject",)


def test_real_standardisation_uses_train_statistics(real):
  splits, *_ = real
  train = _all(splits["train"])["x"].astype(np.float64)
  np.testing.assert_allclose(train.mean(axis=(0, 1)), 0.0, atol=1e-4)
  np.testing.assert_allclose(train.std(axis=(0, 1)), 1.0, atol=1e-4)
  assert (splits["test"].info.extras["channel_mean"]
          == splits["train"].info.extras["channel_mean"])
  # Gravity along the phone's x axis: ~1 g raw mean before standardising.
  assert 0.5 < splits["train"].info.extras["channel_mean"][0] < 1.2


def test_real_cache_round_trip_and_transitions(real, monkeypatch):
  _, folder, cache, parsed = real
  assert len(list(cache.glob("uci_hapt-*.npz"))) == 1

  def no_parsing(folder):
    raise AssertionError(f"parsed {folder} instead of reading the cache")

  # A cache that fails to read falls back to parsing: forbid it, so that
  # everything below must come from the .npz file.
  monkeypatch.setattr(hapt_files, "parse_recordings", no_parsing)
  hapt_files._load_cached.cache_clear()  # Forces a read of the .npz file.
  cached = hapt_files.load_recordings(folder, cache_dir=cache)
  assert cached is not parsed
  for field in dataclasses.fields(hapt_files.HaptRecordings):
    got, want = getattr(cached, field.name), getattr(parsed, field.name)
    assert got.dtype == want.dtype, field.name
    np.testing.assert_array_equal(got, want, err_msg=field.name)
  assert cached.signals.shape[1] == 6 and len(cached.users) == 61
  assert len(np.unique(cached.users)) == 30
  with_transitions = uci_hapt.load_uci_hapt(
      "test", data_dir=folder, cache_dir=cache, include_transitions=True)
  labels = _all(with_transitions)["label"]
  assert with_transitions.info.num_classes == 12
  assert labels.max() <= 11 and np.any(labels >= 6)


def _write_release(folder, sessions, labels):
  """sessions: {(exp, user): [R, 6] array}; labels: rows of labels.txt."""
  raw = folder / "RawData"
  raw.mkdir(parents=True)
  for (exp, user), signal in sessions.items():
    name = f"exp{exp:02d}_user{user:02d}.txt"
    np.savetxt(raw / f"acc_{name}", signal[:, :3], fmt="%.9e")
    np.savetxt(raw / f"gyro_{name}", signal[:, 3:], fmt="%.9e")
  np.savetxt(raw / "labels.txt", np.asarray(labels), fmt="%d")
  (folder / "activity_labels.txt").write_text(ACTIVITY_LINES)


@pytest.fixture
def tiny_release(tmp_path):
  rng = np.random.default_rng(0)
  sessions = {(1, 3): rng.normal(size=(60, 6)).astype(np.float32),
              (2, 25): rng.normal(size=(40, 6)).astype(np.float32)}
  labels = [(1, 3, 1, 2, 21), (1, 3, 7, 22, 30), (1, 3, 4, 31, 55),
            (2, 25, 6, 5, 40)]
  _write_release(tmp_path / "hapt", sessions, labels)
  return tmp_path / "hapt", sessions, labels


def _expected_windows(sessions, labels, window, stride, num_classes, test):
  """Brute force: every start row, kept iff on the stride grid of a segment."""
  out = []
  for exp, user, activity, first, last in labels:
    if activity > num_classes or (user >= 22) != test:
      continue
    signal = sessions[(exp, user)]
    for row in range(len(signal)):
      inside = first - 1 <= row and row + window <= last
      if inside and (row - (first - 1)) % stride == 0:
        out.append((signal[row:row + window], activity - 1, user))
  return out


@pytest.mark.parametrize("transitions", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_synthetic_windows_match_brute_force(tiny_release, tmp_path, split,
                                             transitions):
  folder, sessions, labels = tiny_release
  ds = uci_hapt.load_uci_hapt(split, data_dir=folder, window=8, stride=3,
                              include_transitions=transitions,
                              cache_dir=tmp_path / "cache")
  expected = _expected_windows(sessions, labels, 8, 3,
                               12 if transitions else 6, split == "test")
  batch = _all(ds)
  assert len(ds) == len(expected)
  for i, (x, label, subject) in enumerate(expected):
    np.testing.assert_allclose(batch["x"][i], x, rtol=1e-6)
    assert batch["label"][i] == label and batch["subject"][i] == subject


def test_synthetic_standardise_and_cache_invalidation(tiny_release, tmp_path):
  folder, sessions, labels = tiny_release
  cache = tmp_path / "cache"
  train = uci_hapt.load_uci_hapt("train", data_dir=folder, window=8, stride=3,
                                 standardize=True, cache_dir=cache)
  windows = np.stack([w for w, _, _ in _expected_windows(
      sessions, labels, 8, 3, 6, False)]).astype(np.float64)
  mean, std = windows.mean(axis=(0, 1)), windows.std(axis=(0, 1))
  test = uci_hapt.load_uci_hapt("test", data_dir=folder, window=8, stride=3,
                                standardize=True, cache_dir=cache)
  raw_test = np.stack([w for w, _, _ in _expected_windows(
      sessions, labels, 8, 3, 6, True)])
  np.testing.assert_allclose(_all(test)["x"], (raw_test - mean) / std,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(test.info.extras["channel_std"], std, rtol=1e-5)
  # Editing a raw file changes the key: the stale cache is not used.
  labels_path = folder / "RawData" / "labels.txt"
  labels_path.write_text("1 3 1 2 21\n")
  fewer = uci_hapt.load_uci_hapt("train", data_dir=folder, window=8, stride=3,
                                 cache_dir=cache)
  assert len(fewer) == (21 - 2 + 1 - 8) // 3 + 1
  assert len(list(cache.glob("*.npz"))) == 2


def test_segment_shorter_than_window_gives_nothing(tiny_release):
  folder, _, _ = tiny_release
  with pytest.raises(ValueError, match="split 'train' is empty"):
    uci_hapt.load_uci_hapt("train", data_dir=folder, window=30,
                           use_cache=False)


def test_missing_layouts(tmp_path):
  with pytest.raises(FileNotFoundError, match="archive.ics.uci.edu") as e:
    uci_hapt.load_uci_hapt("train", data_dir=tmp_path / "absent")
  assert "absent" in str(e.value)
  (tmp_path / "RawData").mkdir()
  with pytest.raises(FileNotFoundError, match="labels.txt"):
    uci_hapt.load_uci_hapt("train", data_dir=tmp_path)
  (tmp_path / "RawData" / "labels.txt").write_text("1 1 1 1 10\n")
  with pytest.raises(FileNotFoundError, match="acc_expEE_userUU"):
    uci_hapt.load_uci_hapt("train", data_dir=tmp_path)


def test_broken_files(tiny_release):
  folder, _, _ = tiny_release
  raw = folder / "RawData"
  gyro = raw / "gyro_exp02_user25.txt"
  gyro.write_text("1 2 3\n")
  with pytest.raises(ValueError, match="row-aligned"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, use_cache=False)
  gyro.write_text("1 2\n")
  with pytest.raises(ValueError, match="gyro_exp02_user25.txt"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, use_cache=False)
  gyro.unlink()
  with pytest.raises(FileNotFoundError, match="no gyroscope file"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, use_cache=False)


def test_labels_outside_the_session(tiny_release):
  folder, _, _ = tiny_release
  (folder / "RawData" / "labels.txt").write_text("2 25 1 30 41\n")
  with pytest.raises(ValueError, match="outside its 40 rows"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, use_cache=False)
  (folder / "RawData" / "labels.txt").write_text("3 25 1 1 20\n")
  with pytest.raises(ValueError, match="names a session with no"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, use_cache=False)


def test_bad_options(tiny_release):
  folder, _, _ = tiny_release
  with pytest.raises(ValueError, match="window and stride"):
    uci_hapt.load_uci_hapt("train", data_dir=folder, stride=0)
  with pytest.raises(ValueError, match="split"):
    uci_hapt.load_uci_hapt("val", data_dir=folder)
  with pytest.raises(ValueError, match="non-empty train split"):
    uci_hapt.load_uci_hapt("test", data_dir=folder, window=8,
                           test_subjects=(3, 25), standardize=True,
                           use_cache=False)
