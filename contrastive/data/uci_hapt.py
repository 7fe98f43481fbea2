"""UCI HAPT raw IMU signals cut into labelled windows.

Reyes-Ortiz, Oneto, Sama, Parra, Anguita (2016), "Transition-Aware Human
Activity Recognition Using Smartphones" (UCI "Smartphone-Based Recognition of
Human Activities and Postural Transitions"). File parsing and caching live in
`hapt_files`; this module makes windows.

Windowing: each labelled segment of `labels.txt` is cut into windows of
`window` rows every `stride` rows, starting at the segment's first row, and
only windows lying WHOLLY inside the segment are kept. A window therefore has
exactly one activity, windows never straddle two activities, and rows outside
every segment (unlabelled) are never used; a segment shorter than `window`
gives no window (this drops many postural transitions, which last 1-5 s).
Each window is float32 [window, 6]: acc x, y, z (g), gyro x, y, z (rad/s).

Labels: without transitions, activities 1-6 become classes 0-5; with
`include_transitions`, activities 1-12 become classes 0-11.

Split: subject-disjoint, 'test' = `test_subjects` (default 22-30), 'train' =
the other subjects (1-21). 'subject' holds the subject number (1-30) as in
the file names.

Standardisation (optional): per-channel mean and standard deviation over all
samples of the TRAIN windows (with the same window options), applied to
either split; the statistics are in `info.extras['channel_mean'/'_std']`.
"""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from contrastive.data import base
from contrastive.data import sources
from contrastive.data import hapt_files

NUM_BASIC_ACTIVITIES = 6
NUM_ACTIVITIES = 12
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def read_activity_names(folder: pathlib.Path) -> tuple[str, ...]:
  """Names of activities 1..12 from `activity_labels.txt` ('1 WALKING')."""
  path = folder / "activity_labels.txt"
  names = {}
  for line in path.read_text().splitlines():
    if line.strip():
      number, _, name = line.strip().partition(" ")
      names[int(number)] = name.strip()
  if sorted(names) != list(range(1, NUM_ACTIVITIES + 1)):
    raise ValueError(f"{path} must name activities 1..{NUM_ACTIVITIES}, got"
                     f" {sorted(names)}.")
  return tuple(names[a] for a in range(1, NUM_ACTIVITIES + 1))


