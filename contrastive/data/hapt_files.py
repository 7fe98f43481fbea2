"""Parsing of the UCI HAPT raw files, with a parsed-array cache.

The release (Reyes-Ortiz, Oneto, Sama, Parra, Anguita 2016, UCI "Smartphone-
Based Recognition of Human Activities and Postural Transitions") holds, under
`RawData/`, one `acc_expEE_userUU.txt` and one `gyro_expEE_userUU.txt` per
recording session (rows of 3 floats at 50 Hz) and `labels.txt` (rows
`experiment user activity start end`). `start` and `end` are read as 1-based
inclusive row numbers, as written by the release's MATLAB tooling: a segment
covers Python rows `[start - 1, end)`. Consecutive segments in `labels.txt`
are `end + 1 == next start`, which is what inclusive bounds produce.

Parsing the 122 text files (~106 MB) takes a few seconds, so the parsed
arrays are cached as one `.npz` in a user cache folder (default
`$XDG_CACHE_HOME/contrastive` or `~/.cache/contrastive`), keyed by the data
folder and the size and modification time of every file; the data folder is
never written to. Within a process, the last parses are also kept in memory.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import pathlib
import re
import tempfile
import zipfile

import numpy as np

from contrastive.data import base

WHERE_TO_GET = (
    "the UCI Machine Learning Repository, https://archive.ics.uci.edu ("
    '"Smartphone-Based Recognition of Human Activities and Postural'
    ' Transitions", RawData/ folder)')
_SESSION_RE = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")
_CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class HaptRecordings:
  """All sessions' signals, concatenated.

  Attributes:
    signals: float32 [R, 6], channels acc x, y, z (g), gyro x, y, z (rad/s).
    offsets: int64 [S + 1]; session s spans rows offsets[s]:offsets[s + 1].
    experiments: int64 [S], the experiment number of each session.
    users: int64 [S], the subject of each session.
    labels: int64 [L, 5], rows of labels.txt (experiment, user, activity,
      start, end), bounds 1-based inclusive.
  """

  signals: np.ndarray
  offsets: np.ndarray
  experiments: np.ndarray
  users: np.ndarray
  labels: np.ndarray


def _load_table(path: pathlib.Path, columns: int) -> np.ndarray:
  try:
    table = np.loadtxt(path, dtype=np.float64, ndmin=2)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot parse {path}: {e}. UCI HAPT comes from"
                     f" {WHERE_TO_GET}.") from e
  if table.shape[1] != columns:
    raise ValueError(f"{path}: expected {columns} columns per row, got"
                     f" shape {table.shape}.")
  return table


def _session_files(raw: pathlib.Path) -> list[tuple[int, int, pathlib.Path]]:
  sessions = []
  for path in sorted(raw.glob("acc_exp*_user*.txt")):
    match = _SESSION_RE.match(path.name)
    if match:
      sessions.append((int(match[1]), int(match[2]), path))
  return sessions


def check_layout(folder: pathlib.Path) -> pathlib.Path:
  """Returns `folder/RawData` after checking the release's files are there."""
  if not folder.is_dir():
    raise base.missing_data_error(
        "uci_hapt", folder, "folder does not exist", WHERE_TO_GET)
  raw = folder / "RawData"
  if not (raw / "labels.txt").is_file():
    raise base.missing_data_error(
        "uci_hapt", raw, "no RawData/labels.txt", WHERE_TO_GET)
  if not _session_files(raw):
    raise base.missing_data_error(
        "uci_hapt", raw, "no RawData/acc_expEE_userUU.txt files",
        WHERE_TO_GET)
  if not (folder / "activity_labels.txt").is_file():
    raise base.missing_data_error(
        "uci_hapt", folder, "no activity_labels.txt", WHERE_TO_GET)
  return raw


