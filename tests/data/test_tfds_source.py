"""TFDS sources under `tfds.testing.mock_data` (offline, no TensorFlow).

`mock_data` patches `DatasetBuilder.as_data_source`: `tfds.data_source`
returns a real `ArrayRecordDataSource` whose underlying reader is a mock
serving `num_examples` random examples decoded to NumPy, deterministic per
index; the features (shapes, class names) are the real ones, from the
builder's code. Only the ArrayRecord reading and the image decoding are
bypassed, so these tests cover everything this package does on top.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from contrastive.data import image_ops
from contrastive.data import tfds_source


def test_cifar10_examples_and_info():
  with tfds.testing.mock_data(num_examples=6):
    ds = tfds_source.TfdsDataset("cifar10", "train")
    assert len(ds) == 6
    ex = ds[4]
    assert ex["x"].shape == (32, 32, 3) and ex["x"].dtype == np.uint8
    assert ex["label"].dtype == np.int32 and 0 <= ex["label"] < 10
    assert int(ex["index"]) == 4
    batch = ds.get_batch([4, 0, 4])
    assert batch["x"].shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(batch["x"][0], ex["x"])
    np.testing.assert_array_equal(batch["index"], [4, 0, 4])
    source = tfds.data_source("cifar10", split="train")
    np.testing.assert_array_equal(ex["x"], source[4]["image"])
    assert int(ex["label"]) == int(source[4]["label"])
  # cifar10's class names come from a downloaded file, which the mock lacks.
  names = tuple(source.dataset_info.features["label"].names)
  assert ds.info.num_classes == 10 and ds.info.class_names == names
  assert ds.info.input_shape == (32, 32, 3) and ds.info.modality == "image"
  assert "tensorflow" not in sys.modules


def test_cifar100_keeps_coarse_label():
  with tfds.testing.mock_data(num_examples=8):
    ds = tfds_source.TfdsDataset("cifar100", "test")
    batch = ds.get_batch([5, 0, 7, 2, 2])
    source = tfds.data_source("cifar100", split="test")
    records = [source[i] for i in (5, 0, 7, 2, 2)]
  assert ds.info.metadata_names == ("coarse_label",)
  assert batch["coarse_label"].dtype == np.int32
  np.testing.assert_array_equal(
      batch["coarse_label"], [int(r["coarse_label"]) for r in records])
  np.testing.assert_array_equal(batch["label"],
                                [int(r["label"]) for r in records])
  assert np.all((0 <= batch["coarse_label"]) & (batch["coarse_label"] < 20))
  assert len(np.unique(batch["coarse_label"])) > 1  # the mock's are random
  assert ds.info.num_classes == 100


def test_imagenet_variable_sizes_need_image_size():
  with tfds.testing.mock_data(num_examples=4):
    with pytest.raises(ValueError, match="image_size"):
      tfds_source.TfdsDataset("imagenet2012", "train")
    ds = tfds_source.TfdsDataset("imagenet2012", "test", image_size=24)
    batch = ds.get_batch(np.arange(4))
    raw = tfds.data_source("imagenet2012", split="validation")
    for i in range(4):
      np.testing.assert_array_equal(
          batch["x"][i], image_ops.center_crop_resize(raw[i]["image"], 24))
  assert batch["x"].shape == (4, 24, 24, 3)
  assert ds.info.input_shape == (24, 24, 3)
  assert ds.info.extras["tfds_split"] == "validation"
  assert ds.info.num_classes == 1000


def test_stl10_and_fashion_mnist():
  with tfds.testing.mock_data(num_examples=2):
    stl = tfds_source.TfdsDataset("stl10", "train")
    fmnist = tfds_source.TfdsDataset("fashion_mnist", "test")
    assert stl[0]["x"].shape == (96, 96, 3)
    assert fmnist[1]["x"].shape == (28, 28, 1)
  assert fmnist.info.class_names[0] == "T-shirt/top"


def test_unknown_feature_key():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(ValueError, match="no feature 'img'"):
      tfds_source.TfdsDataset("cifar10", "train", image_key="img")


def test_index_errors():
  with tfds.testing.mock_data(num_examples=2):
    ds = tfds_source.TfdsDataset("cifar10", "train")
    with pytest.raises(IndexError):
      ds[2]
    with pytest.raises(IndexError):
      ds.get_batch([0, 5])
    assert ds.get_batch([])["x"].shape == (0, 32, 32, 3)


def test_unprepared_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match="array_record") as e:
    tfds_source.TfdsDataset("cifar10", "train", data_dir=tmp_path)
  assert str(tmp_path) in str(e.value)
