"""The whole report of a sweep folder: tables and plots, in one call."""
from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from contrastive.ablation import aggregate
from contrastive.ablation import plots
from contrastive.ablation import statistics


# What `write_report` writes, last to first: a report is current when all
# are newer than every run's status.
OUTPUTS = ("summary.csv", "summary.json", "summary.md", "accuracy.png",
           "curves.png", "similarities.png")


def _session_spans(meta: dict[str, Any]) -> list[tuple[float, float]]:
  """(start, end) in seconds since the epoch of the finished sessions."""
  return sorted(
      (start, start + float(s["wall_s"]))
      for s in meta.get("sessions", []) if s.get("wall_s") is not None
      for start in [datetime.datetime.fromisoformat(s["started"]).timestamp()])


def sweep_wall_time(workdir: str) -> float:
  """Seconds during which any of the sweep's finished sessions ran: the
  union of their intervals. Sessions of one worker follow one another (a
  resumed sweep: their sum); parallel workers' overlap (not their sum, which
  would count the same minutes once per worker)."""
  with open(os.path.join(workdir, "sweep.json")) as f:
    meta = json.load(f)
  total, end = 0.0, -math.inf
  for start, stop in _session_spans(meta):
    if stop > end:
      total += stop - max(start, end)
      end = stop
  return total


def peak_workers(meta: dict[str, Any]) -> int:
  """The most finished sessions that ran at once (1 for a sweep resumed
  one session after another). Sessions within a second of each other's end
  are counted apart, as `started` has whole seconds."""
  spans = _session_spans(meta)
  events = sorted([(min(start + 1.0, stop), 1) for start, stop in spans]
                  + [(stop, -1) for _, stop in spans])
  peak = running = 0
  for _, change in events:
    running += change
    peak = max(peak, running)
  return peak


def is_current(workdir: str) -> bool:
  """Whether the report on disk was written after every run's last status
  (so that a worker finishing after another one wrote it need not write it
  again)."""
  try:
    written = min(os.stat(os.path.join(workdir, name)).st_mtime
                  for name in OUTPUTS)
    with open(os.path.join(workdir, "sweep.json")) as f:
      run_ids = json.load(f)["run_ids"]
  except (OSError, ValueError, KeyError):
    return False
  for run_id in run_ids:
    try:
      if os.stat(os.path.join(workdir, "runs", run_id,
                              "status.json")).st_mtime > written:
        return False
    except FileNotFoundError:
      continue
  return True


def caption(workdir: str) -> str:
  """'N runs (d done, f failed) on <hardware>; wall times.' The finished
  sessions' wall time is the time during which any of them ran."""
  with open(os.path.join(workdir, "sweep.json")) as f:
    meta = json.load(f)
  records = aggregate.collect(workdir)
  done = sum(r["status"] == "done" for r in records)
  failed = sum(r["status"] == "failed" for r in records)
  hw = meta["sessions"][-1]["hardware"] if meta.get("sessions") else {}
  machine = hw.get("processor") or hw.get("platform", "?")
  devices = ", ".join(hw.get("devices", []))
  minutes = sweep_wall_time(workdir) / 60
  workers = peak_workers(meta)
  # A session killed before its end records no wall time; the runs' own
  # times (a population's members share its wall time) always add up.
  run_minutes = sum(float(r.get("wall_s") or 0.0) for r in records) / 60
  unfinished = len(meta["run_ids"]) - done - failed
  counts = f"{done} done, {failed} failed" + (
      f", {unfinished} not finished" if unfinished else "")
  return (f"{len(meta['run_ids'])} runs ({counts}) on"
          f" {hw.get('cpu_count', '?')} CPU cores ({machine}, jax"
          f" {hw.get('jax', '?')}, devices: {devices}); finished sessions'"
          f" wall time {int(minutes // 60)} h {minutes % 60:.0f} min"
          + (f" ({workers} workers)" if workers > 1 else "") + ", the"
          f" runs' wall times summed {int(run_minutes // 60)} h"
          f" {run_minutes % 60:.0f} min. Mean ± sample std over seeds.")


def write_report(workdir: str) -> dict[str, Any]:
  """Writes summary.{csv,json,md}, hypotheses.json and the accuracy, curves
  and similarities PNGs.

  Args:
    workdir: a sweep folder (`runner.run_sweep`'s `workdir`).

  Returns:
    `{'rows': summary rows, 'paths': {name: path}, 'caption': str,
    'hypotheses': the claims' verdicts (statistics.evaluate_hypotheses)}`.

  Example:
    >>> report = write_report('/tmp/ablation')
    >>> print(open(report['paths']['md']).read())
  """
  records = aggregate.collect(workdir)
  rows = aggregate.summarize(records)
  text = caption(workdir)
  with open(os.path.join(workdir, "sweep.json")) as f:
    sweep = json.load(f).get("sweep", {})
  claims = [statistics.Hypothesis(**{**h, "datasets": (
      tuple(h["datasets"]) if h.get("datasets") else None)})
            for h in sweep.get("hypotheses") or ()]
  hypotheses = statistics.evaluate_hypotheses(
      records, claims, list(dict.fromkeys(r["dataset"] for r in rows)))
  paths = aggregate.write_tables(rows, workdir, caption=text,
                                 hypotheses=hypotheses)
  paths["accuracy_png"] = plots.plot_accuracy(
      rows, os.path.join(workdir, "accuracy.png"))
  paths["curves_png"] = plots.plot_curves(
      records, workdir, os.path.join(workdir, "curves.png"))
  paths["similarities_png"] = plots.plot_similarities(
      records, workdir, os.path.join(workdir, "similarities.png"))
  return {"rows": rows, "paths": paths, "caption": text,
          "hypotheses": hypotheses}
