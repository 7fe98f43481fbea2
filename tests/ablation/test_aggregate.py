"""Aggregation over seeds and the written tables and plots, from a sweep
folder made by the runner with a stand-in trainer of known results; the
sweep's wall time with parallel workers."""
from __future__ import annotations

import csv
import datetime
import json
import math
import os

import numpy as np
import pytest
from scipy import stats as scipy_stats

from configs import ablation as ablation_config
from contrastive.ablation import aggregate
from contrastive.ablation import report
from contrastive.ablation import runner

# (method, seed) -> results; dcl seed 2 fails, supcon has one seed only.
RESULTS = {
    ("simclr", 0): dict(linear_probe_accuracy=0.70, knn_accuracy=0.61),
    ("simclr", 1): dict(linear_probe_accuracy=0.74, knn_accuracy=0.65),
    ("simclr", 2): dict(linear_probe_accuracy=0.75, knn_accuracy=0.62),
    ("dcl", 0): dict(linear_probe_accuracy=0.71, knn_accuracy=0.60),
    ("dcl", 1): dict(linear_probe_accuracy=0.69, knn_accuracy=0.66),
    ("supcon", 0): dict(linear_probe_accuracy=0.90, knn_accuracy=0.88),
}
LOSS_TO_METHOD = {"infonce": "simclr", "dcl": "dcl", "supcon": "supcon"}


def _fake_train(config, workdir):
  method = LOSS_TO_METHOD[config.loss.name]
  key = (method, int(config.seed))
  if key not in RESULTS:
    raise ValueError("deliberate failure")
  results = dict(RESULTS[key], alignment=0.5, uniformity=-1.5,
                 subject_probe_accuracy=0.3, subject_chance_accuracy=0.1,
                 step=4, note="not a number")
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for step in (1, 2, 3, 4):
      f.write(json.dumps({"step": step, "loss": 4.0 - step / 2,
                          "pos_sim": 0.5, "neg_sim": 0.1}) + "\n")
  with open(os.path.join(workdir, runner.HISTOGRAM_FILE), "w") as f:
    json.dump({"edges": [-1.0, 0.0, 1.0], "positive": [0, 8],
               "negative": [5, 3]}, f)
  return results


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
  sweep = ablation_config.get_config("smoke")
  sweep.methods = ("simclr", "dcl", "supcon")
  sweep.method_specs.dcl = {"config": "dcl"}
  sweep.method_specs.supcon = {"config": "supcon"}
  sweep.seeds = (0, 1, 2)
  sweep.hypotheses = [dict(
      name="DCL > SimCLR", method="dcl", baseline="simclr",
      metric="linear_probe_accuracy", direction="greater", source="paper",
      datasets=("uci_hapt",), cost_metric="knn_accuracy")]
  folder = tmp_path_factory.mktemp("sweep")
  records = runner.run_sweep(
      sweep, str(folder), histograms=False, log=lambda _: None,
      train_fns={"contrastive": runner.one_at_a_time(_fake_train)})
  # supcon seeds 1, 2 fail too (no results): 3 failures in all.
  assert sum(r.status == "failed" for r in records) == 3
  return folder


def _rows(sweep_dir):
  return {r["method"]: r for r in aggregate.summarize(
      aggregate.collect(str(sweep_dir)))}


def test_mean_and_sample_std_over_finished_seeds(sweep_dir):
  rows = _rows(sweep_dir)
  for method in ("simclr", "dcl"):
    for key in ("linear_probe_accuracy", "knn_accuracy"):
      values = [v[key] for (m, _), v in RESULTS.items() if m == method]
      assert rows[method][f"{key}_mean"] == pytest.approx(np.mean(values))
      assert rows[method][f"{key}_std"] == pytest.approx(
          np.std(values, ddof=1))
  assert rows["simclr"]["seeds"] == 3 and rows["simclr"]["failed"] == 0
  assert rows["dcl"]["seeds"] == 2 and rows["dcl"]["failed"] == 1
  assert rows["dcl"]["errors"] == ["seed 2: ValueError: deliberate failure"]
  # One seed: the std is missing, not zero.
  assert rows["supcon"]["seeds"] == 1
  assert math.isnan(rows["supcon"]["linear_probe_accuracy_std"])
  assert rows["simclr"]["nuisance"] == "subject"
  assert rows["simclr"]["nuisance_probe_accuracy_mean"] == pytest.approx(0.3)
  assert [r["method"] for r in aggregate.summarize(
      aggregate.collect(str(sweep_dir)))] == ["simclr", "dcl", "supcon"]


