"""launch.main with no copy of the dataset: one message, no traceback."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dataset", ["fashion_mnist", "fsdd"])
def test_launch_prints_one_error_and_exits_non_zero(dataset, tmp_path):
  absent = tmp_path / "absent"
  command = [
      sys.executable, "-m", "launch.main",
      f"--config=configs/simclr.py:{dataset},tiny",
      f"--workdir={tmp_path / 'run'}", f"--config.data.data_dir={absent}",
      "--config.data.source=files"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr, proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: {dataset}: no "), proc.stderr
  assert str(absent) in last
  assert f"run: python -m contrastive.data.fetch {dataset}" in last
