"""Paired differences and verdicts against hand-computed values and SciPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from contrastive.ablation import statistics


def test_paired_difference_by_hand():
  # d = (0.1, 0.1, 0.05): mean 0.08333, sd 0.028868, t(0.975, 2) = 4.302653.
  d = statistics.paired_difference({0: 0.8, 1: 0.9, 2: 0.85, 7: 0.5},
                                   {0: 0.7, 1: 0.8, 2: 0.80, 9: 0.1})
  assert d.seeds == (0, 1, 2)
  half = 4.302653 * 0.0288675 / math.sqrt(3)
  assert d.mean == pytest.approx(0.0833333, abs=1e-6)
  assert d.low == pytest.approx(0.0833333 - half, abs=1e-5)
  assert d.high == pytest.approx(0.0833333 + half, abs=1e-5)
  assert statistics.verdict(d) == "confirmed"       # low = 0.0116 > 0
  assert statistics.verdict(d, "less") == "refuted"


def test_interval_matches_scipy_paired_t_test():
  rng = np.random.default_rng(0)
  a = rng.normal(0.80, 0.02, 6)
  b = a - rng.normal(0.005, 0.01, 6)
  d = statistics.paired_difference(dict(enumerate(a)), dict(enumerate(b)))
  result = scipy_stats.ttest_rel(a, b)
  ci = result.confidence_interval(0.95)
  assert (d.low, d.high) == pytest.approx((ci.low, ci.high), abs=1e-12)
  # The interval excludes 0 exactly when the two-sided p-value is < 0.05.
  assert (statistics.verdict(d) != "inconclusive") == (result.pvalue < 0.05)


def test_pairing_removes_the_seed_effect():
  """Seeds move both methods alike: unpaired the gap is lost in the spread,
  paired it is clear."""
  seed_effect = np.array([0.0, 0.05, -0.04, 0.03, -0.02])
  a = dict(enumerate(0.80 + seed_effect + 0.01))
  b = dict(enumerate(0.80 + seed_effect + np.array([0, .002, -.001, .001, 0])))
  d = statistics.paired_difference(a, b)
  assert statistics.verdict(d) == "confirmed"
  assert np.std(list(a.values()), ddof=1) > 5 * (d.high - d.low) / 2 / 2.776


def test_too_few_seeds_are_inconclusive():
  one = statistics.paired_difference({0: 0.9}, {0: 0.1})
  assert one.n == 1 and math.isnan(one.low)
  assert statistics.verdict(one) == "inconclusive"
  none = statistics.paired_difference({0: 0.9}, {1: 0.1})
  assert none.n == 0 and math.isnan(none.mean)
  tie = statistics.paired_difference({0: 0.5, 1: 0.6}, {0: 0.6, 1: 0.5})
  assert statistics.verdict(tie) == "inconclusive"
  with pytest.raises(ValueError, match="'greater' or 'less'"):
    statistics.verdict(tie, "bigger")


def _record(dataset, method, seed, probe, nuisance=None):
  r = {"dataset": dataset, "method": method, "seed": seed, "status": "done",
       "linear_probe_accuracy": probe}
  if nuisance is not None:
    r["nuisance_probe_accuracy"] = nuisance
  return r


def test_hypotheses_per_dataset_with_cost():
  records = []
  for s in range(5):
    records += [_record("fsdd", "simclr", s, 0.90 + 0.01 * s, 0.80),
                _record("fsdd", "fair", s, 0.88 + 0.01 * s, 0.60 + 0.01 * s),
                _record("hapt", "simclr", s, 0.90, 0.7),
                _record("hapt", "fair", s, 0.90 + (0.01 if s % 2 else -0.01),
                        0.7)]
  records.append({"dataset": "fsdd", "method": "fair", "seed": 9,
                  "status": "failed"})
  h = statistics.Hypothesis(
      name="fair lowers the speaker probe", method="fair",
      baseline="simclr", metric="nuisance_probe_accuracy", direction="less",
      source="Tsai et al. 2022", cost_metric="linear_probe_accuracy")
  rows = statistics.evaluate_hypotheses(records, [h], ["fsdd", "hapt", "fmnist"])
  assert [(r["dataset"], r["verdict"]) for r in rows] == [
      ("fsdd", "confirmed"), ("hapt", "inconclusive")]
  assert rows[0]["mean"] == pytest.approx(-0.18)
  assert rows[0]["cost_mean"] == pytest.approx(-0.02)
  assert rows[0]["seeds"] == 5
  diffs = statistics.differences_to(records, "simclr",
                                    "linear_probe_accuracy")
  assert set(diffs) == {("fsdd", "fair"), ("hapt", "fair")}
  assert diffs[("fsdd", "fair")].mean == pytest.approx(-0.02)