def parse_recordings(folder: pathlib.Path) -> HaptRecordings:
  """Parses every session of `folder/RawData` (no cache)."""
  raw = check_layout(folder)
  signals, offsets, experiments, users = [], [0], [], []
  for experiment, user, acc_path in _session_files(raw):
    gyro_path = raw / acc_path.name.replace("acc_", "gyro_", 1)
    if not gyro_path.is_file():
      raise base.missing_data_error(
          "uci_hapt", gyro_path, f"no gyroscope file for {acc_path.name}",
          WHERE_TO_GET)
    acc, gyro = _load_table(acc_path, 3), _load_table(gyro_path, 3)
    if len(acc) != len(gyro):
      raise ValueError(f"{acc_path} has {len(acc)} rows but {gyro_path} has"
                       f" {len(gyro)}; the two must be row-aligned.")
    signals.append(np.concatenate([acc, gyro], axis=1).astype(np.float32))
    offsets.append(offsets[-1] + len(acc))
    experiments.append(experiment)
    users.append(user)
  labels = _load_table(raw / "labels.txt", 5)
  if np.any(labels != np.round(labels)):
    raise ValueError(f"{raw / 'labels.txt'}: values must be integers.")
  return HaptRecordings(
      signals=np.concatenate(signals), offsets=np.asarray(offsets, np.int64),
      experiments=np.asarray(experiments, np.int64),
      users=np.asarray(users, np.int64), labels=labels.astype(np.int64))


def default_cache_dir() -> pathlib.Path:
  return base.default_cache_root()


def cache_key(folder: pathlib.Path) -> str:
  """A hash of the folder path and every raw file's name, size and mtime."""
  raw = check_layout(folder)
  digest = hashlib.sha256(f"v{_CACHE_VERSION}:{folder.resolve()}".encode())
  for path in sorted(raw.iterdir()):
    stat = path.stat()
    digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
  return digest.hexdigest()[:24]


def _read_cache(path: pathlib.Path) -> HaptRecordings | None:
  try:
    with np.load(path) as data:
      return HaptRecordings(**{f.name: data[f.name]
                               for f in dataclasses.fields(HaptRecordings)})
  except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
    logging.warning("ignoring unreadable HAPT cache file %s", path)
    return None


def _write_cache(path: pathlib.Path, recordings: HaptRecordings) -> None:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed: a concurrent reader never
    # sees half a file.
    with tempfile.NamedTemporaryFile(
        dir=path.parent, suffix=".npz.tmp", delete=False) as f:
      np.savez(f, **dataclasses.asdict(recordings))
    os.replace(f.name, path)
  except OSError as e:
    logging.warning("could not write the HAPT cache %s: %s", path, e)


@functools.lru_cache(maxsize=2)
def _load_cached(folder: str, key: str, cache_dir: str | None
                 ) -> HaptRecordings:
  # `key` changes with any raw file, so neither cache serves stale arrays.
  cache_path = None
  if cache_dir is not None:
    cache_path = pathlib.Path(cache_dir) / f"uci_hapt-{key}.npz"
  recordings = _read_cache(cache_path) if (
      cache_path is not None and cache_path.is_file()) else None
  if recordings is None:
    recordings = parse_recordings(pathlib.Path(folder))
    if cache_path is not None:
      _write_cache(cache_path, recordings)
  for array in dataclasses.astuple(recordings):
    array.flags.writeable = False  # Shared by every caller of the memo.
  return recordings


def load_recordings(folder: str | pathlib.Path, *,
                    cache_dir: str | pathlib.Path | None = None,
                    use_cache: bool = True) -> HaptRecordings:
  """Parsed sessions of a HAPT folder, from the caches when possible.

  Args:
    folder: the release folder (holding RawData/ and activity_labels.txt).
    cache_dir: where the `.npz` cache lives; None means `default_cache_dir()`.
    use_cache: False neither reads nor writes the `.npz` cache file (the
      in-process memo of the last parses still applies).

  Returns:
    `HaptRecordings` with read-only arrays.

  Example:
    rec = load_recordings("/data/uci_hapt")
    rec.signals.shape  # (1122772, 6)
  """
  folder = pathlib.Path(folder).expanduser()
  key = cache_key(folder)
  directory = None
  if use_cache:
    directory = str(pathlib.Path(cache_dir or default_cache_dir()).expanduser())
  return _load_cached(str(folder), key, directory)
