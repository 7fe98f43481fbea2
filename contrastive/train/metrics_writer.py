"""Metrics to a JSON-lines file and TensorBoard event files in the workdir.

The workdir may be local or remote (`gs://`, or any scheme `etils.epath`
handles): `metrics.jsonl` is written through `etils.epath`. A remote object
cannot be appended to, so there the writer keeps the rows in memory and
re-uploads the whole file (one object write, which is atomic) at most every
`flush_secs` and on `close()`; locally each row is appended and flushed.

TensorBoard (tensorboardX) writes `gs://` and `s3://` itself (it needs
`google-cloud-storage` or `boto3`); for any other remote scheme it has no
writer, so TensorBoard is skipped there with a warning and `metrics.jsonl`
remains the record.

Resuming: rows logged after the checkpoint a run resumes from would be logged
again when the resumed run reaches their steps, so `resume(step)` (or
`MetricsWriter(..., resume_step=step)`) drops them first.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any, Mapping

from absl import logging
from etils import epath
import numpy as np

METRICS_FILE = "metrics.jsonl"

# What to install for a remote workdir, by scheme: the fsspec filesystem
# etils.epath uses for the files, and the library tensorboardX uses for its
# event files.
_REMOTE_INSTALL = {
    "gs": "pip install -r requirements-gcs.txt",
    "s3": "pip install s3fs boto3",
    "az": "pip install adlfs",
    "hf": "pip install huggingface_hub",
}
_FSSPEC_PROTOCOL = {"gs": "gcs", "s3": "s3", "az": "az", "hf": "hf"}
# Remote schemes tensorboardX writes event files to, and the module it needs.
_TENSORBOARD_REMOTE = {"gs": "google.cloud.storage", "s3": "boto3"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def uri_scheme(path: str | os.PathLike[str]) -> str | None:
  """`'gs'` for `gs://bucket/run`; None for a local path."""
  match = _SCHEME.match(os.fspath(path))
  return match.group(1).lower() if match else None


def require_remote_support(path: str | os.PathLike[str]) -> None:
  """Fails early, naming the pip command, when `path` is remote and the
  packages to reach it are missing (otherwise the failure comes from deep
  inside fsspec or tensorboardX, after local folders were created).

  Raises:
    ValueError: a scheme that etils.epath cannot open.
    ImportError: the scheme's filesystem package is not installed.
  """
  scheme = uri_scheme(path)
  if scheme is None:
    return
  if scheme not in _REMOTE_INSTALL:
    raise ValueError(
        f"workdir {os.fspath(path)!r}: etils.epath cannot open {scheme}://"
        f" paths; use a local path or one of"
        f" {', '.join(s + '://' for s in _REMOTE_INSTALL)}.")
  missing = []
  try:
    import fsspec  # pylint: disable=g-import-not-at-top
    fsspec.get_filesystem_class(_FSSPEC_PROTOCOL[scheme])
  except ImportError as error:
    missing.append(str(error))
  if scheme in _TENSORBOARD_REMOTE:
    module = _TENSORBOARD_REMOTE[scheme]
    try:
      __import__(module)
    except ImportError:
      missing.append(f"{module} (TensorBoard event files on {scheme}://)")
  if missing:
    raise ImportError(
        f"workdir {os.fspath(path)!r} is on {scheme}://, which needs packages"
        f" that are not installed: {'; '.join(missing)}. Install them with"
        f" `{_REMOTE_INSTALL[scheme]}` (an optional extra, not in"
        " requirements.txt).")


def read_metrics(workdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
  """The rows of `workdir/metrics.jsonl` (local or remote); [] if absent."""
  path = epath.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines()
          if line.strip()]


def _scalar(value: Any) -> float:
  return float(np.asarray(value))


class MetricsWriter:
  """Appends `{'step': s, **metrics}` lines to `metrics.jsonl` and writes the
  same scalars as TensorBoard summaries (tensorboardX, no TensorFlow needed).

  Only process 0 writes; other processes get a writer that does nothing.
  Files are opened at the first `write` or `resume`, so a run that fails
  before logging anything leaves no files behind.
  """

  def __init__(self, workdir: str | os.PathLike[str], *, enabled: bool = True,
               tensorboard: bool = True, resume_step: int | None = None,
               flush_secs: float = 10.0):
    """Args:
      workdir: local folder or remote URI (e.g. `gs://bucket/run`).
      enabled: False on processes other than 0 (the writer does nothing).
      tensorboard: also write TensorBoard event files in `workdir/tensorboard`.
      resume_step: the step the run resumes from; rows past it are dropped
        now (see `resume`).
      flush_secs: on a remote workdir, the longest time between uploads of
        `metrics.jsonl` (rows since the last upload are lost if the process
        is killed); a local file is flushed at every row.
    """
    self._enabled = enabled
    self._workdir = os.fspath(workdir)
    self._remote = uri_scheme(self._workdir) is not None
    self._want_tensorboard = tensorboard
    self._flush_secs = flush_secs
    self._opened = self._closed = False
    self._lines: list[str] = []      # every row of the file, in order
    # Rows kept at the resumed step, by their keys: their index in _lines.
    self._replaceable: dict[frozenset[str], int] = {}
    self._resume_step: int | None = None
    self._purge_step: int | None = None
    self._jsonl = None               # local append handle
    self._tb = None
    self._dirty = False
    self._flushed_at = 0.0
    if not enabled:
      return
    require_remote_support(self._workdir)
    self._path = epath.Path(self._workdir) / METRICS_FILE
    if resume_step is not None:
      self.resume(resume_step)

  @property
  def path(self) -> str:
    """Where the rows go (`workdir/metrics.jsonl`)."""
    return os.path.join(self._workdir, METRICS_FILE)

  def resume(self, step: int) -> int:
    """Drops the rows logged after `step` (the checkpoint resumed from).

    The file is rewritten atomically (a temporary file renamed over it, or
    one object upload on a remote workdir). Rows at `step` itself are kept;
    one logged again at `step` with the same keys (a hook's metrics before
    the next step, or the final results of a finished run started again)
    replaces its earlier copy instead of repeating it. TensorBoard is told
    to hide its events past `step` (`purge_step`).

    Call it before the first `write`. Returns the number of rows dropped.
    """
    if not self._enabled:
      return 0
    if self._tb is not None or self._jsonl is not None or self._dirty:
      raise RuntimeError(
          f"MetricsWriter({self._workdir!r}).resume({step}) called after rows"
          " were written; call resume() right after restoring the checkpoint,"
          " before the first write().")
    step = int(step)
    self._open()
    kept, dropped = [], 0
    for line in self._lines:
      row = json.loads(line)
      if int(row.get("step", 0)) > step:
        dropped += 1
        continue
      if int(row.get("step", 0)) == step:
        self._replaceable[frozenset(row)] = len(kept)
      kept.append(line)
    self._resume_step = step
    self._purge_step = step + 1
    if dropped:
      logging.info("%s: dropped %d rows logged after step %d (resuming from"
                   " it)", self.path, dropped, step)
      self._lines = kept
      self._rewrite()
    return dropped

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    """Logs `metrics` (scalars) at `step`; a `step` key in `metrics` is
    ignored (the row's step is always the int `step`)."""
    if not self._enabled:
      return
    if self._closed:
      raise RuntimeError(f"MetricsWriter({self._workdir!r}) is closed.")
    step = int(step)
    if "step" in metrics and _scalar(metrics["step"]) != step:
      logging.warning("metrics at step %d carry step=%s; ignored", step,
                      metrics["step"])
    scalars = {k: _scalar(v) for k, v in metrics.items() if k != "step"}
    row = {"step": step}
    row.update({k: (v if math.isfinite(v) else str(v))
                for k, v in scalars.items()})
    line = json.dumps(row)
    self._open()
    index = (self._replaceable.pop(frozenset(row), None)
             if step == self._resume_step else None)
    if index is not None:
      self._lines[index] = line
      self._rewrite()
    else:
      self._lines.append(line)
      if self._remote:
        self._dirty = True
        if time.monotonic() - self._flushed_at >= self._flush_secs:
          self.flush()
      else:
        if self._jsonl is None:
          self._jsonl = self._path.open("a")
        self._jsonl.write(line + "\n")
        self._jsonl.flush()
    tb = self._tensorboard()
    if tb is not None:
      for k, v in scalars.items():
        tb.add_scalar(k, v, step)

  def flush(self) -> None:
    """Uploads the rows to a remote workdir (local rows are already on disk)
    and flushes TensorBoard."""
    if self._remote and self._dirty:
      self._path.write_text("".join(line + "\n" for line in self._lines))
      self._dirty = False
      self._flushed_at = time.monotonic()
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._closed:
      return
    self._closed = True
    if not self._enabled:
      return
    # Every handle is closed even if one fails (a full disk fails them all,
    # and the first error is the one raised).
    try:
      if self._remote and self._dirty:
        self.flush()
    finally:
      try:
        if self._jsonl is not None:
          self._jsonl.close()
      finally:
        if self._tb is not None:
          self._tb.close()

  def _open(self) -> None:
    """Loads the existing rows (a remote file is rewritten whole, and a
    resume filters them); creates a local workdir."""
    if self._opened:
      return
    self._opened = True
    if not self._remote:   # object stores have no folders to create
      self._path.parent.mkdir(parents=True, exist_ok=True)
    if self._path.exists():
      self._lines = [line for line in self._path.read_text().splitlines()
                     if line.strip()]
      self._flushed_at = time.monotonic()

  def _rewrite(self) -> None:
    """Replaces the whole file with `self._lines`, atomically."""
    text = "".join(line + "\n" for line in self._lines)
    if self._remote:
      self._path.write_text(text)   # one object upload: atomic
      self._dirty = False
      self._flushed_at = time.monotonic()
      return
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    tmp = self._path.parent / (self._path.name + ".tmp")
    with tmp.open("w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    tmp.replace(self._path)

  def _tensorboard(self):
    """The TensorBoard writer, created at the first row."""
    if self._tb is not None or not self._want_tensorboard:
      return self._tb
    scheme = uri_scheme(self._workdir)
    if scheme is not None and scheme not in _TENSORBOARD_REMOTE:
      logging.warning("TensorBoard skipped: tensorboardX cannot write to"
                      " %s://; %s has every scalar.", scheme, self.path)
      self._want_tensorboard = False
      return None
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._tb = SummaryWriter(os.path.join(self._workdir, "tensorboard"),
                             purge_step=self._purge_step)
    return self._tb
