"""A sweep's results as one table: mean and standard deviation over seeds.

`collect(workdir)` reads every run's status and results; `summarize` groups
them by (dataset, method) in the grid's order; `write_tables` writes
`summary.csv`, `summary.json` and `summary.md`.

The standard deviation is the sample standard deviation over the seeds that
finished (ddof = 1); with a single seed it is reported as missing (NaN in the
CSV and JSON, no "±" in Markdown), never as 0.

Each method is also compared with a reference method (SimCLR) seed by seed:
the mean paired difference of its linear-probe accuracy and a 95 %
interval (`statistics.paired_difference`). The sweep's hypotheses (the
papers' claims, `sweep.hypotheses`) are tested the same way and listed under
the table with their verdicts.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Sequence

import numpy as np

from contrastive.ablation import runner
from contrastive.ablation import statistics

# Table columns: (key in the row, header, format). Accuracies print in %.
METRICS = (
    ("linear_probe_accuracy", "linear probe %", "pct"),
    ("knn_accuracy", "kNN %", "pct"),
    ("alignment", "alignment", "float"),
    ("uniformity", "uniformity", "float"),
    ("nuisance_probe_accuracy", "nuisance probe %", "pct"),
    ("nuisance_chance_accuracy", "nuisance chance %", "pct"),
    ("wall_s", "run time s", "int"),
)
# results.json's nuisance keys, per nuisance variable.
NUISANCES = ("speaker", "subject")
# The method every other is compared with, seed by seed, and on what.
REFERENCE = "simclr"
COMPARED = "linear_probe_accuracy"


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def read_run(run_dir: str) -> dict[str, Any] | None:
  """One run's status merged with its scalar results (nuisance keys renamed
  to `nuisance_*` with `nuisance` naming the variable); None if no status."""
  status = runner.read_status(run_dir)
  if status is None:
    return None
  record = {k: status.get(k) for k in ("run_id", "method", "dataset", "seed",
                                       "kind", "status", "wall_s", "error")}
  path = os.path.join(run_dir, "results.json")
  if status.get("status") == "done" and os.path.exists(path):
    results = _read_json(path)
    for key, value in results.items():
      if isinstance(value, (int, float)):
        record[key] = float(value)
    for name in NUISANCES:
      if f"{name}_probe_accuracy" in results:
        record["nuisance"] = name
        record["nuisance_probe_accuracy"] = results[f"{name}_probe_accuracy"]
        record["nuisance_chance_accuracy"] = results[f"{name}_chance_accuracy"]
  return record


def collect(workdir: str) -> list[dict[str, Any]]:
  """Every run of the sweep in `workdir`, in the grid's order (sweep.json)."""
  meta_path = os.path.join(workdir, "sweep.json")
  if not os.path.exists(meta_path):
    raise ValueError(
        f"{workdir} is not a sweep folder (no sweep.json); run"
        " `python -m launch.ablate --workdir=...` first.")
  run_ids = _read_json(meta_path)["run_ids"]
  records = []
  for run_id in run_ids:
    record = read_run(os.path.join(workdir, "runs", run_id))
    if record is not None:
      records.append(record)
  return records


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  if not values:
    return math.nan, math.nan
  mean = float(np.mean(values))
  std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
  return mean, std


def summarize(records: Sequence[dict[str, Any]],
              reference: str = REFERENCE) -> list[dict[str, Any]]:
  """One row per (dataset, method), first-seen order.

  Each row holds `dataset`, `method`, `seeds` (finished), `failed` (count),
  `errors` (their messages), `<metric>_mean` / `<metric>_std` for each of
  `METRICS`, and `vs_reference_{mean,low,high,seeds}`: the linear-probe
  accuracy minus `reference`'s, paired over seeds (NaN where there is no
  pair).

  Example:
    >>> rows = summarize(collect('/tmp/ablation'))
    >>> rows[0]['linear_probe_accuracy_mean']
  """
  diffs = statistics.differences_to(records, reference, COMPARED)
  groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
  for record in records:
    groups.setdefault((record["dataset"], record["method"]), []).append(record)
  rows = []
  for (dataset, method), group in groups.items():
    done = [r for r in group if r["status"] == "done"]
    failed = [r for r in group if r["status"] == "failed"]
    row = {"dataset": dataset, "method": method, "seeds": len(done),
           "failed": len(failed),
           "errors": [f"seed {r['seed']}: {r['error']}" for r in failed],
           "nuisance": next((r["nuisance"] for r in done if "nuisance" in r),
                            None)}
    for key, _, _ in METRICS:
      values = [r[key] for r in done if r.get(key) is not None]
      row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
    diff = diffs.get((dataset, method), statistics.PairedDifference(
        math.nan, math.nan, math.nan, ()))
    row.update(vs_reference_mean=diff.mean, vs_reference_low=diff.low,
               vs_reference_high=diff.high, vs_reference_seeds=diff.n)
    rows.append(row)
  return rows


