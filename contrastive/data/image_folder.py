"""A folder of class subfolders of images: `image_folder:<path>`.

The layout of ImageNet, ImageNet-100 and most users' own data::

    <root>/train/<class>/*.jpg|jpeg|png
    <root>/val/<class>/...          ('test' reads val/, validation/ or test/)

Class indices are the positions of the class folders of `train/` in sorted
order (so every split shares them). The file list of a split is cached on
first use (a JSON file under the cache folder, rebuilt when a class
folder's modification time changes, i.e. when files are added or removed).

`get_batch` gives evaluation images (short side resized, centre crop:
`host_crops.EvalSpec`); `with_host_crops(spec)` returns the dataset whose
`get_views(indices, epoch=, seed=)` gives each example's training views,
drawn from the whole image (`host_crops`), which `BatchIterator` uses.

Errors name what is wrong: a missing split folder, a class folder with no
images, an image that cannot be read (its path; with `skip_unreadable`,
files whose header cannot be read are left out of the list and counted in
`info.extras['skipped_files']`, and an image that fails later, while
decoding, is replaced by the next readable example of the split and counted
in `decode_failures`, with a warning naming it).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import warnings
from typing import Any, Sequence

import numpy as np

from contrastive.data import base
from contrastive.data import host_crops

PREFIX = "image_folder:"
EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLIT_FOLDERS = {"train": ("train",), "test": ("val", "validation", "test"),
                 "val": ("val", "validation")}
_CACHE_VERSION = 2


class UnreadableImageError(ValueError):
  """An image file that PIL cannot decode; the message names the file."""


def _split_dir(root: pathlib.Path, split: str) -> pathlib.Path:
  if split not in SPLIT_FOLDERS:
    raise ValueError(f"image_folder splits are {sorted(SPLIT_FOLDERS)}, got"
                     f" {split!r}.")
  for name in SPLIT_FOLDERS[split]:
    if (root / name).is_dir():
      return root / name
  looked = ", ".join(str(root / n) for n in SPLIT_FOLDERS[split])
  raise base.DataNotFoundError(
      f"image_folder: no {split!r} split under {root} (looked for {looked}"
      f"). The layout is {root}/train/<class>/*.jpg and"
      f" {root}/val/<class>/*.jpg.")


def _class_dirs(split_dir: pathlib.Path) -> list[str]:
  names = sorted(e.name for e in os.scandir(split_dir)
                 if e.is_dir() and not e.name.startswith("."))
  if not names:
    raise base.DataNotFoundError(
        f"image_folder: {split_dir} has no class folders (expected"
        f" {split_dir}/<class>/*.jpg).")
  return names


def _header_ok(path: str) -> bool:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      img.size  # pylint: disable=pointless-statement
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def _list_files(split_dir: pathlib.Path, classes: Sequence[str],
                check_headers: bool) -> dict[str, Any]:
  files, labels, skipped = [], [], []
  for label, name in enumerate(classes):
    folder = split_dir / name
    if not folder.is_dir():
      continue  # a class of train/ that this split lacks
    # Hidden files ('._x.jpg': macOS's resource forks) are not images.
    found = sorted(e.name for e in os.scandir(folder)
                   if e.is_file() and not e.name.startswith(".")
                   and e.name.lower().endswith(EXTENSIONS))
    if not found:
      raise ValueError(
          f"image_folder: class folder {folder} holds no images (*.jpg,"
          " *.jpeg, *.png); remove it or add its images.")
    for fname in found:
      rel = f"{name}/{fname}"
      if check_headers and not _header_ok(str(folder / fname)):
        skipped.append(rel)
        continue
      files.append(rel)
      labels.append(label)
  return {"files": files, "labels": labels, "skipped": skipped}


def _stamp(split_dir: pathlib.Path, classes: Sequence[str]) -> list:
  return [[c, os.stat(split_dir / c).st_mtime_ns]
          for c in classes if (split_dir / c).is_dir()]


def _cache_path(cache_dir: pathlib.Path, split_dir: pathlib.Path,
                check_headers: bool) -> pathlib.Path:
  key = hashlib.sha256(
      f"{split_dir.resolve()}|{check_headers}".encode()).hexdigest()[:16]
  return cache_dir / "image_folder" / f"{split_dir.name}-{key}.json"


def load_file_list(split_dir: pathlib.Path, classes: Sequence[str], *,
                   check_headers: bool = False,
                   cache_dir: pathlib.Path | None = None) -> dict[str, Any]:
  """{'files': paths relative to `split_dir`, 'labels', 'skipped'}, from
  the cache when it is current, else listed (and cached)."""
  stamp = _stamp(split_dir, classes)
  path = None
  if cache_dir is not None:
    path = _cache_path(cache_dir, split_dir, check_headers)
    try:
      cached = json.loads(path.read_text())
      if (cached.get("version") == _CACHE_VERSION
          and cached.get("classes") == list(classes)
          and cached.get("stamp") == stamp):
        return cached
    except (OSError, ValueError):
      pass
  listing = _list_files(split_dir, classes, check_headers)
  listing.update(version=_CACHE_VERSION, classes=list(classes), stamp=stamp)
  if path is not None:
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      tmp = path.with_suffix(f".{os.getpid()}.tmp")
      tmp.write_text(json.dumps(listing))
      os.replace(tmp, path)
    except OSError:
      pass  # a read-only cache only costs the listing next time
  return listing


class ImageFolderDataset:
  """One split of an image folder behind the `Dataset` interface.

  Args:
    root: the folder holding train/ and val/.
    split: 'train', or 'test' (val/, validation/ or test/), or 'val'.
    image_size: side of the evaluation images (and of `input_shape`).
    eval_resize: the short side before the centre crop (256 for 224);
      None crops `image_size` pixels at the image's own scale.
    skip_unreadable: leave out and count unreadable files (see module
      docstring) instead of raising.
    cache_dir: where the file list is cached; None: the default cache
      (`~/.cache/contrastive`); '' disables the cache.
    channels: 3 (RGB) or 1 (grayscale).

  Example:
    ds = ImageFolderDataset("/data/imagenet100", "train")
    ds.get_batch([0, 1])["x"].shape       # (2, 224, 224, 3), evaluation
    train = ds.with_host_crops(host_crops.CropSpec(224, scale=(0.2, 1)))
    train.get_views([0, 1], epoch=0, seed=0)["x"].shape  # (2, 2, 224, 224, 3)
  """

  def __init__(self, root: str | os.PathLike, split: str, *,
               image_size: int = 224, eval_resize: int | None = 256,
               skip_unreadable: bool = False,
               cache_dir: str | os.PathLike | None = None,
               channels: int = 3):
    self.root = pathlib.Path(root).expanduser()
    if not self.root.is_dir():
      raise base.DataNotFoundError(
          f"image_folder: {self.root} is not a folder (expected"
          f" {self.root}/train/<class>/*.jpg and {self.root}/val/...).")
    if channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {channels}.")
    self.classes = tuple(_class_dirs(_split_dir(self.root, "train")))
    self.split_dir = _split_dir(self.root, split)
    unknown = sorted(set(_class_dirs(self.split_dir)) - set(self.classes))
    if unknown:
      raise ValueError(
          f"image_folder: {self.split_dir} has class folders that train/"
          f" lacks: {unknown[:5]}{' ...' if len(unknown) > 5 else ''}.")
    if cache_dir is None:
      cache = base.default_cache_root()
    else:
      cache = pathlib.Path(cache_dir) if str(cache_dir) else None
    listing = load_file_list(self.split_dir, self.classes,
                             check_headers=skip_unreadable, cache_dir=cache)
    self._files = listing["files"]
    self._labels = np.asarray(listing["labels"], np.int32)
    if not self._files:
      raise ValueError(f"image_folder: no readable images in {self.split_dir}.")
    self.eval_spec = host_crops.EvalSpec(image_size, eval_resize)
    self.crop: host_crops.CropSpec | None = None
    self.skip_unreadable, self.channels = bool(skip_unreadable), channels
    self.decode_failures = 0
    self.info = base.DatasetInfo(
        name=PREFIX + str(root), split=split, modality="image",
        num_classes=len(self.classes), class_names=self.classes,
        input_shape=(*self.eval_spec.size, channels), input_dtype="uint8",
        extras={"source": "image_folder", "root": str(self.root),
                "split_dir": str(self.split_dir),
                "skipped_files": len(listing["skipped"]),
                "eval_resize": eval_resize})

  def path(self, i: int) -> str:
    return str(self.split_dir / self._files[i])

  def with_host_crops(self, spec: host_crops.CropSpec) -> ImageFolderDataset:
    """This split, whose `get_views` draws `spec`'s crops."""
    new = copy.copy(self)
    new.crop = spec
    return new

  def _decode(self, i: int, fn) -> tuple[np.ndarray, int]:
    """fn(path) for example i, or for the next readable one when skipping."""
    for attempt in range(len(self._files)):
      j = (i + attempt) % len(self._files)
      try:
        return fn(self.path(j)), j
      except Exception as e:  # pylint: disable=broad-except
        if not self.skip_unreadable:
          raise UnreadableImageError(
              f"image_folder: cannot read image {self.path(j)}: {e}"
              " (set skip_unreadable=True to skip such files).") from e
        self.decode_failures += 1
        warnings.warn(f"image_folder: skipping unreadable image"
                      f" {self.path(j)}: {e}")
    raise UnreadableImageError(f"image_folder: no image of {self.split_dir}"
                               " could be read.")

  def _fields(self, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {"label": self._labels[idx], "index": idx.astype(np.int32)}

  def __len__(self) -> int:
    return len(self._files)

  def __getitem__(self, i: int) -> base.Example:
    i = base.check_index(i, len(self))
    batch = self.get_batch([i])
    return {k: v[0] for k, v in batch.items()}

  def get_batch(self, indices: Sequence[int] | np.ndarray) -> base.Example:
    """Evaluation images at `indices`: 'x' uint8 [B, size, size, C]."""
    idx = base.check_indices(indices, len(self))
    x = np.empty((len(idx), *self.info.input_shape), np.uint8)
    used = idx.copy()  # a skipped image's row holds its substitute
    for row, i in enumerate(idx):
      x[row], used[row] = self._decode(int(i), lambda p: host_crops.decode_eval(
          p, self.eval_spec, channels=self.channels))
    return {"x": x, **self._fields(used)}

  def get_views(self, indices: Sequence[int] | np.ndarray, *, epoch: int,
                seed: int) -> base.Example:
    """Training views at `indices`: 'x' uint8 [B, V, h, w, C], the crops
    of `self.crop` keyed by (seed, epoch, index, view)."""
    if self.crop is None:
      raise ValueError("get_views needs a crop spec: use with_host_crops.")
    idx = base.check_indices(indices, len(self))
    spec = self.crop
    x = np.empty((len(idx), spec.num_views, *spec.size, self.channels),
                 np.uint8)
    used = idx.copy()
    for row, i in enumerate(idx):
      x[row], used[row] = self._decode(int(i), lambda p, i=int(i): (
          host_crops.decode_train_views(p, spec, seed=seed, epoch=epoch,
                                        index=i, channels=self.channels)))
    return {"x": x, **self._fields(used)}

  def __repr__(self) -> str:
    return (f"ImageFolderDataset(root={str(self.root)!r},"
            f" split={self.info.split!r}, size={len(self)})")