def window_starts(
    recordings: hapt_files.HaptRecordings, window: int, stride: int,
    num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Windows wholly inside labelled segments of activities 1..num_classes.

  Args:
    recordings: parsed sessions.
    window: rows per window.
    stride: rows between consecutive window starts within a segment.
    num_classes: the activities kept are 1..num_classes.

  Returns:
    (starts, labels, subjects), each [W]: the first row of each window in
    `recordings.signals`, the class (activity - 1) and the subject number.
  """
  session_of = {int(e): s for s, e in enumerate(recordings.experiments)}
  starts, labels, subjects = [], [], []
  for experiment, user, activity, first, last in recordings.labels:
    if not 1 <= activity <= num_classes:
      continue
    s = session_of.get(int(experiment))
    if s is None or recordings.users[s] != user:
      raise ValueError(
          f"labels.txt row ({experiment}, {user}, ...) names a session with"
          " no acc_expEE_userUU.txt / gyro_expEE_userUU.txt file.")
    length = recordings.offsets[s + 1] - recordings.offsets[s]
    if not 1 <= first <= last <= length:
      raise ValueError(
          f"labels.txt segment rows {first}..{last} of experiment"
          f" {experiment} fall outside its {length} rows.")
    count = max(0, (last - first + 1 - window) // stride + 1)
    offset = recordings.offsets[s] + first - 1
    starts.append(offset + stride * np.arange(count, dtype=np.int64))
    labels.append(np.full(count, activity - 1, np.int32))
    subjects.append(np.full(count, user, np.int32))
  if not starts:
    return (np.zeros(0, np.int64), np.zeros(0, np.int32),
            np.zeros(0, np.int32))
  return (np.concatenate(starts), np.concatenate(labels),
          np.concatenate(subjects))


def _gather(signals: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
  return signals[starts[:, None] + np.arange(window)]


def load_uci_hapt(
    split: str,
    *,
    data_dir: str | pathlib.Path | None = None,
    source: str = "auto",
    download: bool = False,
    cache_dir: str | pathlib.Path | None = None,
    window: int = 128,
    stride: int = 64,
    include_transitions: bool = False,
    test_subjects: Sequence[int] = tuple(range(22, 31)),
    standardize: bool = False,
    use_cache: bool = True,
) -> base.ArrayDataset:
  """Labelled HAPT windows as an `ArrayDataset` (see the module docstring).

  Args:
    split: 'train' or 'test'.
    data_dir: the release folder (RawData/, activity_labels.txt); None
      tries `../shared/data/uci_hapt` (from the project root), then
      `<cache_dir>/uci_hapt`.
    source: 'auto' or 'files' (the same here: HAPT is read from the
      publisher's files only); the field exists so that every offline
      dataset takes the same data options.
    download: when no copy is found, download the publisher's files
      (SHA-256 checked) into `data_dir`, else `<cache_dir>/uci_hapt`.
    cache_dir: the cache root, for downloads and for the parsed-array
      cache; None means `~/.cache/contrastive` (or
      `$XDG_CACHE_HOME/contrastive`).
    window: rows per window (128 = 2.56 s at 50 Hz).
    stride: rows between window starts (64 = 50% overlap).
    include_transitions: keep the postural transitions (activities 7-12).
    test_subjects: subject numbers of the 'test' split.
    standardize: subtract the train split's per-channel mean and divide by
      its per-channel standard deviation.
    use_cache: False neither reads nor writes the `.npz` cache file.

  Returns:
    Examples {'x': float32 [window, 6], 'label': int32, 'subject': int32,
    'index': int32}.

  Example:
    ds = load_uci_hapt("train", data_dir="/data/uci_hapt")
    ds.info.num_classes, ds[0]["x"].shape  # 6, (128, 6)
  """
  base.check_split("uci_hapt", split, ("train", "test"))
  base.check_source("uci_hapt", source)
  if window < 1 or stride < 1:
    raise ValueError(f"window and stride must be >= 1, got {window} and"
                     f" {stride}.")
  folder = sources.locate("uci_hapt", data_dir, cache_dir=cache_dir,
                        download=download)
  recordings = hapt_files.load_recordings(
      folder, cache_dir=cache_dir, use_cache=use_cache)
  activity_names = read_activity_names(folder)
  num_classes = NUM_ACTIVITIES if include_transitions else NUM_BASIC_ACTIVITIES
  starts, labels, subjects = window_starts(
      recordings, window, stride, num_classes)
  test_subjects = sorted({int(s) for s in test_subjects})
  is_test = np.isin(subjects, test_subjects)
  keep = is_test if split == "test" else ~is_test
  if not keep.any():
    raise ValueError(
        f"uci_hapt split {split!r} is empty with test_subjects="
        f"{test_subjects} (subjects present: {np.unique(subjects).tolist()}).")
  x = _gather(recordings.signals, starts[keep], window)
  extras = {"data_dir": str(folder), "channels": CHANNELS,
            "activity_names": activity_names, "test_subjects": test_subjects,
            "sample_rate": 50}
  if standardize:
    if is_test.all():
      raise ValueError("standardize needs a non-empty train split, but every"
                       f" subject is in test_subjects={test_subjects}.")
    train = x if split == "train" else _gather(
        recordings.signals, starts[~is_test], window)
    mean = train.mean(axis=(0, 1), dtype=np.float64)
    std = train.std(axis=(0, 1), dtype=np.float64)
    if np.any(std == 0):
      raise ValueError(f"a channel is constant over the train windows (std"
                       f" {std.tolist()}); cannot standardise.")
    x = ((x - mean) / std).astype(np.float32)
    extras.update(channel_mean=mean.tolist(), channel_std=std.tolist())
  info = base.DatasetInfo(
      name="uci_hapt", split=split, modality="sensor",
      num_classes=num_classes, class_names=activity_names[:num_classes],
      input_shape=(window, len(CHANNELS)), input_dtype="float32",
      metadata_names=("subject",), extras=extras)
  return base.ArrayDataset(
      {"x": x, "label": labels[keep], "subject": subjects[keep]}, info)
