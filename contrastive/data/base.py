"""The random-access dataset interface shared by every reader.

A dataset is a finite, indexable split: `len(ds)`, `ds[i]` (one example) and
`ds.get_batch(indices)` (examples stacked along a leading axis). Every example
is a dict of NumPy arrays with at least

  * 'x': the input (image [H, W, C] uint8; audio a float32 waveform [T],
    FSDD's [clip_samples]; sensor float32 [T, C], UCI HAPT's [window, 6]),
  * 'label': int32 scalar class id in [0, info.num_classes),
  * 'index': int32 scalar, the example's position in the split (per-example
    ids, e.g. for memory-bank or cluster-based negative sampling),

plus one int32 scalar per name in `info.metadata_names` ('speaker' for FSDD,
'subject' for UCI HAPT).
"""
from __future__ import annotations

import dataclasses
import operator
import os
import pathlib
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

Example = dict[str, np.ndarray]

MODALITIES = ("image", "audio", "sensor")

# `<project root>/../shared/data`: where the project's checkout finds the real
# datasets. Only a default: every reader takes an explicit `data_dir`.
DEFAULT_DATA_ROOT = pathlib.Path(__file__).resolve().parents[2].parent / (
    "shared/data")


def default_data_dir(name: str) -> pathlib.Path:
  """`../shared/data/<name>` relative to the project root."""
  return DEFAULT_DATA_ROOT / name


def default_cache_root() -> pathlib.Path:
  """`$XDG_CACHE_HOME/contrastive`, else `~/.cache/contrastive`: where
  downloaded datasets (`<root>/<name>/`) and parsed-array caches live, so
  that the data folders themselves are never written to."""
  root = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(root) / "contrastive"


class DataUnavailableError(Exception):
  """A dataset cannot be had: not found where the reader looked, or a fetch
  failed. The message is complete (what, where, the command that fixes it),
  so a launcher prints it alone instead of a traceback."""


class DataNotFoundError(DataUnavailableError, FileNotFoundError):
  """No copy of a dataset (or of a file it needs) where the reader looked."""


class FetchError(DataUnavailableError, OSError):
  """Downloading a dataset failed: unreachable URL, bad archive, or a file
  whose SHA-256 differs from the published one."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model and an evaluator need to know about a dataset split.

  Attributes:
    name: the registry name, e.g. 'fsdd'.
    split: the split this dataset holds, e.g. 'train'.
    modality: one of 'image', 'audio', 'sensor'.
    num_classes: labels lie in [0, num_classes).
    class_names: one name per class.
    input_shape: shape of one example's 'x'.
    input_dtype: NumPy dtype name of 'x', e.g. 'uint8' or 'float32'.
    metadata_names: names of the extra int32 fields of every example.
    extras: dataset-specific facts (speaker names, normalisation statistics,
      source paths); JSON-friendly values only.
  """

  name: str
  split: str
  modality: str
  num_classes: int
  class_names: tuple[str, ...]
  input_shape: tuple[int, ...]
  input_dtype: str
  metadata_names: tuple[str, ...] = ()
  extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.modality not in MODALITIES:
      raise ValueError(
          f"modality must be one of {MODALITIES}, got {self.modality!r}.")
    if len(self.class_names) != self.num_classes:
      raise ValueError(
          f"{self.name}: {len(self.class_names)} class names for"
          f" {self.num_classes} classes.")


@runtime_checkable
class Dataset(Protocol):
  """A finite split with random access (see the module docstring)."""

  info: DatasetInfo

  def __len__(self) -> int:
    ...

  def __getitem__(self, i: int) -> Example:
    ...

  def get_batch(self, indices: Sequence[int] | np.ndarray) -> Example:
    ...


