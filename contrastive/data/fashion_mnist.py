"""Fashion-MNIST from the publisher's IDX files (no TensorFlow, no TFDS).

Xiao, Rasul and Vollgraf (2017), "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms". The folder holds the four files of
the release, gzip-compressed (`*-ubyte.gz`, as published) or not:
`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`. Splits: 'train' (60,000) and 'test' (10,000).
Where the folder is looked for, and how it is fetched: `sources.locate`.
"""
from __future__ import annotations

import gzip
import pathlib

import numpy as np

from contrastive.data import base
from contrastive.data import sources

WHERE_TO_GET = (
    "https://github.com/zalandoresearch/fashion-mnist (the four *-ubyte.gz"
    " files in data/fashion), or the Debian/Ubuntu package"
    " dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)")
DEBIAN_DIR = sources.SPECS["fashion_mnist"].system_dirs[0]
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILE_STEMS = {"train": "train", "test": "t10k"}

# IDX type codes (third byte of the magic number) -> big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"),
               0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
  """Parses the bytes of one (uncompressed) IDX file.

  Layout (LeCun's MNIST page): magic `00 00 TT NN` with TT the element type
  and NN the number of dimensions, then NN big-endian uint32 sizes, then the
  elements in row-major order.

  Args:
    data: the file's bytes.
    source: a name for error messages (the file path).

  Returns:
    The array, shape given by the header, dtype converted to native order.

  Example:
    parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))  # -> array([7, 9], u1)
  """
  if len(data) < 4 or data[0] != 0 or data[1] != 0:
    raise ValueError(f"{source} is not an IDX file: bad magic number"
                     f" {data[:4].hex() or '(empty)'}.")
  code, ndim = data[2], data[3]
  if code not in _IDX_DTYPES:
    raise ValueError(f"{source}: unknown IDX element type 0x{code:02x};"
                     f" allowed {[hex(c) for c in _IDX_DTYPES]}.")
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(f"{source}: truncated IDX header.")
  shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, offset=4))
  dtype = _IDX_DTYPES[code]
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != expected:
    raise ValueError(
        f"{source}: IDX header says shape {shape} ({expected} bytes) but the"
        f" file has {len(data)} bytes (truncated or corrupt).")
  array = np.frombuffer(data, dtype, offset=header).reshape(shape)
  return array.astype(dtype.newbyteorder("="))


def _read_idx(path: pathlib.Path) -> np.ndarray:
  try:
    if path.suffix == ".gz":
      with gzip.open(path, "rb") as f:
        data = f.read()
    else:
      data = path.read_bytes()
  except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError.
    raise ValueError(f"cannot read {path}: {e}. Fashion-MNIST comes from"
                     f" {WHERE_TO_GET}.") from e
  return parse_idx(data, str(path))


def _find_file(folder: pathlib.Path, name: str) -> pathlib.Path | None:
  for candidate in (folder / f"{name}.gz", folder / name):
    if candidate.is_file():
      return candidate
  return None


def _require_file(folder: pathlib.Path, name: str) -> pathlib.Path:
  path = _find_file(folder, name)
  if path is None:
    raise base.missing_data_error(
        "fashion_mnist", folder, f"no {name}.gz (or {name})", WHERE_TO_GET)
  return path


def resolve_dir(data_dir: str | pathlib.Path | None, *,
                cache_dir: str | pathlib.Path | None = None,
                download: bool = False) -> pathlib.Path:
  """The folder to read: `data_dir`, else the first of `../shared/data`,
  Debian's folder and the cache that holds the files (`sources.locate`).

  Raises:
    DataNotFoundError: no candidate folder holds the four IDX files (the
      message names them and the command that fetches the data).
  """
  return sources.locate("fashion_mnist", data_dir, cache_dir=cache_dir,
                      download=download)


def load_fashion_mnist_arrays(
    folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """Images uint8 [N, 28, 28, 1] and labels int32 [N] of one split."""
  base.check_split("fashion_mnist", split, tuple(_FILE_STEMS))
  stem = _FILE_STEMS[split]
  images = _read_idx(_require_file(folder, f"{stem}-images-idx3-ubyte"))
  labels = _read_idx(_require_file(folder, f"{stem}-labels-idx1-ubyte"))
  if images.ndim != 3 or images.dtype != np.uint8:
    raise ValueError(f"{folder}: {stem} images must be uint8 [N, 28, 28], got"
                     f" {images.dtype} {images.shape}.")
  if labels.ndim != 1 or len(labels) != len(images):
    raise ValueError(f"{folder}: {len(images)} {stem} images but labels of"
                     f" shape {labels.shape}.")
  if labels.size and labels.max() >= len(CLASS_NAMES):
    raise ValueError(f"{folder}: {stem} labels go up to {labels.max()}, but"
                     f" Fashion-MNIST has {len(CLASS_NAMES)} classes.")
  return images[..., None], labels.astype(np.int32)


def load_fashion_mnist(
    split: str, *, data_dir: str | pathlib.Path | None = None,
    download: bool = False, cache_dir: str | pathlib.Path | None = None
) -> base.ArrayDataset:
  """Fashion-MNIST from IDX files as an in-memory `ArrayDataset`.

  Args:
    split: 'train' (60,000 images) or 'test' (10,000).
    data_dir: the folder with the IDX files; None tries
      `../shared/data/fashion_mnist` (from the project root),
      `/usr/share/datasets/fashion-mnist` (Debian's dataset-fashion-mnist)
      and `<cache_dir>/fashion_mnist`.
    download: when no copy is found, download the publisher's files
      (SHA-256 checked) into `data_dir`, else `<cache_dir>/fashion_mnist`.
    cache_dir: the cache root; None means `~/.cache/contrastive`.

  Returns:
    Examples {'x': uint8 [28, 28, 1], 'label': int32, 'index': int32}.

  Example:
    ds = load_fashion_mnist("test", data_dir="/data/fashion_mnist")
    ds.get_batch(range(8))["x"].shape  # (8, 28, 28, 1)
  """
  base.check_split("fashion_mnist", split, tuple(_FILE_STEMS))
  folder = resolve_dir(data_dir, cache_dir=cache_dir, download=download)
  images, labels = load_fashion_mnist_arrays(folder, split)
  info = base.DatasetInfo(
      name="fashion_mnist", split=split, modality="image",
      num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES,
      input_shape=images.shape[1:], input_dtype="uint8",
      extras={"source": "files", "data_dir": str(folder)})
  return base.ArrayDataset({"x": images, "label": labels}, info)
