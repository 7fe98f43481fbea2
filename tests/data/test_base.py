"""ArrayDataset and DatasetInfo: fields, indexing, validation."""
from __future__ import annotations

import numpy as np
import pytest

from contrastive.data import base


def _info(**overrides):
  fields = dict(name="toy", split="train", modality="audio", num_classes=2,
                class_names=("no", "yes"), input_shape=(3, 1),
                input_dtype="float32", metadata_names=("speaker",))
  fields.update(overrides)
  return base.DatasetInfo(**fields)


def _dataset(n=5):
  arrays = {"x": np.arange(n * 3, dtype=np.float32).reshape(n, 3, 1),
            "label": np.arange(n, dtype=np.int32) % 2,
            "speaker": np.arange(n, dtype=np.int32) + 10}
  return base.ArrayDataset(arrays, _info())


def test_getitem_and_get_batch_agree():
  ds = _dataset()
  batch = ds.get_batch(np.array([4, 1, 1]))
  for row, i in enumerate([4, 1, 1]):
    example = ds[i]
    assert set(example) == {"x", "label", "speaker", "index"}
    for key, value in example.items():
      assert isinstance(value, np.ndarray)
      np.testing.assert_array_equal(batch[key][row], value)
  assert batch["index"].dtype == np.int32
  np.testing.assert_array_equal(ds[-1]["index"], 4)
  assert ds.get_batch([])["x"].shape == (0, 3, 1)


def test_index_errors():
  ds = _dataset()
  with pytest.raises(IndexError, match="out of range"):
    ds[5]
  with pytest.raises(IndexError, match=r"\[0, 5\)"):
    ds.get_batch([0, -1])
  with pytest.raises(ValueError, match="1-D"):
    ds.get_batch(np.zeros((2, 2), int))
  with pytest.raises(ValueError, match="integers"):
    ds.get_batch([0.5])
  with pytest.raises(TypeError, match="int"):
    ds["a"]
  with pytest.raises(TypeError, match="int"):
    ds[1.0]
  np.testing.assert_array_equal(ds[np.int64(2)]["index"], 2)
  np.testing.assert_array_equal(ds[np.array(3)]["index"], 3)


def test_construction_errors():
  with pytest.raises(ValueError, match="modality"):
    _info(modality="video")
  with pytest.raises(ValueError, match="class names"):
    _info(num_classes=3)
  x = np.zeros((2, 3, 1), np.float32)
  label = np.zeros(2, np.int32)
  with pytest.raises(ValueError, match="exactly the fields"):
    base.ArrayDataset({"x": x, "label": label}, _info())
  with pytest.raises(ValueError, match="first dimension"):
    base.ArrayDataset({"x": x, "label": label, "speaker": label[:1]}, _info())
  with pytest.raises(ValueError, match="example shape"):
    base.ArrayDataset({"x": x[:, :2], "label": label, "speaker": label},
                      _info())
