"""`build_dataset(config, split)`: a dataset from a config, by name.

The config (an `ml_collections.ConfigDict` or any mapping) holds `name` and
the reader's options; any other field is an error that lists the allowed
ones. Names (`DATASETS`):

  * The three offline datasets share data_dir, source, download and
    cache_dir (where a copy is looked for and how it is fetched:
    `sources.locate`):
  * 'fashion_mnist': IDX files (`source='files'`), TFDS (`source='tfds'`), or
    `'auto'` (the default): the files if found, else a prepared TFDS copy.
  * 'fsdd': and clip_samples, sample_rate, test_indices, held_out_speaker
    (see `fsdd.load_fsdd`); source 'auto' or 'files'.
  * 'uci_hapt': and window, stride, include_transitions, test_subjects,
    standardize, use_cache (see `uci_hapt.load_uci_hapt`); source 'auto' or
    'files'.
  * 'cifar10', 'cifar100', 'stl10', 'imagenet2012', and 'tfds:<name>' for any
    TFDS image dataset: data_dir, image_size, image_key, label_key, download,
    eval_resize (see `tfds_source.TfdsDataset`).
  * 'image_folder:<path>' (or 'image_folder' with data_dir): a folder of
    `train/<class>/*.jpg` and `val/<class>/...`: data_dir, image_size,
    eval_resize, skip_unreadable, cache_dir (see
    `image_folder.ImageFolderDataset`); 'imagenet100' is such a folder
    (data_dir must name it).

Example:
  config = ml_collections.ConfigDict({"name": "fsdd", "data_dir": "/d/fsdd"})
  train = build_dataset(config, "train")
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from contrastive import config_sections
from contrastive.data import base
from contrastive.data import fashion_mnist
from contrastive.data import fsdd
from contrastive.data import image_folder
from contrastive.data import sources
from contrastive.data import tfds_source
from contrastive.data import uci_hapt

TFDS_PREFIX = "tfds:"
IMAGE_FOLDER_PREFIX = image_folder.PREFIX
FASHION_MNIST_SOURCES = ("auto", "files", "tfds")


def _tfds_builder(tfds_name: str) -> Callable[..., base.Dataset]:
  def build(split: str, *, data_dir: str | None = None,
            image_size: int | None = None, image_key: str = "image",
            label_key: str = "label", download: bool = False,
            eval_resize: int = 0):
    # eval_resize <= 0: the central square (see TfdsDataset).
    return tfds_source.TfdsDataset(
        tfds_name, split, data_dir=data_dir, image_size=image_size,
        image_key=image_key, label_key=label_key, download=download,
        eval_resize=eval_resize if eval_resize and eval_resize > 0 else None)
  return build


def _image_folder_builder(path: str | None) -> Callable[..., base.Dataset]:
  def build(split: str, *, data_dir: str | None = None,
            image_size: int = 224, eval_resize: int = 256,
            skip_unreadable: bool = False, cache_dir: str | None = None):
    root = data_dir or path
    if not root:
      raise base.DataNotFoundError(
          "image_folder: no folder given; name it in the dataset"
          f" ('{IMAGE_FOLDER_PREFIX}/data/imagenet100') or set"
          " --config.data.data_dir.")
    # eval_resize <= 0: centre crop at the image's own scale.
    return image_folder.ImageFolderDataset(
        root, split, image_size=image_size,
        eval_resize=eval_resize if eval_resize and eval_resize > 0 else None,
        skip_unreadable=skip_unreadable, cache_dir=cache_dir)
  return build


def _fashion_mnist(split: str, *, data_dir: str | None = None,
                   source: str = "auto", download: bool = False,
                   cache_dir: str | None = None) -> base.Dataset:
  """IDX files (`'files'`), TFDS (`'tfds'`), or `'auto'`: the IDX files if
  they are found (data_dir, else ../shared/data, Debian's package folder,
  the cache) or downloaded (`download`), else a prepared TFDS copy, so one
  config serves every machine. `download` with `'tfds'` lets TFDS prepare
  it."""
  if source not in FASHION_MNIST_SOURCES:
    raise ValueError(f"fashion_mnist source must be one of"
                     f" {FASHION_MNIST_SOURCES}, got {source!r}.")
  if source == "tfds":
    return tfds_source.TfdsDataset("fashion_mnist", split, data_dir=data_dir,
                                   download=download)
  try:
    return fashion_mnist.load_fashion_mnist(
        split, data_dir=data_dir, download=download, cache_dir=cache_dir)
  except base.DataNotFoundError:
    if source == "files":
      raise
  # 'auto' and no IDX files anywhere (nor a download asked for): a prepared
  # TFDS copy, else one error naming every place looked in (not a chain).
  try:
    return tfds_source.TfdsDataset("fashion_mnist", split)
  except FileNotFoundError:
    pass
  spec = sources.SPECS["fashion_mnist"]
  tried = [str(c) for c in sources.candidates("fashion_mnist", data_dir,
                                            cache_dir)]
  raise base.missing_data_error(
      "fashion_mnist", ", ".join([*tried, "the TFDS default folder"]),
      f"no {spec.layout} found, nor a prepared TFDS copy",
      spec.where_to_get, data_dir=data_dir)


DATASETS: Mapping[str, Callable[..., base.Dataset]] = {
    "fashion_mnist": _fashion_mnist,
    "fsdd": fsdd.load_fsdd,
    "uci_hapt": uci_hapt.load_uci_hapt,
    "cifar10": _tfds_builder("cifar10"),
    "cifar100": _tfds_builder("cifar100"),
    "stl10": _tfds_builder("stl10"),
    "imagenet2012": _tfds_builder("imagenet2012"),
    "image_folder": _image_folder_builder(None),
    # ImageNet-100 (CMC's 100 classes) as a folder: set data_dir.
    "imagenet100": _image_folder_builder(None),
}


def get_builder(name: str) -> Callable[..., base.Dataset]:
  """The builder of `name` (a key of `DATASETS` or 'tfds:<tfds name>')."""
  if name in DATASETS:
    return DATASETS[name]
  if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(
      name) > len(TFDS_PREFIX):
    return _tfds_builder(name[len(TFDS_PREFIX):])
  if isinstance(name, str) and name.startswith(IMAGE_FOLDER_PREFIX) and len(
      name) > len(IMAGE_FOLDER_PREFIX):
    return _image_folder_builder(name[len(IMAGE_FOLDER_PREFIX):])
  raise ValueError(
      f"unknown dataset name {name!r}; valid names are {sorted(DATASETS)},"
      f" '{TFDS_PREFIX}<name>' for a TFDS image dataset or"
      f" '{IMAGE_FOLDER_PREFIX}<path>' for a folder of class folders.")


def config_fields(name: str) -> tuple[str, ...]:
  """The config fields (besides `name`) that dataset `name` accepts."""
  params = inspect.signature(get_builder(name)).parameters
  return tuple(p for p in params if p != "split")


# The type of each field whose default is None, so that `default_config` can
# make it a typed placeholder that the command line can set.
_NONE_DEFAULT_TYPES = {"data_dir": str, "cache_dir": str,
                       "held_out_speaker": str, "image_size": int}


def default_config(name: str) -> dict[str, Any]:
  """`name` and every field dataset `name` accepts, at the reader's default.

  A config built from this (configs/common.py) lets every reader option be
  set from the command line (`--config.data.data_dir=/data/fsdd`); with an
  ml_collections config locked, a field absent from it could not be.
  Fields defaulting to None become typed placeholders (`placeholder`).
  """
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  fields = {"name": name}
  for field, param in inspect.signature(get_builder(name)).parameters.items():
    if field == "split":
      continue
    if param.default is None:
      if field not in _NONE_DEFAULT_TYPES:
        raise TypeError(f"{name}: field {field!r} defaults to None; add its"
                        " type to registry._NONE_DEFAULT_TYPES.")
      fields[field] = config_dict.placeholder(_NONE_DEFAULT_TYPES[field])
    else:
      fields[field] = param.default
  return fields


def build_dataset(config: Any, split: str) -> base.Dataset:
  """Builds split `split` of the dataset named by `config.name`.

  Args:
    config: ConfigDict or mapping with `name` and reader options (module
      docstring); a field set to None takes the reader's default.
    split: 'train' or 'test' (TFDS datasets also take TFDS split strings).

  Returns:
    A random-access `Dataset`: len, [i], get_batch(indices), info.

  Raises:
    ValueError: unknown name or config field (the message lists the valid
      ones), bad option values.
    DataNotFoundError: no copy of the data where the config says (or, with
      no data_dir, in any default place); the message names the places and
      the command that fetches it.
    FetchError: `download` was set and the download failed.

  Example:
    ds = build_dataset({"name": "uci_hapt", "window": 128}, "test")
  """
  fields = config_sections.as_dict(config, "the dataset config")
  if "name" not in fields:
    raise ValueError(f"the dataset config needs a 'name'; valid names are"
                     f" {sorted(DATASETS)} or '{TFDS_PREFIX}<name>'.")
  name = fields.pop("name")
  builder = get_builder(name)
  allowed = config_fields(name)
  config_sections.check_fields(fields, allowed, f"dataset {name!r}")
  options = {k: v for k, v in fields.items() if v is not None}
  return builder(split, **options)

