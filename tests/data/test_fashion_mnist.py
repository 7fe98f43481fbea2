"""Fashion-MNIST IDX reader: real files, a synthetic IDX writer, errors."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from contrastive.data import fashion_mnist


def _idx_bytes(array: np.ndarray) -> bytes:
  """Independent IDX writer (ubyte only): magic 0x0000 08 NN, sizes, data."""
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  header += struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write_split(folder, stem, images, labels, compress=True):
  for kind, array in (("images-idx3-ubyte", images),
                      ("labels-idx1-ubyte", labels)):
    data = _idx_bytes(array)
    if compress:
      (folder / f"{stem}-{kind}.gz").write_bytes(gzip.compress(data))
    else:
      (folder / f"{stem}-{kind}").write_bytes(data)


@pytest.fixture
def tiny_folder(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {}
  for stem, n in (("train", 5), ("t10k", 3)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    _write_split(tmp_path, stem, images, labels, compress=(stem == "train"))
    arrays[stem] = (images, labels)
  return tmp_path, arrays


def test_real_files_counts_shapes_labels(shared_data_dir):
  folder = shared_data_dir / "fashion_mnist"
  train = fashion_mnist.load_fashion_mnist("train", data_dir=folder)
  test = fashion_mnist.load_fashion_mnist("test", data_dir=folder)
  assert len(train) + len(test) == 70_000
  assert (len(train), len(test)) == (60_000, 10_000)
  batch = test.get_batch(np.arange(len(test)))
  assert batch["x"].shape == (10_000, 28, 28, 1)
  assert batch["x"].dtype == np.uint8 and batch["label"].dtype == np.int32
  # The release is class-balanced: 1,000 test images per class.
  np.testing.assert_array_equal(np.bincount(batch["label"]), [1000] * 10)
  np.testing.assert_array_equal(batch["index"], np.arange(10_000))
  assert test.info.num_classes == 10 and test.info.modality == "image"
  assert test.info.input_shape == (28, 28, 1)
  assert 0 < batch["x"].mean() < 255


def test_default_dir_finds_the_shared_copy(shared_data_dir):
  del shared_data_dir  # Only for the skip/fail rule.
  ds = fashion_mnist.load_fashion_mnist("test")
  assert len(ds) == 10_000


def test_synthetic_files_round_trip(tiny_folder):
  folder, arrays = tiny_folder
  for split, stem in (("train", "train"), ("test", "t10k")):
    ds = fashion_mnist.load_fashion_mnist(split, data_dir=folder)
    images, labels = arrays[stem]
    batch = ds.get_batch(np.arange(len(ds)))
    np.testing.assert_array_equal(batch["x"][..., 0], images)
    np.testing.assert_array_equal(batch["label"], labels)
    np.testing.assert_array_equal(ds[-1]["x"][..., 0], images[-1])


def test_parse_idx_other_types():
  data = struct.pack(">BBBB2I", 0, 0, 0x0B, 2, 2, 3) + np.arange(
      6, dtype=">i2").tobytes()
  out = fashion_mnist.parse_idx(data)
  np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))
  assert out.dtype == np.int16


@pytest.mark.parametrize("data, match", [
    (b"\x01\x00\x08\x01", "bad magic"),
    (b"", "bad magic"),
    (b"\x00\x00\x07\x01", "unknown IDX element type"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
    (struct.pack(">BBBBI", 0, 0, 8, 1, 5) + b"abc", "truncated or corrupt"),
])
def test_parse_idx_rejects_bad_bytes(data, match):
  with pytest.raises(ValueError, match=match):
    fashion_mnist.parse_idx(data)


def test_missing_folder_names_path_and_publisher(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError, match="zalandoresearch") as e:
    fashion_mnist.load_fashion_mnist("train", data_dir=missing)
  assert str(missing) in str(e.value)


def test_folder_without_the_files(tmp_path):
  (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    fashion_mnist.load_fashion_mnist("test", data_dir=tmp_path)


def test_corrupt_gzip_and_mismatched_counts(tiny_folder):
  folder, _ = tiny_folder
  (folder / "t10k-labels-idx1-ubyte").write_bytes(
      _idx_bytes(np.zeros(2, np.uint8)))
  with pytest.raises(ValueError, match="3 t10k images but labels"):
    fashion_mnist.load_fashion_mnist("test", data_dir=folder)
  (folder / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
    fashion_mnist.load_fashion_mnist("train", data_dir=folder)


def test_unknown_split(tiny_folder):
  with pytest.raises(ValueError, match="'train', 'test'"):
    fashion_mnist.load_fashion_mnist("validation", data_dir=tiny_folder[0])
