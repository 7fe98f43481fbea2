"""TFDS image datasets as random-access sources, without TensorFlow.

`tfds.data_source` reads a dataset prepared in the ArrayRecord format and
decodes each example with NumPy/PIL (TensorFlow is not needed for reading).
The examples are mapped by a grain `MapDataset` to this package's example
dicts: the image becomes 'x' (uint8 [H, W, C]), the label 'label' (int32),
and the position in the split 'index'.

Preparing a dataset (`tfds build <name> --file_format=array_record`) needs
TensorFlow and is done once, elsewhere; `download=True` asks TFDS to do it
here. Images of varying size (imagenet2012) need `image_size`: each is then
centre-cropped to a square and resized (`image_ops.center_crop_resize`), or,
with `eval_resize`, resized to that short side and centre-cropped
(ImageNet's 256 -> 224, `host_crops.EvalSpec`).

`with_host_crops(spec)` gives the split whose training views are cropped
from the whole image on the host (`host_crops`; `get_views`, used by
`BatchIterator`). TFDS decodes each image at full scale here; an image folder
(`image_folder`) decodes JPEGs at reduced scale where the crop allows.
"""
from __future__ import annotations

import copy
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from contrastive.data import base
from contrastive.data import host_crops
from contrastive.data import image_ops

# Splits some datasets name differently: a 'test' request reads these.
SPLIT_ALIASES: Mapping[str, Mapping[str, str]] = {
    "imagenet2012": {"test": "validation"},
}
# Extra integer label fields kept as metadata.
METADATA_KEYS: Mapping[str, tuple[str, ...]] = {
    "cifar100": ("coarse_label",),
}


def _open_source(name: str, split: str, data_dir: Any, download: bool):
  import tensorflow_datasets as tfds  # Imported lazily: slow and optional.
  try:
    return tfds.data_source(
        name, split=split, data_dir=data_dir, download=download)
  # KeyError: TFDS found the dataset's metadata but no generated split.
  except (NotImplementedError, FileNotFoundError, AssertionError,
          ValueError, KeyError) as e:
    where = data_dir or "the TFDS default (~/tensorflow_datasets)"
    raise FileNotFoundError(
        f"TFDS dataset {name!r} split {split!r} could not be opened from"
        f" {where}: {e}\nPrepare it in the ArrayRecord format on a machine"
        f" with TensorFlow (`tfds build {name} --file_format=array_record"
        f" --data_dir=...`, see https://www.tensorflow.org/datasets/"
        f"catalog/{name}) and set the config's data_dir to that folder, or"
        " set download=True.") from e


