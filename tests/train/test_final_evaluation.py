"""A whole run, evaluation included: every figure the README promises."""
from __future__ import annotations

import json

from configs import simclr
from contrastive.train.loop import train_and_evaluate


def test_run_writes_every_final_metric(tmp_path):
  config = simclr.get_config("uci_hapt,tiny")
  config.train.num_steps = 2
  results = train_and_evaluate(config, str(tmp_path))
  for key in ("knn_accuracy", "linear_probe_accuracy", "subject_probe_accuracy",
              "subject_chance_accuracy"):
    assert 0.0 <= results[key] <= 1.0, (key, results[key])
  # Six activities: better than chance is the least a trained probe shows.
  assert results["linear_probe_train_accuracy"] > 1 / 6
  assert results["alignment"] >= 0.0 and results["uniformity"] <= 0.0
  assert json.loads((tmp_path / "results.json").read_text()) == results
