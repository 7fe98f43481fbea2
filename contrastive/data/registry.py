"""`build_dataset(config, split)`: a dataset from a config, by name.

The config (an `ml_collections.ConfigDict` or any mapping) holds `name` and
the reader's options; any other field is an error that lists the allowed
ones. Names (`DATASETS`):

  * 'fashion_mnist': IDX files (`source='files'`, the default) or TFDS
    (`source='tfds'`). Fields: data_dir, source, and with TFDS download.
  * 'fsdd': data_dir, clip_samples, sample_rate, test_indices,
    held_out_speaker (see `fsdd.load_fsdd`).
  * 'uci_hapt': data_dir, window, stride, include_transitions, test_subjects,
    standardize, cache_dir, use_cache (see `uci_hapt.load_uci_hapt`).
  * 'cifar10', 'cifar100', 'stl10', 'imagenet2012', and 'tfds:<name>' for any
    TFDS image dataset: data_dir, image_size, image_key, label_key, download
    (see `tfds_source.TfdsDataset`).

Example:
  config = ml_collections.ConfigDict({"name": "fsdd", "data_dir": "/d/fsdd"})
  train = build_dataset(config, "train")
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from contrastive.data import base
from contrastive.data import fashion_mnist
from contrastive.data import fsdd
from contrastive.data import tfds_source
from contrastive.data import uci_hapt

TFDS_PREFIX = "tfds:"
FASHION_MNIST_SOURCES = ("auto", "files", "tfds")


def _tfds_builder(tfds_name: str) -> Callable[..., base.Dataset]:
  def build(split: str, *, data_dir: str | None = None,
            image_size: int | None = None, image_key: str = "image",
            label_key: str = "label", download: bool = False):
    return tfds_source.TfdsDataset(
        tfds_name, split, data_dir=data_dir, image_size=image_size,
        image_key=image_key, label_key=label_key, download=download)
  return build


def _fashion_mnist(split: str, *, data_dir: str | None = None,
                   source: str = "auto",
                   download: bool = False) -> base.Dataset:
  """IDX files (`'files'`), TFDS (`'tfds'`), or `'auto'`: the IDX files if
  they are found (data_dir, ../shared/data, Debian's package path), else a
  TFDS copy, so one config serves every machine."""
  if source == "auto":
    try:
      return _fashion_mnist(split, data_dir=data_dir, source="files")
    except FileNotFoundError as files_error:
      try:
        return _fashion_mnist(split, data_dir=None, source="tfds",
                              download=download)
      except FileNotFoundError as tfds_error:
        raise FileNotFoundError(
            f"Fashion-MNIST not found as IDX files ({files_error}) nor in"
            f" TFDS ({tfds_error}).") from tfds_error
  if source == "files":
    if download:
      raise ValueError("download applies to source='tfds' only; the IDX files"
                       f" come from {fashion_mnist.WHERE_TO_GET}.")
    return fashion_mnist.load_fashion_mnist(split, data_dir=data_dir)
  if source == "tfds":
    return tfds_source.TfdsDataset("fashion_mnist", split, data_dir=data_dir,
                                   download=download)
  raise ValueError(f"fashion_mnist source must be one of"
                   f" {FASHION_MNIST_SOURCES}, got {source!r}.")


DATASETS: Mapping[str, Callable[..., base.Dataset]] = {
    "fashion_mnist": _fashion_mnist,
    "fsdd": fsdd.load_fsdd,
    "uci_hapt": uci_hapt.load_uci_hapt,
    "cifar10": _tfds_builder("cifar10"),
    "cifar100": _tfds_builder("cifar100"),
    "stl10": _tfds_builder("stl10"),
    "imagenet2012": _tfds_builder("imagenet2012"),
}


def _as_dict(config: Any) -> dict[str, Any]:
  if hasattr(config, "to_dict"):  # ml_collections.ConfigDict
    return dict(config.to_dict())
  if isinstance(config, Mapping):
    return dict(config)
  raise ValueError(
      f"config must be a ConfigDict or a mapping, got {type(config).__name__}.")


def get_builder(name: str) -> Callable[..., base.Dataset]:
  """The builder of `name` (a key of `DATASETS` or 'tfds:<tfds name>')."""
  if name in DATASETS:
    return DATASETS[name]
  if isinstance(name, str) and name.startswith(TFDS_PREFIX) and len(
      name) > len(TFDS_PREFIX):
    return _tfds_builder(name[len(TFDS_PREFIX):])
  raise ValueError(
      f"unknown dataset name {name!r}; valid names are {sorted(DATASETS)} or"
      f" '{TFDS_PREFIX}<name>' for a TFDS image dataset.")


def config_fields(name: str) -> tuple[str, ...]:
  """The config fields (besides `name`) that dataset `name` accepts."""
  params = inspect.signature(get_builder(name)).parameters
  return tuple(p for p in params if p != "split")


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
    FileNotFoundError: the data is not where the config says.

  Example:
    ds = build_dataset({"name": "uci_hapt", "window": 128}, "test")
  """
  fields = _as_dict(config)
  if "name" not in fields:
    raise ValueError(f"the dataset config needs a 'name'; valid names are"
                     f" {sorted(DATASETS)} or '{TFDS_PREFIX}<name>'.")
  name = fields.pop("name")
  builder = get_builder(name)
  allowed = config_fields(name)
  unknown = sorted(set(fields) - set(allowed))
  if unknown:
    raise ValueError(f"unknown config field(s) {unknown} for dataset {name!r};"
                     f" allowed fields are {list(allowed)}.")
  options = {k: v for k, v in fields.items() if v is not None}
  return builder(split, **options)