class TfdsDataset:
  """A TFDS image split behind this package's `Dataset` interface.

  Args:
    name: the TFDS name, e.g. 'cifar10'.
    split: 'train', 'test' or any TFDS split string ('train[:10%]');
      'test' reads 'validation' for imagenet2012.
    data_dir: TFDS data folder; None uses TFDS's default.
    image_size: if set, every image is centre-cropped and resized to
      [image_size, image_size, C]; required when image sizes vary.
    image_key: the feature holding the image.
    label_key: the ClassLabel feature.
    download: let TFDS download and prepare the data (needs TensorFlow).
    eval_resize: with image_size, resize the short side to this and keep
      the centre crop (256 for 224); None: the central square, resized.

  Example:
    ds = TfdsDataset("cifar10", "test", data_dir="/data/tfds")
    ds.get_batch([0, 1])["x"].shape  # (2, 32, 32, 3)
  """

  def __init__(self, name: str, split: str, *,
               data_dir: str | pathlib.Path | None = None,
               image_size: int | None = None, image_key: str = "image",
               label_key: str = "label", download: bool = False,
               eval_resize: int | None = None):
    tfds_split = SPLIT_ALIASES.get(name, {}).get(split, split)
    source = _open_source(name, tfds_split, data_dir, download)
    features = source.dataset_info.features
    for key in (image_key, label_key):
      if key not in features:
        raise ValueError(f"TFDS {name!r} has no feature {key!r}; its features"
                         f" are {sorted(features.keys())}.")
    image_shape = tuple(features[image_key].shape)
    if image_size is not None:
      image_shape = (image_size, image_size, image_shape[-1])
    elif None in image_shape:
      raise ValueError(
          f"TFDS {name!r} images vary in size ({image_shape}); set"
          " image_size to centre-crop and resize them to a fixed size.")
    self._image_key, self._label_key = image_key, label_key
    self._image_size = image_size
    self._eval = (None if eval_resize is None or image_size is None
                  else host_crops.EvalSpec(image_size, eval_resize))
    self.crop: host_crops.CropSpec | None = None
    self._metadata = tuple(
        k for k in METADATA_KEYS.get(name, ()) if k in features)
    import grain  # Imported lazily: ~1 s, needed only for TFDS sources.
    self._records = grain.MapDataset.source(source)
    self._source = self._records.map_with_index(self._to_example)
    self._size = len(source)
    label = features[label_key]
    self.info = base.DatasetInfo(
        name=name, split=split, modality="image",
        num_classes=label.num_classes, class_names=tuple(label.names),
        input_shape=image_shape, input_dtype="uint8",
        metadata_names=self._metadata,
        extras={"source": "tfds", "tfds_name": name, "tfds_split": tfds_split,
                "data_dir": None if data_dir is None else str(data_dir)})

  def _to_example(self, index: int, record: Mapping[str, Any]
                  ) -> base.Example:
    image = np.asarray(record[self._image_key], np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if self._eval is not None:
      image = host_crops.decode_eval(image, self._eval,
                                     channels=image.shape[-1])
    elif self._image_size is not None:
      image = image_ops.center_crop_resize(image, self._image_size)
    return {"x": image, **self._fields(index, record)}

  def _fields(self, index: int, record: Mapping[str, Any]
              ) -> dict[str, np.ndarray]:
    fields = {"label": np.asarray(record[self._label_key], np.int32),
              "index": np.asarray(index, np.int32)}
    for key in self._metadata:
      fields[key] = np.asarray(record[key], np.int32)
    return fields

  def with_host_crops(self, spec: host_crops.CropSpec) -> TfdsDataset:
    """This split, whose `get_views` draws `spec`'s crops of whole images."""
    new = copy.copy(self)
    new.crop = spec
    return new

  def get_views(self, indices: Sequence[int] | np.ndarray, *, epoch: int,
                seed: int) -> base.Example:
    """Training views: 'x' uint8 [B, V, h, w, C], crops of the whole
    images keyed by (seed, epoch, index, view) (`host_crops`)."""
    if self.crop is None:
      raise ValueError("get_views needs a crop spec: use with_host_crops.")
    idx = base.check_indices(indices, self._size)
    rows = []
    for i in idx:
      record = self._records[int(i)]
      image = np.asarray(record[self._image_key], np.uint8)
      image = image[..., None] if image.ndim == 2 else image
      views = host_crops.decode_train_views(
          image, self.crop, seed=seed, epoch=epoch, index=int(i),
          channels=image.shape[-1])
      rows.append({"x": views, **self._fields(int(i), record)})
    if not rows:
      return {"x": np.zeros((0, self.crop.num_views, *self.crop.size,
                             self.info.input_shape[-1]), np.uint8),
              **{k: np.zeros(0, np.int32)
                 for k in ("label", "index", *self._metadata)}}
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, i: int) -> base.Example:
    return self._source[base.check_index(i, self._size)]

  def get_batch(self, indices: Sequence[int] | np.ndarray) -> base.Example:
    """Examples at `indices` (1-D, length B), each field stacked to [B, ...]."""
    idx = base.check_indices(indices, self._size)
    examples = [self._source[int(i)] for i in idx]
    if not examples:
      return {"x": np.zeros((0, *self.info.input_shape), np.uint8),
              **{k: np.zeros(0, np.int32)
                 for k in ("label", "index", *self._metadata)}}
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}

  def __repr__(self) -> str:
    return (f"TfdsDataset(name={self.info.name!r}, split={self.info.split!r},"
            f" size={self._size})")
