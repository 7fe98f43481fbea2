"""The whole report of a sweep folder: tables and plots, in one call."""
from __future__ import annotations

import json
import os
from typing import Any

from contrastive.ablation import aggregate
from contrastive.ablation import plots
from contrastive.ablation import statistics


def sweep_wall_time(workdir: str) -> float:
  """Seconds the sweep's sessions ran, summed (resumed sweeps included)."""
  with open(os.path.join(workdir, "sweep.json")) as f:
    meta = json.load(f)
  return float(sum(s.get("wall_s", 0.0) for s in meta.get("sessions", [])))


def caption(workdir: str) -> str:
  """'N runs (d done, f failed) on <hardware>; wall times.'"""
  with open(os.path.join(workdir, "sweep.json")) as f:
    meta = json.load(f)
  records = aggregate.collect(workdir)
  done = sum(r["status"] == "done" for r in records)
  failed = sum(r["status"] == "failed" for r in records)
  hw = meta["sessions"][-1]["hardware"] if meta.get("sessions") else {}
  machine = hw.get("processor") or hw.get("platform", "?")
  devices = ", ".join(hw.get("devices", []))
  minutes = sweep_wall_time(workdir) / 60
  # A session killed before its end records no wall time; the runs' own
  # times (a population's members share its wall time) always add up.
  run_minutes = sum(float(r.get("wall_s") or 0.0) for r in records) / 60
  unfinished = len(meta["run_ids"]) - done - failed
  counts = f"{done} done, {failed} failed" + (
      f", {unfinished} not finished" if unfinished else "")
  return (f"{len(meta['run_ids'])} runs ({counts}) on"
          f" {hw.get('cpu_count', '?')} CPU cores ({machine}, jax"
          f" {hw.get('jax', '?')}, devices: {devices}); finished sessions'"
          f" wall time {int(minutes // 60)} h {minutes % 60:.0f} min, the"
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
