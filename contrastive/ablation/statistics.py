"""Paired comparisons of methods over seeds, and the papers' claims tested.

Runs of one dataset that share a seed share their initial encoder weights
(for equal architectures) and their data order, so the difference between
two methods is measured per seed and its spread is smaller than the spread
of either method alone. For methods A and B with results `a_s`, `b_s` on
the seeds `s` both finished, the paired differences `d_s = a_s - b_s` give

    mean  d = (1/n) sum_s d_s
    95 % interval  d +- t_{0.975, n-1} * sd(d) / sqrt(n)

(Student's t with n - 1 degrees of freedom; sd with ddof = 1). A claim that
A beats B is `confirmed` when the whole interval lies above zero, `refuted`
when it lies below zero, and `inconclusive` when it contains zero (or fewer
than two seeds are paired).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
VERDICTS = ("confirmed", "refuted", "inconclusive")


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  """`a - b` paired over seeds.

  Attributes:
    mean: mean of the per-seed differences (NaN without a common seed).
    low: lower end of the 95 % interval (NaN with fewer than two pairs).
    high: upper end.
    seeds: the seeds both finished, in increasing order.
  """

  mean: float
  low: float
  high: float
  seeds: tuple[int, ...]

  @property
  def n(self) -> int:
    return len(self.seeds)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float],
                      confidence: float = CONFIDENCE) -> PairedDifference:
  """The paired difference `a - b` over the seeds both have.

  Args:
    a: `{seed: value}` of method A (e.g. linear-probe accuracy).
    b: `{seed: value}` of method B.
    confidence: coverage of the interval.

  Returns:
    A `PairedDifference`.

  Example:
    >>> d = paired_difference({0: 0.8, 1: 0.9, 2: 0.85},
    ...                       {0: 0.7, 1: 0.8, 2: 0.80})
    >>> round(d.mean, 3), d.n
    (0.083, 3)
  """
  seeds = tuple(sorted(set(a) & set(b)))
  if not seeds:
    return PairedDifference(math.nan, math.nan, math.nan, ())
  d = np.array([a[s] - b[s] for s in seeds], np.float64)
  mean = float(d.mean())
  if len(d) < 2:
    return PairedDifference(mean, math.nan, math.nan, seeds)
  half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)
               * d.std(ddof=1) / math.sqrt(len(d)))
  return PairedDifference(mean, mean - half, mean + half, seeds)


def verdict(diff: PairedDifference, direction: str = "greater") -> str:
  """'confirmed', 'refuted' or 'inconclusive' for the claim that the
  difference is > 0 (`direction='greater'`) or < 0 (`'less'`)."""
  if direction not in ("greater", "less"):
    raise ValueError(f"direction must be 'greater' or 'less', got"
                     f" {direction!r}.")
  if diff.n < 2 or math.isnan(diff.low):
    return "inconclusive"
  low, high = ((diff.low, diff.high) if direction == "greater"
               else (-diff.high, -diff.low))
  if low > 0:
    return "confirmed"
  if high < 0:
    return "refuted"
  return "inconclusive"


@dataclasses.dataclass(frozen=True)
class Hypothesis:
  """A claim of a paper, as a paired comparison.

  Attributes:
    name: a short label, e.g. 'DCL > SimCLR'.
    method: the method the claim is about (A).
    baseline: what it is compared with (B).
    metric: the results key compared, e.g. 'linear_probe_accuracy'.
    direction: 'greater' (A's metric above B's) or 'less'.
    source: where the claim comes from.
    datasets: the datasets it applies to (None: all).
    cost_metric: a second metric reported beside it (the accuracy a
      fairness claim pays), or None.
  """

  name: str
  method: str
  baseline: str
  metric: str
  direction: str
  source: str
  datasets: tuple[str, ...] | None = None
  cost_metric: str | None = None


def by_seed(records: Sequence[Mapping[str, Any]], dataset: str, method: str,
            metric: str) -> dict[int, float]:
  """`{seed: value}` of the finished runs of (dataset, method)."""
  out = {}
  for r in records:
    if (r.get("dataset") == dataset and r.get("method") == method
        and r.get("status") == "done" and r.get(metric) is not None):
      out[int(r["seed"])] = float(r[metric])
  return out


def evaluate_hypotheses(records: Sequence[Mapping[str, Any]],
                    hypotheses: Sequence[Hypothesis],
                    datasets: Sequence[str]) -> list[dict[str, Any]]:
  """Each hypothesis on each dataset it applies to: its paired difference,
  interval, verdict, and the paired difference of its cost metric."""
  rows = []
  for h in hypotheses:
    for dataset in datasets:
      if h.datasets is not None and dataset not in h.datasets:
        continue
      a = by_seed(records, dataset, h.method, h.metric)
      b = by_seed(records, dataset, h.baseline, h.metric)
      if not a or not b:
        continue
      diff = paired_difference(a, b)
      row = {"hypothesis": h.name, "dataset": dataset, "method": h.method,
             "baseline": h.baseline, "metric": h.metric,
             "direction": h.direction, "source": h.source,
             "mean": diff.mean, "low": diff.low, "high": diff.high,
             "seeds": diff.n, "verdict": verdict(diff, h.direction)}
      if h.cost_metric:
        cost = paired_difference(
            by_seed(records, dataset, h.method, h.cost_metric),
            by_seed(records, dataset, h.baseline, h.cost_metric))
        row.update(cost_metric=h.cost_metric, cost_mean=cost.mean,
                   cost_low=cost.low, cost_high=cost.high)
      rows.append(row)
  return rows


def differences_to(records: Sequence[Mapping[str, Any]], reference: str,
                   metric: str) -> dict[tuple[str, str], PairedDifference]:
  """`{(dataset, method): method - reference}` paired over seeds, for every
  method of every dataset that has the reference."""
  out = {}
  keys = dict.fromkeys((r["dataset"], r["method"]) for r in records)
  for dataset, method in keys:
    if method == reference:
      continue
    ref = by_seed(records, dataset, reference, metric)
    values = by_seed(records, dataset, method, metric)
    if ref and values:
      out[(dataset, method)] = paired_difference(values, ref)
  return out