def check_indices(indices: Sequence[int] | np.ndarray, size: int) -> np.ndarray:
  """Validates a 1-D array of non-negative indices below `size`; int64 copy."""
  idx = np.asarray(indices)
  if idx.ndim != 1:
    raise ValueError(f"indices must be 1-D, got shape {idx.shape}.")
  if idx.size and not np.issubdtype(idx.dtype, np.integer):
    raise ValueError(f"indices must be integers, got dtype {idx.dtype}.")
  idx = idx.astype(np.int64)
  if idx.size and (idx.min() < 0 or idx.max() >= size):
    raise IndexError(
        f"indices must lie in [0, {size}), got min {idx.min()} and max"
        f" {idx.max()}.")
  return idx


def check_index(i: int, size: int) -> int:
  """Python-style single index (negative counts from the end)."""
  try:
    i = operator.index(i)  # int, NumPy integer or 0-d integer array.
  except TypeError:
    raise TypeError(f"an example index must be an int, got {i!r}.") from None
  if not -size <= i < size:
    raise IndexError(f"index {i} out of range for a split of {size} examples.")
  return i % size


class ArrayDataset:
  """An in-memory split: equal-length arrays, one row per example.

  Args:
    arrays: 'x', 'label' and the metadata fields of `info`, each with leading
      dimension N. 'index' is added (0..N-1); do not pass it.
    info: the split's `DatasetInfo`.

  Example:
    ds = ArrayDataset({'x': np.zeros((4, 2), np.float32),
                       'label': np.arange(4, dtype=np.int32)}, info)
    ds.get_batch([3, 0])['label']  # -> [3, 0]
  """

  def __init__(self, arrays: Mapping[str, np.ndarray], info: DatasetInfo):
    required = ("x", "label", *info.metadata_names)
    if set(arrays) != set(required):
      raise ValueError(
          f"arrays must have exactly the fields {sorted(required)}, got"
          f" {sorted(arrays)}.")
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
      raise ValueError(f"arrays must share their first dimension, got {sizes}.")
    if arrays["x"].shape[1:] != tuple(info.input_shape):
      raise ValueError(
          f"x has example shape {arrays['x'].shape[1:]}, info says"
          f" {tuple(info.input_shape)}.")
    self._arrays = {k: np.asarray(v) for k, v in arrays.items()}
    self._size = sizes["x"]
    self.info = info

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, i: int) -> Example:
    i = check_index(i, self._size)
    example = {k: np.asarray(v[i]) for k, v in self._arrays.items()}
    example["index"] = np.asarray(i, np.int32)
    return example

  def get_batch(self, indices: Sequence[int] | np.ndarray) -> Example:
    """Examples at `indices` (1-D, length B), each field stacked to [B, ...]."""
    idx = check_indices(indices, self._size)
    batch = {k: v[idx] for k, v in self._arrays.items()}
    batch["index"] = idx.astype(np.int32)
    return batch

  def __repr__(self) -> str:
    return (f"ArrayDataset(name={self.info.name!r}, split={self.info.split!r},"
            f" size={self._size})")


def check_split(name: str, split: str, allowed: Sequence[str]) -> None:
  if split not in allowed:
    raise ValueError(
        f"{name} has splits {list(allowed)}, got split={split!r}.")


FILE_SOURCES = ("auto", "files")


def check_source(name: str, source: str) -> None:
  """`source` of a dataset read from its publisher's files only."""
  if source not in FILE_SOURCES:
    raise ValueError(
        f"{name} source must be one of {FILE_SOURCES} (it is read from the"
        f" publisher's files only), got {source!r}.")


def fix_command(name: str, data_dir: Any = None) -> str:
  """The one command that puts dataset `name` where its reader looks."""
  target = "" if data_dir is None else f" --data_dir={data_dir}"
  return f"python -m contrastive.data.fetch {name}{target}"


def missing_data_error(name: str, path: Any, what: str, where_to_get: str,
                       data_dir: Any = None) -> DataNotFoundError:
  """A `DataNotFoundError` naming where the reader looked, the command that
  fetches the data, and the publisher (for a copy made by hand)."""
  return DataNotFoundError(
      f"{name}: {what} (looked in {path}). To get it, run:"
      f" {fix_command(name, data_dir)}  (or set --config.data.data_dir to a"
      f" copy of the files from {where_to_get}).")
