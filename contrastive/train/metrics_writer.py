"""Metrics to a JSON-lines file and TensorBoard event files in the workdir."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np


def _scalar(value: Any) -> float:
  return float(np.asarray(value))


class MetricsWriter:
  """Appends `{'step': s, **metrics}` lines to `metrics.jsonl` and writes the
  same scalars as TensorBoard summaries (tensorboardX, no TensorFlow needed).

  Only process 0 writes; other processes get a writer that does nothing.
  """

  def __init__(self, workdir: str, *, enabled: bool = True,
               tensorboard: bool = True):
    self._enabled = enabled
    self._jsonl = None
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self._enabled:
      return
    scalars = {k: _scalar(v) for k, v in metrics.items()}
    line = {"step": int(step)}
    line.update({k: (v if math.isfinite(v) else str(v))
                 for k, v in scalars.items()})
    self._jsonl.write(json.dumps(line) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, v, int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
