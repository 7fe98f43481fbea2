"""What `launch.main` does with its workdir when a run fails.

Two failures used to leave a mess: a config error found after the workdir
was made left an empty workdir behind (so the next attempt looked like a
resume of a run that never was), and a full disk printed about a thousand
lines of tracebacks from orbax's background threads, tensorboardX's exit
handler and the interpreter's shutdown, with the cause in the middle.

    with workdir_guard.guard(workdir):
      results = train_and_evaluate(config, workdir)

first checks that a remote workdir (`gs://...`) can be reached with the
installed packages (else one line naming the pip command; without it, the
run made a local `./gs:/bucket/...` and failed deep in tensorboardX), then
removes a workdir this run created if the run fails before writing any byte
to it, and turns a full disk into one line naming the workdir and its free
space (exit status 1).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
import threading
from typing import Iterator

from contrastive.train.metrics_writer import require_remote_support
from contrastive.train.metrics_writer import uri_scheme

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# tensorstore (orbax's array writes) reports errno 28 inside a ValueError.
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error: BaseException | None) -> bool:
  """Whether `error`, or any exception it was raised from or during (or
  inside an exception group), is a full disk or an exceeded quota."""
  seen = set()
  pending = [error]
  while pending:
    error = pending.pop()
    if error is None or id(error) in seen:
      continue
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
      return True
    if any(text in str(error) for text in _DISK_FULL_TEXT):
      return True
    pending += [error.__cause__, error.__context__]
    pending += list(getattr(error, "exceptions", ()))
  return False


def _free_space(workdir: str) -> str:
  """Free bytes on the filesystem holding `workdir` (or its nearest existing
  parent), e.g. '0 B' or '12.0 MiB'; '' for a remote workdir."""
  if uri_scheme(workdir) is not None:
    return ""
  path = os.path.abspath(workdir)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  try:
    free = float(shutil.disk_usage(path).free)
  except OSError:
    return ""
  for unit in ("B", "KiB", "MiB", "GiB"):
    if free < 1024 or unit == "GiB":
      return f"{free:.0f} {unit}" if unit == "B" else f"{free:.1f} {unit}"
    free /= 1024
  return ""


def disk_full_message(workdir: str) -> str:
  free = _free_space(workdir)
  where = f" ({free} free there)" if free else ""
  return (f"No space left on device writing to workdir {workdir}{where}."
          " Free some space (or pass another --workdir) and run the same"
          " command again: it resumes from the workdir's latest complete"
          " checkpoint.")


def _nothing_written(workdir: str) -> bool:
  """True if everything under `workdir` is a folder or an empty file."""
  for root, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(root, name)
      if os.path.islink(path) or os.path.getsize(path) > 0:
        return False
  return True


def _quiet_shutdown() -> None:
  """Silences what the interpreter's shutdown would print after the disk
  has filled: background threads and exit handlers that fail to write too
  (their tracebacks repeat the one cause already reported)."""
  threading.excepthook = lambda args: None
  sys.unraisablehook = lambda unraisable: None
  logging.disable(logging.CRITICAL)


class _ShortenDiskFull(logging.Filter):
  """Keeps one line of each library log record about a full disk (orbax
  logs every failed background write with its traceback)."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info and is_disk_full(record.exc_info[1]):
      record.exc_info = None
      record.exc_text = None
    return True


@contextlib.contextmanager
def guard(workdir: str) -> Iterator[None]:
  """Checks a remote `workdir`'s packages; removes `workdir` if this run
  made it and fails before writing to it; turns a full disk into
  `SystemExit` with one line (see module doc)."""
  try:
    require_remote_support(workdir)
  except (ImportError, ValueError) as error:
    raise SystemExit(str(error)) from None
  created = uri_scheme(workdir) is None and not os.path.exists(workdir)
  shorten = _ShortenDiskFull()
  handlers = list(logging.getLogger().handlers)
  for handler in handlers:
    handler.addFilter(shorten)
  try:
    yield
  except BaseException as error:  # pylint: disable=broad-except
    if created and os.path.isdir(workdir) and _nothing_written(workdir):
      shutil.rmtree(workdir, ignore_errors=True)
    if is_disk_full(error):
      _quiet_shutdown()
      raise SystemExit(disk_full_message(workdir)) from None
    raise
  finally:
    for handler in handlers:
      handler.removeFilter(shorten)