def test_tables_and_plots_are_written(sweep_dir):
  result = report.write_report(str(sweep_dir))
  paths = result["paths"]
  md = open(paths["md"]).read()
  simclr = [line for line in md.splitlines() if "| simclr |" in line][0]
  mean = np.mean([0.70, 0.74, 0.75]) * 100
  std = np.std([0.70, 0.74, 0.75], ddof=1) * 100
  assert f"| {mean:.1f} ± {std:.1f} |" in simclr
  supcon = [line for line in md.splitlines() if "| supcon |" in line][0]
  assert "| 1 (2 failed) |" in supcon and "| 90.0 |" in supcon
  assert "Failed runs:" in md and "dcl seed 2: ValueError" in md
  assert "9 runs (6 done, 3 failed)" in result["caption"]
  with open(paths["csv"]) as f:
    rows = list(csv.DictReader(f))
  assert [r["method"] for r in rows] == ["simclr", "dcl", "supcon"]
  assert float(rows[0]["knn_accuracy_mean"]) == pytest.approx(
      np.mean([0.61, 0.65, 0.62]))
  assert rows[2]["knn_accuracy_std"] == "nan"
  table = json.load(open(paths["json"]))
  assert table[2]["knn_accuracy_std"] is None
  for name in ("accuracy_png", "curves_png", "similarities_png"):
    with open(paths[name], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_collect_needs_a_sweep_folder(tmp_path):
  with pytest.raises(ValueError, match="not a sweep folder"):
    aggregate.collect(str(tmp_path))


def test_methods_compared_with_simclr_paired_by_seed(sweep_dir):
  """DCL - SimCLR on the seeds both finished (0, 1): d = (+0.01, -0.05),
  mean -0.02, half-width t(0.975, 1) * sd / sqrt(2)."""
  rows = _rows(sweep_dir)
  half = scipy_stats.t.ppf(0.975, 1) * np.std([0.01, -0.05], ddof=1) / np.sqrt(2)
  assert rows["dcl"]["vs_reference_mean"] == pytest.approx(-0.02)
  assert rows["dcl"]["vs_reference_high"] == pytest.approx(-0.02 + half)
  assert rows["dcl"]["vs_reference_seeds"] == 2
  # SupCon has one seed: a difference without an interval.
  assert rows["supcon"]["vs_reference_mean"] == pytest.approx(0.20)
  assert math.isnan(rows["supcon"]["vs_reference_low"])
  assert math.isnan(rows["simclr"]["vs_reference_mean"])
  result = report.write_report(str(sweep_dir))
  md = open(result["paths"]["md"]).read()
  dcl = [line for line in md.splitlines() if "| dcl |" in line][0]
  assert f"| -2.0 [{100 * (-0.02 - half):+.1f}, {100 * (-0.02 + half):+.1f}] |" in dcl
  [claim] = result["hypotheses"]
  assert (claim["dataset"], claim["verdict"], claim["seeds"]) == (
      "uci_hapt", "inconclusive", 2)
  # kNN: (0.60 - 0.61, 0.66 - 0.65) = (-0.01, +0.01).
  assert claim["cost_mean"] == pytest.approx(0.0)
  assert "| DCL > SimCLR | uci_hapt |" in md and "**inconclusive**" in md
  saved = json.load(open(result["paths"]["hypotheses"]))
  assert saved[0]["verdict"] == "inconclusive"


def _sessions(tmp_path, spans):
  """A sweep.json whose sessions ran over `spans` (start, seconds)."""
  start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
  sessions = [{"started": (start + datetime.timedelta(seconds=s)).isoformat(
      timespec="seconds"), "wall_s": wall} for s, wall in spans]
  (tmp_path / "sweep.json").write_text(json.dumps(
      {"sessions": sessions, "run_ids": []}))
  return json.loads((tmp_path / "sweep.json").read_text())


def test_wall_time_of_parallel_workers_is_counted_once(tmp_path):
  """Sessions one after another (a resumed sweep) add up; parallel
  workers' sessions overlap, and their minutes are counted once."""
  meta = _sessions(tmp_path, [(0, 100.5), (101, 50.0), (200, 10.0)])
  assert report.sweep_wall_time(str(tmp_path)) == pytest.approx(160.5)
  assert report.peak_workers(meta) == 1
  meta = _sessions(tmp_path, [(0, 100.0), (2, 120.0), (3, 90.0),
                              (300, 10.0)])
  assert report.sweep_wall_time(str(tmp_path)) == pytest.approx(132.0)
  assert report.peak_workers(meta) == 3
  meta["sessions"].append({"started": meta["sessions"][0]["started"]})
  (tmp_path / "sweep.json").write_text(json.dumps(meta))   # one killed
  assert report.sweep_wall_time(str(tmp_path)) == pytest.approx(132.0)