def _cell(mean: float, std: float, fmt: str) -> str:
  if math.isnan(mean):
    return "–"
  scale, digits = {"pct": (100.0, 1), "float": (1.0, 3), "int": (1.0, 0)}[fmt]
  text = f"{mean * scale:.{digits}f}"
  if not math.isnan(std):
    text += f" ± {std * scale:.{digits}f}"
  return text


def _interval(mean: float, low: float, high: float, scale: float = 100.0
              ) -> str:
  if math.isnan(mean):
    return "–"
  if math.isnan(low):
    return f"{mean * scale:+.1f}"
  return f"{mean * scale:+.1f} [{low * scale:+.1f}, {high * scale:+.1f}]"


def markdown_table(rows: Sequence[dict[str, Any]],
                   reference: str = REFERENCE) -> str:
  """The rows as a Markdown table (mean ± std over seeds; the linear probe
  minus `reference`'s, paired by seed, with its 95 % interval)."""
  compared = f"probe − {reference}, pp [95 % CI]"
  headers = (["dataset", "method", "seeds"] + [h for _, h, _ in METRICS[:1]]
             + [compared] + [h for _, h, _ in METRICS[1:]])
  lines = ["| " + " | ".join(headers) + " |",
           "|" + "|".join(["---"] * 3 + ["---:"] * (len(METRICS) + 1)) + "|"]
  for row in rows:
    seeds = f"{row['seeds']}" + (f" ({row['failed']} failed)"
                                 if row["failed"] else "")
    cells = [row["dataset"], row["method"], seeds]
    cells += [_cell(row[f"{k}_mean"], row[f"{k}_std"], fmt)
              for k, _, fmt in METRICS]
    cells.insert(4, _interval(row.get("vs_reference_mean", math.nan),
                              row.get("vs_reference_low", math.nan),
                              row.get("vs_reference_high", math.nan)))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def hypotheses_table(rows: Sequence[dict[str, Any]]) -> str:
  """`statistics.evaluate_hypotheses` rows as a Markdown table."""
  lines = ["| claim | dataset | difference, pp [95 % CI] | seeds | verdict |"
           " cost, pp [95 % CI] | source |",
           "|---|---|---:|---:|---|---:|---|"]
  for r in rows:
    metric = r["metric"].replace("_accuracy", "").replace("_", " ")
    cost = (_interval(r["cost_mean"], r["cost_low"], r["cost_high"])
            + f" ({r['cost_metric'].replace('_accuracy', '').replace('_', ' ')})"
            if r.get("cost_metric") else "–")
    lines.append(
        f"| {r['hypothesis']} | {r['dataset']} |"
        f" {_interval(r['mean'], r['low'], r['high'])} ({metric}) |"
        f" {r['seeds']} | **{r['verdict']}** | {cost} | {r['source']} |")
  return "\n".join(lines)


def _finite_or_none(value: Any) -> Any:
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_tables(rows: Sequence[dict[str, Any]], out_dir: str, *,
                 caption: str = "",
                 hypotheses: Sequence[dict[str, Any]] = ()) -> dict[str, str]:
  """Writes summary.csv, summary.json and summary.md; returns their paths.

  JSON has null where the CSV has NaN (a single seed's std, a metric the
  dataset lacks). The Markdown lists the hypotheses' verdicts
  (`statistics.evaluate_hypotheses` rows, also in hypotheses.json) and the
  failed runs under the table.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {ext: os.path.join(out_dir, f"summary.{ext}")
           for ext in ("csv", "json", "md")}
  fields = ["dataset", "method", "seeds", "failed", "nuisance"] + [
      f"{k}_{s}" for k, _, _ in METRICS for s in ("mean", "std")] + [
          f"vs_reference_{s}" for s in ("mean", "low", "high", "seeds")]
  with open(paths["csv"], "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  with open(paths["json"], "w") as f:
    json.dump([{k: _finite_or_none(v) for k, v in row.items()}
               for row in rows], f, indent=2)
  text = [caption, ""] if caption else []
  text.append(markdown_table(rows))
  if hypotheses:
    paths["hypotheses"] = os.path.join(out_dir, "hypotheses.json")
    with open(paths["hypotheses"], "w") as f:
      json.dump([{k: _finite_or_none(v) for k, v in h.items()}
                 for h in hypotheses], f, indent=2)
    text += ["", "The papers' claims, paired over seeds (confirmed: the 95 %"
             " interval lies on the claimed side of zero; refuted: on the"
             " other side; inconclusive: it contains zero):", "",
             hypotheses_table(hypotheses)]
  errors = [f"- {r['dataset']} / {r['method']} {e}" for r in rows
            for e in r["errors"]]
  if errors:
    text += ["", "Failed runs:", ""] + errors
  with open(paths["md"], "w") as f:
    f.write("\n".join(text) + "\n")
  return paths
