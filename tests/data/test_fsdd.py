"""FSDD WAV reader: real files, synthetic WAVs with known samples, errors."""
from __future__ import annotations

import wave

import numpy as np
import pytest

from contrastive.data import fsdd


def _write_wav(path, samples, rate=8000, width=2, channels=1):
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(np.asarray(samples).tobytes())


@pytest.fixture
def tiny_fsdd(tmp_path):
  """2 speakers x 2 digits x indices {0, 7}; samples encode the file."""
  (tmp_path / "recordings").mkdir()
  contents = {}
  for speaker in ("zoe", "adam"):
    for digit in (3, 8):
      for index in (0, 7):
        n = 5 + digit + index  # 8, 13, 15 or 20 samples: 20 > clip_samples.
        samples = (np.arange(n) * 1000 - 16000 + digit).astype("<i2")
        name = f"{digit}_{speaker}_{index}.wav"
        _write_wav(tmp_path / "recordings" / name, samples)
        contents[name] = samples
  return tmp_path, contents


@pytest.fixture(scope="module")
def real_splits(shared_data_dir):
  folder = shared_data_dir / "fsdd"
  return {s: fsdd.load_fsdd(s, data_dir=folder) for s in ("train", "test")}


def test_real_official_split(real_splits):
  train, test = real_splits["train"], real_splits["test"]
  assert (len(train), len(test)) == (2700, 300)
  assert train.info.extras["speakers"] == test.info.extras["speakers"]
  assert len(train.info.extras["speakers"]) == 6
  for ds, per_speaker in ((train, 450), (test, 50)):
    batch = ds.get_batch(np.arange(len(ds)))
    assert batch["x"].shape == (len(ds), 8000)
    assert batch["x"].dtype == np.float32
    assert np.abs(batch["x"]).max() <= 1.0
    np.testing.assert_array_equal(np.bincount(batch["speaker"]),
                                  [per_speaker] * 6)
    np.testing.assert_array_equal(np.bincount(batch["label"], minlength=10),
                                  [len(ds) // 10] * 10)
    # Left-aligned: everything after `length` is padding.
    t = np.arange(8000)[None, :]
    assert np.all(batch["x"][t >= batch["length"][:, None]] == 0)
    assert batch["length"].min() > 0 and batch["length"].max() <= 8000
  assert train.info.modality == "audio" and train.info.num_classes == 10
  assert set(train.info.metadata_names) == {"speaker", "length"}


def test_real_leave_one_speaker_out(shared_data_dir):
  folder = shared_data_dir / "fsdd"
  test = fsdd.load_fsdd("test", data_dir=folder, held_out_speaker="theo")
  assert len(test) == 500
  theo = test.info.extras["speakers"].index("theo")
  np.testing.assert_array_equal(
      np.unique(test.get_batch(np.arange(500))["speaker"]), [theo])


def test_synthetic_values_padding_and_crop(tiny_fsdd):
  folder, contents = tiny_fsdd
  test = fsdd.load_fsdd("test", data_dir=folder, clip_samples=16)
  train = fsdd.load_fsdd("train", data_dir=folder, clip_samples=16)
  assert (len(test), len(train)) == (4, 4)  # index 0 is test, 7 is train.
  assert test.info.extras["speakers"] == ("adam", "zoe")
  for ds in (test, train):
    for i in range(len(ds)):
      ex = ds[i]
      speaker = ds.info.extras["speakers"][int(ex["speaker"])]
      index = 0 if ds is test else 7
      raw = contents[f"{int(ex['label'])}_{speaker}_{index}.wav"]
      expected = np.zeros(16, np.float32)
      kept = raw[:16]
      expected[:len(kept)] = kept / 32768.0
      np.testing.assert_array_equal(ex["x"], expected)
      assert int(ex["length"]) == min(len(raw), 16)
      assert int(ex["index"]) == i


@pytest.mark.parametrize("test_indices", [(5, 9), (7, 7)])
def test_custom_test_indices(tiny_fsdd, test_indices):
  # Recording 7 is in the (inclusive) test range, recording 0 is not. A clip
  # of digit d and recording i has 5 + d + i samples, which tells i back.
  folder, _ = tiny_fsdd
  for split, index in (("test", 7), ("train", 0)):
    ds = fsdd.load_fsdd(split, data_dir=folder, clip_samples=32,
                        test_indices=test_indices)
    batch = ds.get_batch(np.arange(len(ds)))
    np.testing.assert_array_equal(batch["length"] - 5 - batch["label"],
                                  [index] * 4)


def test_read_wav_8_bit(tmp_path):
  path = tmp_path / "u8.wav"
  _write_wav(path, np.array([0, 128, 255], np.uint8), width=1)
  audio, rate = fsdd.read_wav(path)
  np.testing.assert_allclose(audio, [-1.0, 0.0, 127 / 128])
  assert rate == 8000


def test_corrupt_wav_names_the_file(tiny_fsdd):
  folder, _ = tiny_fsdd
  bad = folder / "recordings" / "3_adam_7.wav"
  bad.write_bytes(b"RIFF\x00\x00garbage")
  with pytest.raises(ValueError, match="3_adam_7.wav"):
    fsdd.load_fsdd("train", data_dir=folder)


@pytest.mark.parametrize("cut", [2, 6, 7])
def test_truncated_wav_names_the_file_and_the_shortfall(tiny_fsdd, cut):
  """A copy cut short (even or odd byte count) is an error, not a shorter
  clip: the header's data-chunk size says how many frames there must be."""
  folder, contents = tiny_fsdd
  bad = folder / "recordings" / "8_zoe_7.wav"
  whole = bad.read_bytes()
  bad.write_bytes(whole[:-cut])
  frames = len(contents["8_zoe_7.wav"])
  with pytest.raises(ValueError, match=rf"8_zoe_7\.wav.*{frames} frames"):
    fsdd.read_wav(bad)
  with pytest.raises(ValueError, match=r"8_zoe_7\.wav.*truncated"):
    fsdd.load_fsdd("train", data_dir=folder)


def test_stereo_and_wrong_rate_rejected(tiny_fsdd):
  folder, _ = tiny_fsdd
  path = folder / "recordings" / "3_adam_0.wav"
  _write_wav(path, np.zeros(8, "<i2"), rate=16000)
  with pytest.raises(ValueError, match="16000 Hz"):
    fsdd.load_fsdd("test", data_dir=folder)
  _write_wav(path, np.zeros(8, "<i2"), channels=2)
  with pytest.raises(ValueError, match="2 channels"):
    fsdd.read_wav(path)


def test_missing_folder_and_recordings(tmp_path):
  with pytest.raises(FileNotFoundError, match="Jakobovski") as e:
    fsdd.load_fsdd("train", data_dir=tmp_path / "absent")
  assert "absent" in str(e.value)
  with pytest.raises(FileNotFoundError, match="recordings"):
    fsdd.load_fsdd("train", data_dir=tmp_path)
  (tmp_path / "recordings").mkdir()
  with pytest.raises(FileNotFoundError, match="wav"):
    fsdd.load_fsdd("train", data_dir=tmp_path)


def test_bad_options(tiny_fsdd):
  folder, _ = tiny_fsdd
  with pytest.raises(ValueError, match="'adam', 'zoe'"):
    fsdd.load_fsdd("test", data_dir=folder, held_out_speaker="bob")
  with pytest.raises(ValueError, match="split"):
    fsdd.load_fsdd("dev", data_dir=folder)
  with pytest.raises(ValueError, match="clip_samples"):
    fsdd.load_fsdd("test", data_dir=folder, clip_samples=0)
  with pytest.raises(ValueError, match="test_indices"):
    fsdd.load_fsdd("test", data_dir=folder, test_indices=(5, 2))
  (folder / "recordings" / "notes.wav").write_bytes(b"")
  with pytest.raises(ValueError, match="notes.wav"):
    fsdd.load_fsdd("test", data_dir=folder)
