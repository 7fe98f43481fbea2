"""Keeps libraries' INFO chatter out of a run's log.

Orbax logs every checkpoint save, handler registration and directory scan at
INFO through absl, which buried the run's own lines (a 300-step run printed
hundreds of them). `quiet_library_info()` drops INFO and DEBUG records that
come from those libraries' source files; their warnings and errors, and all
of our own logging, still come through.
"""
from __future__ import annotations

import logging
import os

# Source-path fragments of the libraries whose INFO records are dropped.
QUIET_LIBRARIES = (f"{os.sep}orbax{os.sep}",)


class DropLibraryInfo(logging.Filter):
  """Drops records below WARNING whose source file is in QUIET_LIBRARIES."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
      return True
    return not any(part in record.pathname for part in QUIET_LIBRARIES)


def quiet_library_info() -> None:
  """Installs the filter on absl's logger (idempotent)."""
  logger = logging.getLogger("absl")
  if not any(isinstance(f, DropLibraryInfo) for f in logger.filters):
    logger.addFilter(DropLibraryInfo())
