"""Orbax's INFO records are dropped from absl's logger; ours and its
warnings are kept."""
from __future__ import annotations

import logging
import os

from contrastive.train.log_filter import DropLibraryInfo, quiet_library_info

ORBAX_FILE = os.path.join("site-packages", "orbax", "checkpoint",
                          "checkpoint_manager.py")


def _record(pathname: str, level: int) -> logging.LogRecord:
  return logging.LogRecord("absl", level, pathname, 1, "message", None, None)


def test_orbax_info_is_dropped_and_warnings_kept():
  f = DropLibraryInfo()
  assert not f.filter(_record(ORBAX_FILE, logging.INFO))
  assert not f.filter(_record(ORBAX_FILE, logging.DEBUG))
  assert f.filter(_record(ORBAX_FILE, logging.WARNING))
  assert f.filter(_record(os.path.join("contrastive", "train", "loop.py"),
                          logging.INFO))


def test_installing_twice_adds_one_filter():
  logger = logging.getLogger("absl")
  before = list(logger.filters)
  try:
    quiet_library_info()
    quiet_library_info()
    added = [f for f in logger.filters if f not in before]
    assert sum(isinstance(f, DropLibraryInfo) for f in logger.filters) == 1
    assert len(added) <= 1
  finally:
    logger.filters[:] = before
