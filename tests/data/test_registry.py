"""build_dataset: names, config fields, ConfigDict, TFDS fallback, errors."""
from __future__ import annotations

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from contrastive import data
from contrastive.data import registry


def test_fsdd_from_config_dict(shared_data_dir):
  config = ml_collections.ConfigDict({
      "name": "fsdd", "data_dir": str(shared_data_dir / "fsdd"),
      "clip_samples": 4000, "held_out_speaker": "george"})
  ds = data.build_dataset(config, "test")
  assert len(ds) == 500 and ds.info.input_shape == (4000,)
  assert isinstance(ds, data.Dataset)
  example = ds[0]
  assert {"x", "label", "index", "speaker"} <= set(example)


def test_fashion_mnist_files_by_default(shared_data_dir):
  ds = data.build_dataset({"name": "fashion_mnist",
                           "data_dir": shared_data_dir / "fashion_mnist"},
                          "test")
  assert len(ds) == 10_000 and ds.info.extras["source"] == "files"


def test_none_fields_take_the_defaults(shared_data_dir):
  del shared_data_dir  # The default data_dir is the shared copy.
  ds = data.build_dataset({"name": "fashion_mnist", "data_dir": None}, "test")
  assert len(ds) == 10_000


def test_tfds_names_under_mock():
  with tfds.testing.mock_data(num_examples=3):
    fmnist = data.build_dataset({"name": "fashion_mnist", "source": "tfds"},
                                "train")
    mnist = data.build_dataset({"name": "tfds:mnist"}, "test")
    imagenet = data.build_dataset({"name": "imagenet2012", "image_size": 16},
                                  "test")
    assert fmnist.info.extras["source"] == "tfds" and len(fmnist) == 3
    assert mnist[0]["x"].shape == (28, 28, 1)
    assert imagenet.get_batch([0, 1, 2])["x"].shape == (3, 16, 16, 3)


def test_fashion_mnist_auto_falls_back_to_tfds(tmp_path):
  """No IDX files where the config points: the TFDS copy is used."""
  with tfds.testing.mock_data(num_examples=3):
    ds = data.build_dataset(
        {"name": "fashion_mnist", "data_dir": str(tmp_path)}, "train")
  assert ds.info.extras["source"] == "tfds" and len(ds) == 3


def test_hapt_options_reach_the_reader(tmp_path):
  folder = tmp_path / "hapt"
  (folder / "RawData").mkdir(parents=True)
  signal = np.arange(40 * 3, dtype=float).reshape(40, 3)
  for sensor in ("acc", "gyro"):
    np.savetxt(folder / "RawData" / f"{sensor}_exp01_user02.txt", signal)
  (folder / "RawData" / "labels.txt").write_text("1 2 5 1 40\n")
  (folder / "activity_labels.txt").write_text(
      "".join(f"{i} A{i}\n" for i in range(1, 13)))
  config = {"name": "uci_hapt", "data_dir": str(folder), "window": 10,
            "stride": 10, "test_subjects": [9], "use_cache": False}
  ds = data.build_dataset(config, "train")
  assert len(ds) == 4 and ds.info.input_shape == (10, 6)
  np.testing.assert_array_equal(ds.get_batch(np.arange(4))["label"], 4)


def test_config_fields_lists_each_readers_options():
  # The offline datasets share their first four: where the data is found.
  shared = ("data_dir", "source", "download", "cache_dir")
  assert registry.config_fields("uci_hapt") == (*shared,
      "window", "stride", "include_transitions", "test_subjects",
      "standardize", "use_cache")
  assert registry.config_fields("fsdd") == (*shared,
      "clip_samples", "sample_rate", "test_indices", "held_out_speaker")
  assert registry.config_fields("fashion_mnist") == shared
  assert registry.config_fields("tfds:svhn_cropped") == (
      "data_dir", "image_size", "image_key", "label_key", "download",
      "eval_resize")
  assert registry.config_fields("image_folder:/data/in100") == (
      "data_dir", "image_size", "eval_resize", "skip_unreadable", "cache_dir")


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match="valid names are .*'fsdd'"):
    data.build_dataset({"name": "mnist"}, "train")
  with pytest.raises(ValueError, match="needs a 'name'"):
    data.build_dataset({"data_dir": "/x"}, "train")
  with pytest.raises(ValueError, match="unknown dataset name"):
    data.build_dataset({"name": "tfds:"}, "train")


def test_unknown_field_lists_allowed_fields():
  with pytest.raises(ValueError, match=r"\['windw'\].*'window'"):
    data.build_dataset({"name": "uci_hapt", "windw": 64}, "train")


def test_bad_source_and_config_type(tmp_path):
  with pytest.raises(ValueError, match="'auto', 'files', 'tfds'"):
    data.build_dataset({"name": "fashion_mnist", "source": "web"}, "train")
  for name in ("fsdd", "uci_hapt"):
    with pytest.raises(ValueError, match=f"{name} source .*'auto', 'files'"):
      data.build_dataset({"name": name, "source": "tfds"}, "train")
  with pytest.raises(ValueError, match="ConfigDict or a mapping"):
    data.build_dataset(["fsdd"], "train")
  with pytest.raises(FileNotFoundError, match="free-spoken-digit-dataset"):
    data.build_dataset({"name": "fsdd", "data_dir": str(tmp_path)}, "train")
