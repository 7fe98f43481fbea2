"""`image_folder:<path>`: layout, classes, cached listing and its errors."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from contrastive import data
from contrastive.data import base
from contrastive.data import image_folder


def _write(path, size=(40, 30), value=0):
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.full((size[1], size[0], 3), value, np.uint8)
  pixels[::2, ::3] = 255 - value
  Image.fromarray(pixels).save(path)


@pytest.fixture
def root(tmp_path):
  for split, per_class in (("train", 3), ("val", 1)):
    for c, name in enumerate(("zebra", "ant", "moth")):
      for k in range(per_class):
        ext = ".png" if k == 2 else ".jpg"
        _write(tmp_path / split / name / f"{k}{ext}", value=40 * c + k)
  return tmp_path


def _ds(root, split="train", **kwargs):
  kwargs.setdefault("cache_dir", root / "cache")
  return image_folder.ImageFolderDataset(root, split, image_size=16,
                                         eval_resize=20, **kwargs)


def test_layout_classes_and_eval_images(root):
  (root / "train" / "ant" / "._0.jpg").write_bytes(b"macOS fork")
  train, test = _ds(root), _ds(root, "test")
  assert train.classes == ("ant", "moth", "zebra")  # sorted folder names
  assert len(train) == 9 and len(test) == 3
  np.testing.assert_array_equal(test.get_batch([0, 1, 2])["label"], [0, 1, 2])
  batch = train.get_batch([8, 0])
  assert batch["x"].shape == (2, 16, 16, 3) and batch["x"].dtype == np.uint8
  np.testing.assert_array_equal(batch["label"], [2, 0])
  np.testing.assert_array_equal(batch["index"], [8, 0])
  assert train.path(8).endswith("zebra/2.png")
  assert train.info.num_classes == 3 and train.info.input_shape == (16, 16, 3)
  # Through the registry, by prefix or with data_dir.
  ds = data.build_dataset({"name": f"image_folder:{root}", "image_size": 16,
                           "cache_dir": str(root / "cache")}, "test")
  np.testing.assert_array_equal(ds.get_batch([1])["x"],
                                data.build_dataset(
                                    {"name": "image_folder",
                                     "data_dir": str(root), "image_size": 16,
                                     "cache_dir": str(root / "cache")},
                                    "test").get_batch([1])["x"])
  with pytest.raises(ValueError, match=r"unknown fields \[.window.\] for dataset .image_folder"):
    data.build_dataset({"name": f"image_folder:{root}", "window": 3}, "train")


def test_listing_is_cached_and_refreshed(root):
  cache = root / "cache"
  first = _ds(root)
  files = list((cache / "image_folder").glob("train-*.json"))
  assert len(files) == 1
  # A stale cache entry is used only while the class folders are unchanged.
  mtime = files[0].stat().st_mtime_ns
  assert len(_ds(root)) == len(first)
  assert files[0].stat().st_mtime_ns == mtime  # read, not rewritten
  time.sleep(0.01)
  _write(root / "train" / "ant" / "new.jpeg")
  assert len(_ds(root)) == 10
  assert _ds(root, cache_dir="").classes == first.classes  # no cache


def test_missing_split_and_root(root, tmp_path):
  os.rename(root / "val", root / "elsewhere")
  with pytest.raises(base.DataNotFoundError, match="no 'test' split.*val"):
    _ds(root, "test")
  with pytest.raises(base.DataNotFoundError, match="not a folder"):
    _ds(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="splits are"):
    _ds(root, "holdout")


def test_empty_class_is_named(root):
  (root / "train" / "empty").mkdir()
  (root / "train" / "empty" / "notes.txt").write_text("no images")
  with pytest.raises(ValueError, match=r"class folder .*empty holds no"):
    _ds(root)


def test_val_class_missing_from_train(root):
  _write(root / "val" / "wasp" / "0.jpg")
  with pytest.raises(ValueError, match="wasp"):
    _ds(root, "test")


def test_unreadable_image_named_or_skipped_and_counted(root):
  bad = root / "train" / "moth" / "1.jpg"
  bad.write_bytes(b"not a jpeg")
  with pytest.raises(image_folder.UnreadableImageError, match=str(bad)):
    _ds(root).get_batch(np.arange(9))
  skipping = _ds(root, skip_unreadable=True)
  assert len(skipping) == 8 and skipping.info.extras["skipped_files"] == 1
  # A file that breaks only while decoding (a truncated JPEG) is replaced by
  # the next example and counted.
  good = root / "train" / "ant" / "0.jpg"
  good.write_bytes(good.read_bytes()[:200])
  truncated = _ds(root, skip_unreadable=True)
  with pytest.warns(UserWarning, match="ant/0.jpg"):
    batch = truncated.get_batch([0])
  assert truncated.decode_failures == 1 and int(batch["index"][0]) == 1
